"""The simulator's leadtime policy is the product: engine + Tier 1 + Tier 3 nowcast + feedback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sim_fixtures import daily_naive_factory, daily_trace

from leadtime.config import ENGINE_DEFAULTS
from leadtime.engine import TierPrediction
from simulation.bench import frontier, handover_step, violations_at_cost
from simulation.config import derive_config
from simulation.forecast import daily_tier1
from simulation.policies import HPA, Leadtime
from simulation.simulator import simulate


def run_leadtime(series: pd.Series, tier1=None) -> Leadtime:
    cfg = derive_config(series, pd.Timedelta("5min").total_seconds())
    lead = cfg.spinup_steps
    warm = int(np.searchsorted(series.index, series.index[0] + pd.Timedelta(seconds=cfg.warmup_s)))
    switch = handover_step(warm, lead, cfg)
    if tier1 is None:
        tier1 = daily_tier1(series, lead, switch, factory=daily_naive_factory, level=80)
    policy = Leadtime(cfg, tier1, "svc", series.index[0])
    simulate(series.to_numpy(float), cfg, policy, HPA(cfg), switch)
    return policy


class KnownBias:
    """Test-only Tier 1 that reads the future: the true window peak, 60 % too high."""

    tier = "tier1"

    def __init__(self, series: pd.Series, lead: int) -> None:
        peaks = series[::-1].rolling(lead + 1, min_periods=1).max()[::-1]
        self.peaks = pd.Series(peaks.to_numpy(), index=[t.timestamp() for t in series.index])

    def answer(self, producers, now_s, level):
        from loop.sources import Answers

        true = float(self.peaks.get(now_s, np.nan))
        return Answers({p: TierPrediction(1.6 * true, 1.4 * true, 1.8 * true) for p in producers})


def test_feedback_moves_weight_to_the_tier_that_predicts_better():
    series = daily_trace(days=8, seed=5)
    cfg = derive_config(series, pd.Timedelta("5min").total_seconds())
    # a Tier 1 that is consistently 60 % too high: the nowcast is clearly the better tier
    policy = run_leadtime(series, KnownBias(series, cfg.spinup_steps))
    assert policy.weight_history, "the loop never recalibrated"
    promoted = [w for _, w, ok in policy.weight_history if ok]
    assert promoted and promoted[-1]["tier3"] > promoted[-1]["tier1"]
    assert policy.weights == promoted[-1]  # the engine decides with the promoted weights
    assert abs(sum(policy.weights.values()) - 1) < 1e-9


def test_tier3_answers_once_it_has_learnt_and_the_loop_joins_window_peaks():
    series = daily_trace(days=6, seed=2)
    policy = run_leadtime(series)
    assert policy.tier3.nowcasts["svc"].known_ratios > 100
    now = series.index[-1].timestamp()
    joined = policy.loop.joined(now)
    assert set(joined["tier"]) == {"tier1", "tier3"}
    # the observed value of a decision is the peak of its window, known only after it
    assert (joined["window_start"] <= now).all()
    assert (joined["actual"] >= 0).all()


def test_frontier_sweeps_each_policy_and_interpolates_at_equal_cost():
    series = daily_trace(days=5, seed=4)
    cfg = derive_config(series, pd.Timedelta("5min").total_seconds())
    rows = frontier(series, cfg, factory=daily_naive_factory, targets=(0.5, 0.7),
                    budgets=(0.8, 1.5))
    assert {(r["policy"], r["knob"], r["value"]) for r in rows} == {
        ("hpa", "target_utilisation", 0.5), ("hpa", "target_utilisation", 0.7),
        ("forecast_scale_out", "target_utilisation", 0.5),
        ("forecast_scale_out", "target_utilisation", 0.7),
        ("crane_ehpa", "target_utilisation", 0.5), ("crane_ehpa", "target_utilisation", 0.7),
        ("knative_kpa", "target_utilisation", 0.5), ("knative_kpa", "target_utilisation", 0.7),
        ("leadtime", "sizing_budget", 0.8), ("leadtime", "sizing_budget", 1.5),
        ("leadtime", "sizing_budget", ENGINE_DEFAULTS.sizing_budget),  # the default's point
        ("leadtime", "violation_cost", 199.0)}
    lead = {r["value"]: r for r in rows if r["policy"] == "leadtime"}
    # a larger budget buys a higher price: more instance-hours, no more violations; the price
    # mode pays the full price whatever it costs
    assert lead[1.5]["instance_hours"] >= lead[0.8]["instance_hours"]
    assert lead[1.5]["slo_violation_pct"] <= lead[0.8]["slo_violation_pct"]
    assert lead[199.0]["instance_hours"] >= lead[0.8]["instance_hours"]
    hpa = sorted((r["cost_vs_oracle"], r["slo_violation_pct"]) for r in rows if r["policy"] == "hpa")
    assert hpa[0][0] < hpa[1][0] and hpa[0][1] >= hpa[1][1]  # more instances, fewer violations
    middle = (hpa[0][0] + hpa[1][0]) / 2
    assert violations_at_cost(rows, "hpa", middle) == np.interp(middle, *zip(*hpa))
    assert violations_at_cost(rows, "hpa", hpa[1][0] + 1) is None
    # along its Pareto front a policy reads no more violations than any of its settings gets
    # at no more cost, and its cheapest setting's own
    mine = sorted((r["cost_vs_oracle"], r["slo_violation_pct"]) for r in rows
                  if r["policy"] == "leadtime")
    for cost, _ in mine:
        best = min(v for c, v in mine if c <= cost)
        assert violations_at_cost(rows, "leadtime", cost, front=True) <= best + 1e-9
    assert violations_at_cost(rows, "leadtime", mine[0][0], front=True) == mine[0][1]


def test_scale_in_step_follows_the_decision_interval():
    """10 % per minute of decisions: per pass at 60 s, compounded over a 5-minute pass; the
    replay's producer gets it from the same configuration model as serving's."""
    from leadtime.config import scale_in_fraction
    from simulation.policies import replay_config

    assert scale_in_fraction(0.1, 60.0) == 0.1 and scale_in_fraction(0.1, 15.0) == 0.1
    assert scale_in_fraction(0.1, 300.0) == pytest.approx(1 - 0.9**5)
    cfg = derive_config(daily_trace(days=3), pd.Timedelta("5min").total_seconds())
    replayed = replay_config(cfg, "svc").producers()["svc"]
    assert replayed.scale_in_max_fraction == pytest.approx(1 - 0.9**5)
    assert replayed.capacity_per_instance == cfg.capacity_per_instance
