"""Sizing: a calibrated quantile of the window peak, from the candidate with measured skill,
at any sampling interval (finer or coarser than the lead time)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leadtime.window_peak import RatioTable
from loop.sizing import GRID, REACTIVE, SizingConfig, WindowPeakCalibrator, linear_quantiles

LEAD = 300.0
INTERVALS = (60.0, 300.0, 1800.0, 3600.0)  # 1, 5, 30 and 60 minutes


def covered(step: float) -> int:
    """Samples covering a decision's window at this interval (lead + one decision interval):
    the simulator's spin-up in whole intervals, plus the interval the decision is taken in."""
    return math.ceil(LEAD / step - 1e-9) + 1


def replay(peaks_of, candidates_of, days: float, config: SizingConfig, step: float = 60.0,
           seed: int = 0, capacity: tuple[float, int, int] = (1.0, 0, 2**31)):
    """Passes every ``step`` seconds: each pass observes the newest load, records its
    candidates, then the next load comes. Returns the calibrator and, per pass after the first
    day, (sizing, true window peak)."""
    rng = np.random.default_rng(seed)
    steps = int(days * 86400 / step)
    width = covered(step)
    loads = peaks_of(rng, steps + width + 1)
    calibrator = WindowPeakCalibrator(LEAD + step, config, capacity)
    out = []
    for i in range(steps):
        t = step * i
        calibrator.observe(t, float(loads[i]))
        uppers = candidates_of(loads, i, rng, width)
        sizing = calibrator.sizing(t, uppers)
        calibrator.record(t, uppers)
        true_peak = float(loads[i + 1:i + 1 + width].max())  # the loads that cover the window
        if t >= 86400:
            out.append((sizing, true_peak))
    return calibrator, out


def poisson(rng, n):
    return rng.poisson(100, n).astype(float)


@pytest.mark.parametrize("step", INTERVALS)
def test_the_candidate_that_knows_the_future_sizes_with_a_factor_near_one(step):
    def candidates(loads, i, rng, width):  # tier1 knows the window's peak; reactive the present
        return {"tier1": float(loads[i + 1:i + 1 + width].max()), REACTIVE: float(loads[i])}

    days = 3 if step < 1800 else 12
    calibrator, out = replay(poisson, candidates, days, SizingConfig(violation_cost=19.0), step)
    sources = {s.source for s, _ in out if s is not None}
    assert sources == {"tier1"}
    assert calibrator.factors["tier1"] == pytest.approx(1.0)
    assert (calibrator.losses["tier1"] < calibrator.losses[REACTIVE]).all()  # at every quantile


@pytest.mark.parametrize("step", INTERVALS)
def test_without_skill_the_tiers_step_aside_and_the_quantile_covers(step):
    def candidates(loads, i, rng, width):  # a tier that answers noise around the mean
        return {"tier1": float(rng.uniform(60, 160)), REACTIVE: float(loads[i])}

    days = 4 if step < 1800 else 40
    _, out = replay(poisson, candidates, days, SizingConfig(violation_cost=9.0), step, seed=1,
                    capacity=(1e-6, 0, 2**31))  # instances so fine that cost is the load
    sized = [(s, peak) for s, peak in out if s is not None]
    assert len(sized) > 0.9 * len(out)  # calibrated at every interval, coarse ones included
    if step < 1800:  # the present tells about the next minutes: the noisy tier steps aside
        assert {s.source for s, _ in sized} == {REACTIVE}
    # (at 30 and 60 minutes each window is one sample, independent of the last one: neither
    # candidate has skill, and either may size; the quantile must hold all the same)
    for q in {s.quantile for s, _ in sized}:  # each quantile chosen covers as calibrated
        mine = [peak <= s.value for s, peak in sized if s.quantile == q]
        if len(mine) >= 200:
            assert np.mean(mine) >= q - 0.06


def test_the_price_buys_the_quantile_of_least_expected_cost():
    def candidates(loads, i, rng, width):
        return {REACTIVE: float(loads[i])}

    coverage = {}
    for price in (0.5, 49.0):
        _, out = replay(poisson, candidates, 3, SizingConfig(violation_cost=price), 60.0,
                        capacity=(10.0, 1, 100))
        sized = [(s, peak) for s, peak in out if s is not None]
        assert {s.price for s, _ in sized} == {price}
        held = [10 * math.ceil(s.value / 10 - 1e-9) for s, _ in sized]
        coverage[price] = np.mean([peak <= h for (_, peak), h in zip(sized, held, strict=True)])
    # a cheap violation is not worth an instance; a dear one buys the 98th percentile and more
    assert coverage[0.5] < 0.8 and coverage[49.0] >= 0.97


@pytest.mark.parametrize("step", INTERVALS)
def test_calibration_waits_a_duration_floored_in_windows(step):
    config = SizingConfig(sizing_min_history_s=7200.0, sizing_min_windows=30, refit_every_s=0.0)
    calibrator = WindowPeakCalibrator(LEAD + step, config)
    first_sized = None
    for i in range(400):
        t = step * i
        calibrator.observe(t, 10.0)
        if first_sized is None and calibrator.sizing(t, {REACTIVE: 10.0}) is not None:
            first_sized = t
        calibrator.record(t, {REACTIVE: 10.0})
    assert first_sized is not None
    windows = first_sized / step - covered(step)  # windows closed by then
    assert windows >= 30 - 1 and first_sized >= 7200.0
    assert first_sized <= max(7200.0, 30 * step) + (covered(step) + 2) * step


def test_a_coarse_history_keeps_its_floor_of_windows():
    config = SizingConfig(sizing_history_s=86400.0, sizing_history_min_windows=150)
    calibrator = WindowPeakCalibrator(LEAD + 3600.0, config)
    for i in range(400):  # hourly: 400 windows, a day is only 24
        calibrator.observe(3600.0 * i, 10.0)
        calibrator.record(3600.0 * i, {REACTIVE: 10.0})
    assert len(calibrator.closed) == 150


def test_no_sizing_until_enough_windows_and_bad_values_are_ignored():
    calibrator = WindowPeakCalibrator(LEAD + 60.0, SizingConfig(sizing_min_windows=50, sizing_min_history_s=0))
    for i in range(30):
        calibrator.observe(60.0 * i, 10.0)
        calibrator.record(60.0 * i, {REACTIVE: 10.0, "tier1": float("nan"), "tier3": -1.0})
    assert calibrator.sizing(60.0 * 30, {REACTIVE: 10.0}) is None
    assert all(set(w.values) == {REACTIVE} for _t0, w in calibrator.pending.pending)
    calibrator.observe(60.0, 99.0)  # older than the newest: skipped
    assert calibrator.pending.loads[-1] == (60.0 * 29, 10.0)


def budget_replay(budget: float | None, reacting: int, days: float = 2.0):
    """Minute passes on Poisson(100) load, sized from the current load with capacity 10 per
    instance; the HPA twin is said to hold ``reacting`` instances. Returns the calibrator and
    the prices in force after the first day."""
    rng = np.random.default_rng(3)
    steps = int(days * 1440)
    loads = rng.poisson(100, steps + 10).astype(float)
    config = SizingConfig(violation_cost=49.0, sizing_budget=budget)
    calibrator = WindowPeakCalibrator(LEAD + 60.0, config, capacity=(10.0, 1, 100))
    prices = []
    for i in range(steps):
        t = 60.0 * i
        calibrator.observe(t, float(loads[i]))
        values = {REACTIVE: float(loads[i])}
        sizing = calibrator.sizing(t, values)
        calibrator.record(t, values, reacting=reacting)
        # at price 0 (and uncalibrated) the budget mode holds what the load needs now
        held = math.ceil(max(sizing.value, loads[i]) / 10 - 1e-9) if sizing else 14
        calibrator.held(t, held)
        if t >= 86400 and sizing is not None:
            prices.append(sizing.price)
    return calibrator, prices


def test_the_budget_holds_the_price_to_what_reacting_spends():
    # 13-14 instances of 10 hold the 98th percentile of a 6-minute Poisson(100) peak
    _, free = budget_replay(None, reacting=12)
    assert set(free) == {49.0}  # the price mode: the price whatever it costs
    calibrator, tight = budget_replay(1.0, reacting=12)
    assert max(tight) < 49.0  # a lower price fits 12 instances
    assert calibrator.spend_held <= 1.0 * calibrator.spend_reacting * 1.02
    _, loose = budget_replay(1.0, reacting=20)  # reacting spends more: the full price
    assert set(loose) == {49.0}


def test_every_candidate_is_read_at_every_quantile():
    from loop.sizing import GRID, candidate_values

    grid = GRID
    values = candidate_values({"tier1": 10.0, "tier3": float("nan")},
                              {"tier3_phase": (np.array([1.0, 1.0, 1.0, 9.0]),)}, grid)
    assert set(values) == {"tier1", "tier3_phase"}
    assert values["tier1"] == 10.0  # a tier's bound: one value for every quantile
    assert values["tier3_phase"][0] == 1.0 and values["tier3_phase"][-1] > 7.0  # rare peak


def test_linear_quantiles_are_numpys_to_the_bit():
    rng = np.random.default_rng(11)
    grid = np.asarray(GRID)
    for size in (1, 2, 3, 7, 30, 101):
        for sample in (rng.gamma(2.0, 3.0, size), rng.integers(0, 4, size).astype(float)):
            assert np.array_equal(linear_quantiles(sample, grid), np.quantile(sample, grid))
    quintiles = np.linspace(0, 1, 6)[1:-1]  # the refit's edges: per column of a 2-D sample
    for rows in (1, 2, 30, 863):
        sample = rng.gamma(2.0, 3.0, (rows, len(GRID)))
        assert np.array_equal(linear_quantiles(sample, quintiles),
                              np.quantile(sample, quintiles, axis=0))


def test_between_two_prices_the_budget_takes_the_higher_for_its_share_of_hours():
    """A budget between what two neighbouring prices spend is met by holding the higher price
    for the share of refit periods that spends it, not by the lower one throughout."""
    config = SizingConfig(violation_cost=49.0, sizing_budget=1.0)
    calibrator = WindowPeakCalibrator(LEAD + 60.0, config)
    prices = config.prices
    calibrator.spend = np.array([100.0 * (1 + i) for i in range(len(prices))])
    calibrator.spend_reacting = 250.0  # between prices[1] (200) and prices[2] (300): half
    calibrator.spend_held = calibrator.spend_in_force = 250.0  # spent exactly the budget
    chosen = [calibrator._within_budget(1.0) for _ in range(10)]
    assert set(chosen) == {prices[1], prices[2]}
    assert chosen.count(prices[2]) == 5


@pytest.mark.parametrize("feedback", ["estimate", "repay", "track"])
@pytest.mark.parametrize("spent", [0.8, 1.25])
def test_what_was_really_spent_moves_the_budgets_aim(feedback, spent):
    """The loop held ``spent`` times the twin over the trailing window. 'estimate' ignores it;
    'repay' aims lower after an overspend only; 'track' aims lower after an overspend and
    higher after an underspend (budget x budget / spent), so that the spend settles at the
    budget."""
    config = SizingConfig(violation_cost=49.0, sizing_budget=1.0, sizing_budget_feedback=feedback)
    calibrator = WindowPeakCalibrator(LEAD + 60.0, config)
    prices = config.prices
    calibrator.spend = np.array([100.0 * (1 + i) for i in range(len(prices))])
    calibrator.spend_reacting = 300.0  # prices[2] spends exactly the budget on the estimate
    calibrator.spend_held = calibrator.spend_in_force = spent * 300.0  # the estimate was right
    chosen = [prices.index(calibrator._within_budget(1.0)) for _ in range(20)]
    aimed = 300.0 if feedback == "estimate" or (feedback == "repay" and spent < 1) \
        else 300.0 / spent  # 375 after an underspend, 240 after an overspend
    # over the refits, the prices held spend the aim on average (the accumulator's rounding)
    assert abs(np.mean(calibrator.spend[chosen]) - aimed) <= 100.0 / 20 + 1e-9
    assert calibrator.aim == pytest.approx(aimed / 300.0)  # what decisions report as "aim"


def test_the_budget_reacts_only_where_there_is_a_floor_to_hold():
    """Uncalibrated, the budget mode holds the reacting floor; without a floor (no load known)
    it has nothing to hold, and says nothing rather than sizing to zero."""
    calibrator = WindowPeakCalibrator(LEAD + 60.0, SizingConfig(sizing_budget=1.0))
    reacting = calibrator.sizing(0.0, {"tier1": 50.0}, floor=4)
    assert reacting is not None and reacting.price == 0.0 and reacting.value == 0.0
    assert calibrator.sizing(60.0, {"tier1": 50.0}, floor=None) is None


def test_priced_by_demand_the_busy_windows_buy_a_higher_quantile_than_the_quiet_ones():
    """``violation_unit="demand"``: a violated window costs in proportion to the load it
    carries, as the SLO's share of requests counts it. Hours alternate between a busy level
    (1,000) and a quiet one (100) with the same relative spread, the candidate knows the level,
    and an instance carries 10. Priced per window, a busy window's quantile costs ten times the
    instances of a quiet one's for the same risk, so it is bought lower; priced by demand, the
    busy windows buy a higher quantile than before and the quiet ones a lower one."""
    def levels(rng, n):
        level = np.where((np.arange(n) // 60) % 2 == 0, 1000.0, 100.0)
        return level * rng.lognormal(0.0, 0.1, n)

    def candidates(loads, i, rng, width):
        return {"tier1": 1000.0 if ((i + 1) // 60) % 2 == 0 else 100.0}

    def quantiles(unit):
        config = SizingConfig(violation_cost=19.0, violation_unit=unit)
        _, out = replay(levels, candidates, 3, config, capacity=(10.0, 0, 10**6))
        by_level = {1000.0: [], 100.0: []}
        for sizing, _ in out:
            if sizing is not None and sizing.source == "tier1":
                by_level[1000.0 if sizing.value > 400 else 100.0].append(sizing.quantile)
        return {level: float(np.mean(q)) for level, q in by_level.items()}

    window, demand = quantiles("window"), quantiles("demand")
    assert window[1000.0] < window[100.0]
    assert demand[1000.0] > window[1000.0] and demand[100.0] < window[100.0]


def test_a_record_keeps_one_column_for_one_value_and_widens_when_values_differ():
    """A tier's upper bound (one value at every grid quantile) is kept as one column; the
    first value that differs across the grid widens the column, the earlier rows repeated, so
    the refit reads what one column per grid quantile would have held."""
    from loop.sizing import _ClosedWindows, _Window

    grid = len(GRID)
    closed = _ClosedWindows(grid, capacity=4)
    flat = [np.full(grid, 3.0), np.full(grid, 4.0)]
    spread = np.linspace(1.0, 2.0, grid)
    for t0, value in enumerate(flat):
        closed.append(_Window(float(t0), {"tier1": value}, 0, peak=5.0))
    assert closed.values["tier1"].shape[1] == 1
    for t0 in range(2, 6):  # past the capacity: the rows move, the record grows by half
        closed.append(_Window(float(t0), {"tier1": spread}, 0, peak=5.0))
    read = closed.candidates()["tier1"]
    assert read.shape == (6, grid)
    np.testing.assert_array_equal(read, np.vstack([*flat, *[spread] * 4]))
    assert closed.scalars.shape[1] == 6  # 4 + 4 // 2: more than three quarters were live


@pytest.mark.parametrize("rank_at, expected", [("in_force", "median_skill"), ("cost", "tail_skill")])
def test_candidates_are_ranked_at_the_quantile_of_the_price_in_force(rank_at, expected):
    """The budget mode moved the price to 1 (the median): the candidate with the lower loss
    there sizes, though another is better at the 0.98 quantile of the violation cost (49).
    Ranked at the cost's quantile (the option), the tail's candidate sizes at the median."""
    config = SizingConfig(violation_cost=49.0, sizing_budget=1.0, sizing_rank_at=rank_at)
    calibrator = WindowPeakCalibrator(LEAD + 60.0, config)
    grid = np.asarray(GRID)
    calibrator.fitted_at, calibrator.price = 0.0, 1.0  # fitted; the price the budget affords
    calibrator.losses = {"tail_skill": np.where(grid >= 0.9, 0.1, 0.5),
                         "median_skill": np.where(grid >= 0.9, 0.3, 0.2)}
    for name in calibrator.losses:
        calibrator.tables[name] = RatioTable(np.zeros((1, config.buckets - 1)), np.ones(len(GRID)),
                                             np.ones((len(GRID), config.buckets)))
    sizing = calibrator.sizing(60.0, {"tail_skill": 100.0, "median_skill": 120.0}, floor=1)
    assert sizing is not None and sizing.source == expected
    assert sizing.loss == pytest.approx(calibrator.losses[expected][calibrator._rank(1.0)])


@pytest.mark.parametrize("floor, allowed", [(1.0, 2), (0.8, 3)])
def test_holding_less_than_asked_raises_no_allowance_by_default(floor, allowed):
    """The loop held 80 % of what its sizing asked over the trailing day (floors, scale-in
    steps). With the default floor of 1.0 the estimates stand as they are, and the budget
    affords the price whose estimate fits it; with 0.8 the shortfall scales every estimate
    down, and a higher price fits."""
    config = SizingConfig(violation_cost=49.0, sizing_budget=1.0,
                          sizing_budget_scale_floor=floor)
    calibrator = WindowPeakCalibrator(LEAD + 60.0, config)
    calibrator.spend = np.array([100.0 * (1 + i) for i in range(len(config.prices))])
    calibrator.spend_reacting = 300.0  # prices[2] spends the budget on the estimate
    calibrator.spend_in_force, calibrator.spend_held = 375.0, 300.0  # held 80 % of it
    chosen = {config.prices.index(calibrator._within_budget(1.0)) for _ in range(10)}
    assert max(chosen) == allowed
