"""Stepping aside to reacting (``engine.sizing_step_aside``): while the HPA twin has missed
less of the windows' load than the sizing would have, the loop holds what the twin holds."""

from __future__ import annotations

import numpy as np

from loop.sizing import SizingConfig, WindowPeakCalibrator
from serving.decisions import decision_json
from simulation.bench import HISTORY_S, engine_spec, replay_setup
from simulation.config import derive_config
from simulation.forecast import daily_tier1
from simulation.policies import HPA, Leadtime
from simulation.scenarios import scenario
from simulation.simulator import simulate

HOUR = 3600.0


def drive(foresees: bool, headroom: bool = False) -> WindowPeakCalibrator:
    """Hourly passes over load in blocks of five busy hours (100) and five quiet ones (10).
    The HPA twin holds what the last hour needed, so it misses only each block's first hour.
    The one tier answers 50 whatever comes (no skill), or, with ``foresees``, the window's
    true peak. The budget affords half as much again as the twin spends, so sizing cannot
    simply hold the busy hours' count throughout."""
    config = SizingConfig(violation_cost=99.0, sizing_budget=1.5, sizing_min_windows=10,
                          sizing_min_history_s=0, sizing_step_aside=True,
                          sizing_step_aside_headroom=headroom)
    sizer = WindowPeakCalibrator(300.0 + HOUR, config)
    loads = np.tile([100.0] * 5 + [10.0] * 5, 20)
    for i in range(len(loads) - 2):
        now = i * HOUR
        value = max(loads[i], loads[i + 1]) if foresees else 50.0  # the hours the window spans
        sizing = sizer.sizing(now, {"tier1": value})
        twin = int(loads[i - 1]) if i else 10
        sizer.record(now, {"tier1": value}, reacting=twin)
        sizer.held(now, twin if sizing is None else int(np.ceil(sizing.value)))
        sizer.observe(now + HOUR, loads[i])
    return sizer


def test_a_tier_without_skill_steps_aside_to_what_the_twin_holds():
    sizer = drive(foresees=False)
    sized, reacting = sizer.missed
    assert reacting < 0.9 * sized  # the twin misses each block's first hour, sizing more
    assert sizer.aside
    sizing = sizer.sizing(200 * HOUR, {"tier1": 50.0}, floor=3)
    assert sizing.aside == sizer.missed and sizing.price == 0.0


def test_stepping_aside_with_headroom_buys_above_the_twin_what_the_budget_leaves():
    """``engine.sizing_step_aside_headroom``: the twin's count is the floor, and the sizing
    buys above it at the highest price whose spend, floored at the twin's count, fits the
    budget (1.5x the twin's here, so some price above 0 fits)."""
    sizer = drive(foresees=False, headroom=True)
    assert sizer.aside
    prices, spend = sizer.config.prices, sizer.spend_aside
    allowed = 1.5 * sizer.spend_reacting
    i = prices.index(sizer.aside_price)
    assert i > 0 and spend[i] <= allowed and (i + 1 == len(prices) or spend[i + 1] > allowed)
    assert (np.diff(spend) >= 0).all() and spend[0] >= sizer.spend_reacting  # the twin a floor
    sizing = sizer.sizing(200 * HOUR, {"tier1": 50.0}, floor=3)
    assert sizing.aside == sizer.missed and sizing.price == sizer.aside_price
    assert sizing.value > 0 and sizing.source == "tier1"
    sizer.price = 0.0  # the sizing's own price buys nothing ahead: stepping aside still buys
    assert sizer.sizing(200 * HOUR, {"tier1": 50.0}, floor=3).price == sizer.aside_price
    # without headroom the same record holds the twin's count and buys nothing above it
    plain = drive(foresees=False)
    assert plain.aside and plain.sizing(200 * HOUR, {"tier1": 50.0}, floor=3).price == 0.0


def test_a_tier_that_foresees_keeps_sizing():
    sizer = drive(foresees=True)
    sized, reacting = sizer.missed
    assert sized < reacting and not sizer.aside
    assert sizer.sizing(200 * HOUR, {"tier1": 100.0}, floor=3).aside is None


def test_the_loop_holds_the_twins_count_and_says_so():
    """Replayed hourly, a bursty scenario steps aside on some passes: those hold exactly what
    the loop's HPA twin holds, their reasons say why and the API shows both sums; with it off,
    none does."""
    series = scenario("intermittent_two_grids_5min", days=10)
    series = series.resample("1h").mean().asfreq("1h")
    cfg = derive_config(series, HOUR)
    demand, lead, switch, _, _ = replay_setup(series, cfg)
    tier1 = daily_tier1(series, lead, switch, "seasonal_naive", 80, HISTORY_S)

    def replay(step_aside: bool, headroom: bool = False) -> list:
        engine = engine_spec(sizing_step_aside=step_aside, sizing_step_aside_headroom=headroom)
        policy = Leadtime(cfg, tier1, "svc", series.index[0], engine)
        seen = []
        step = policy.loop.step
        acting_from = policy.start_s + switch * cfg.dt_s

        def logged():
            passed = step()
            twin = policy.loop._twins.get("svc")
            if policy.clock.now() >= acting_from:  # not the warm-up's dry-run passes
                seen.append((passed.fleet.decisions["svc"], twin.instances if twin else None))
            return passed

        policy.loop.step = logged
        simulate(demand, cfg, policy, HPA(cfg), switch)
        counted.append(policy.sizing_sources["stepped aside"])  # what `bench ablation` shows
        return seen

    counted: list[int] = []
    aside = [(d, twin) for d, twin in replay(True) if d.sizing is not None and d.sizing.aside]
    assert aside and counted == [len(aside)]
    for decision, twin in aside:
        assert decision.target_instances == min(max(twin, cfg.min_instances), cfg.max_instances)
        assert any(r.startswith("stepping aside") for r in decision.reasons)
        shown = decision_json(decision, "pool")["sizing"]["aside"]  # GET /v1/decisions
        assert shown == {"sizing_missed": decision.sizing.aside[0],
                         "twin_missed": decision.sizing.aside[1]}
    assert not any(any(r.startswith("stepping aside") for r in d.reasons)
                   for d, _ in replay(False))
    assert counted[1] == 0
    # with headroom every pass aside holds at least the twin's count, and some buy above it
    above = [(d, twin) for d, twin in replay(True, headroom=True)
             if d.sizing is not None and d.sizing.aside]
    assert above and all(d.target_instances >= min(twin, cfg.max_instances) for d, twin in above)
    bought = [d for d, twin in above if d.sizing.price]
    assert bought and all(any(r.startswith("above the twin's count") for r in d.reasons)
                          for d in bought)
