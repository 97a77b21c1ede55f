"""The simulator's leadtime policy is the product: engine + Tier 1 + Tier 3 nowcast + feedback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sim_fixtures import daily_naive_factory, daily_trace

from simulation.bench import frontier, handover_step, violations_at_cost
from simulation.config import derive_config
from simulation.forecast import daily_tier1
from simulation.policies import HPA, Leadtime
from simulation.simulator import simulate


def run_leadtime(series: pd.Series, window: np.ndarray | None = None) -> Leadtime:
    cfg = derive_config(series, pd.Timedelta("5min"))
    lead = cfg.spinup_steps
    warm = int(np.searchsorted(series.index, series.index[0] + cfg.warmup))
    switch = handover_step(warm, lead, cfg)
    if window is None:
        window = daily_tier1(series, lead, switch, factory=daily_naive_factory, level=80).window
    policy = Leadtime(cfg, window, "svc", level=80)
    simulate(series.to_numpy(float), cfg, policy, HPA(cfg), switch)
    return policy


def test_feedback_moves_weight_to_the_tier_that_predicts_better():
    series = daily_trace(days=8, seed=5)
    cfg = derive_config(series, pd.Timedelta("5min"))
    # a Tier 1 that is consistently 60 % too high: the nowcast is clearly the better tier
    lead = cfg.spinup_steps
    truth = pd.Series(series.to_numpy())[::-1].rolling(lead + 1, min_periods=1).max()[::-1]
    biased = np.vstack([truth * 1.6, truth * 1.4, truth * 1.8])
    policy = run_leadtime(series, biased)
    assert policy.weight_history, "the policy never recalibrated"
    promoted = [w for _, w, ok in policy.weight_history if ok]
    assert promoted and promoted[-1]["tier3"] > promoted[-1]["tier1"]
    assert policy.weights == promoted[-1]  # the engine decides with the promoted weights
    assert abs(sum(policy.weights.values()) - 1) < 1e-9


def test_tier3_answers_once_it_has_learnt_and_every_decision_is_logged():
    policy = run_leadtime(daily_trace(days=6, seed=2))
    logged_tier1, logged_tier3 = np.isfinite(policy.logged).sum(axis=1)
    assert logged_tier3 > 0 and logged_tier1 > 0
    assert policy.tier3.known_ratios > 100
    joined = policy.joined(len(policy.loads) - 1)
    assert set(joined["tier"]) == {"tier1", "tier3"}
    # the observed value of a decision is the peak of its window, known only after it
    assert (joined["window_start"] <= (len(policy.loads) - 1 - policy.lead - 1) * policy.dt_s).all()


def test_frontier_sweeps_each_policy_and_interpolates_at_equal_cost():
    series = daily_trace(days=5, seed=4)
    cfg = derive_config(series, pd.Timedelta("5min"))
    rows = frontier(series, cfg, factory=daily_naive_factory, targets=(0.5, 0.7), levels=(80,),
                    thresholds=(0.8,))
    assert {(r["policy"], r["knob"], r["value"]) for r in rows} == {
        ("hpa", "target_utilisation", 0.5), ("hpa", "target_utilisation", 0.7),
        ("forecast_scale_out", "target_utilisation", 0.5),
        ("forecast_scale_out", "target_utilisation", 0.7),
        ("leadtime", "level", 80), ("leadtime", "threshold", 0.8)}
    lead = {r["knob"]: r for r in rows if r["policy"] == "leadtime"}
    # a higher gate on pre-allocation holds back scale-outs: fewer instance-hours on this trace
    assert lead["threshold"]["instance_hours"] <= lead["level"]["instance_hours"] + 1e-9
    hpa = sorted((r["cost_vs_oracle"], r["slo_violation_pct"]) for r in rows if r["policy"] == "hpa")
    assert hpa[0][0] < hpa[1][0] and hpa[0][1] >= hpa[1][1]  # more instances, fewer violations
    middle = (hpa[0][0] + hpa[1][0]) / 2
    assert violations_at_cost(rows, "hpa", middle) == np.interp(middle, *zip(*hpa))
    assert violations_at_cost(rows, "hpa", hpa[1][0] + 1) is None


def test_scale_in_step_follows_the_serving_decision_rate():
    """10 % per 60 s decision in serving: the same per simulated minute, compounded over five."""
    from simulation.policies import scale_in_step

    assert scale_in_step(60.0) == 0.1 and scale_in_step(15.0) == 0.1
    assert scale_in_step(300.0) == pytest.approx(1 - 0.9**5)
