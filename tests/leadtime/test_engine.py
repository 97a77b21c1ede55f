"""The pre-allocation engine: combination, allocation from the upper bound, scale-in, limits."""

from __future__ import annotations

import math

import pytest

from leadtime.config import DEFAULT_WEIGHTS
from leadtime.engine import (
    ProducerConfig,
    ProducerState,
    TierPrediction,
    combine,
    decide_all,
    load_score,
)


def config(**kw) -> ProducerConfig:
    base = {
        "producer_id": "p",
        "capacity_per_instance": 10.0,
        "target_utilisation": 0.5,
        "max_utilisation": 0.5,  # the strict rule unless a test says otherwise
        "min_instances": 1,
        "max_instances": 50,
        "spinup_lead_time_s": 300.0,
        "scale_in_cooldown_s": 300.0,
        "scale_in_max_fraction": 0.1,
        "decision_interval_s": 60.0,
    }
    base.update(kw)
    return ProducerConfig(**base)


def decide(cfg, tiers, state, weights=DEFAULT_WEIGHTS):
    """One producer through the engine's one entry point, with the gate off."""
    fleet = decide_all({cfg.producer_id: cfg}, {cfg.producer_id: tiers},
                       {cfg.producer_id: state}, weights=weights, threshold=0.0)
    return fleet.decisions[cfg.producer_id]


def test_combine_renormalises_over_the_tiers_that_answered():
    tiers = {
        "tier1": TierPrediction(100, 80, 120),
        "tier2": None,
        "tier3": TierPrediction(200, 150, 260),
    }
    out = combine(tiers, DEFAULT_WEIGHTS)
    assert out is not None
    assert out.weights == pytest.approx({"tier1": 0.4 / 0.7, "tier3": 0.3 / 0.7})
    assert out.missing == ("tier2",)
    assert out.point == pytest.approx((0.4 * 100 + 0.3 * 200) / 0.7)
    assert out.lower == pytest.approx((0.4 * 80 + 0.3 * 150) / 0.7)
    assert out.upper == pytest.approx((0.4 * 120 + 0.3 * 260) / 0.7)


def test_combine_all_tiers_uses_the_weights_as_given():
    same = TierPrediction(10, 5, 20)
    out = combine({"tier1": same, "tier2": TierPrediction(20, 10, 40), "tier3": same}, DEFAULT_WEIGHTS)
    assert out is not None and out.missing == ()
    assert out.point == pytest.approx(0.4 * 10 + 0.3 * 20 + 0.3 * 10)


def test_non_finite_answers_are_missing_and_no_answer_gives_none():
    assert combine({"tier1": TierPrediction(math.nan, 1, 2)}, DEFAULT_WEIGHTS) is None
    assert combine({}, DEFAULT_WEIGHTS) is None
    only = combine({"tier1": TierPrediction(math.nan, 0, 0), "tier2": TierPrediction(3, 2, 4)},
                   DEFAULT_WEIGHTS)
    assert (
        only is not None and only.weights == {"tier2": 1.0} and only.missing == ("tier1", "tier3")
    )


def test_load_score():
    assert load_score(50, 100) == 0.5
    assert load_score(1, 0) == math.inf
    assert load_score(0, 0) == 0.0


def test_allocation_keeps_the_upper_bound_under_the_target_utilisation_when_max_equals_it():
    # max_utilisation == target: the strict rule. 10 * 0.5 = 5 per instance; upper 23 needs
    # ceil(4.6) = 5, the point only 2
    strict = config()
    d = decide(strict, {"tier1": TierPrediction(10, 5, 23)}, ProducerState(instances=3))
    assert d.target_instances == 5 and d.action == "scale_out"
    assert any("upper bound" in r for r in d.reasons)
    assert d.load_score == pytest.approx(10 / 30)
    exact = decide(strict, {"tier1": TierPrediction(10, 5, 20)}, ProducerState(instances=4))
    assert exact.target_instances == 4 and exact.action == "hold"


def test_allocation_point_under_target_and_upper_bound_under_max_utilisation():
    # target 0.5 (5 per instance), max 0.9 (9 per instance): one margin each, not both stacked
    loose = config(max_utilisation=0.9)
    d = decide(loose, {"tier1": TierPrediction(10, 5, 23)}, ProducerState(instances=2))
    assert d.target_instances == 3  # upper 23 / 9 -> 3; point 10 / 5 -> 2
    assert any("upper bound" in r and "90%" in r for r in d.reasons)
    # a narrow band: the point at the target binds
    narrow = decide(loose, {"tier1": TierPrediction(20, 18, 22)}, ProducerState(instances=2))
    assert narrow.target_instances == 4  # point 20 / 5 -> 4; upper 22 / 9 -> 3


def test_max_utilisation_below_target_is_refused():
    with pytest.raises(ValueError, match="max_utilisation"):
        config(max_utilisation=0.4)


def test_min_and_max_instances_bound_the_target():
    low = decide(config(min_instances=3), {"tier1": TierPrediction(0, 0, 1)}, ProducerState(3))
    assert low.target_instances == 3 and any("min_instances" in r for r in low.reasons)
    high = decide(config(max_instances=6), {"tier1": TierPrediction(90, 80, 100)}, ProducerState(2))
    assert high.target_instances == 6 and any("max_instances" in r for r in high.reasons)


def test_scale_in_is_slow_and_waits_after_a_scale_out():
    cfg = config()
    small = {"tier1": TierPrediction(4, 2, 5)}  # needs 1 instance
    step = decide(cfg, small, ProducerState(instances=20, now_s=1000, last_scale_out_s=0))
    assert step.target_instances == 18 and step.action == "scale_in"  # 10 % of 20 per decision
    assert any("limited" in r for r in step.reasons)
    one = decide(cfg, small, ProducerState(instances=5, now_s=1000, last_scale_out_s=0))
    assert one.target_instances == 4  # at least one instance per decision
    held = decide(cfg, small, ProducerState(instances=20, now_s=1000, last_scale_out_s=900))
    assert held.target_instances == 20 and held.action == "hold"
    assert any("cool-down" in r for r in held.reasons)
    # scale-out is never slowed down
    out = decide(
        cfg, {"tier1": TierPrediction(90, 80, 100)}, ProducerState(2, now_s=10, last_scale_out_s=5)
    )
    assert out.target_instances == 20


def test_never_below_what_the_current_load_needs():
    fast = config(scale_in_max_fraction=1.0)  # scale-in unrestricted but for the current load
    d = decide(
        fast, {"tier1": TierPrediction(4, 2, 5)}, ProducerState(instances=20, current_load=50.0)
    )
    assert d.target_instances == 10  # 50 / 5 = 10 needed now, although the forecast needs 1
    d2 = decide(
        config(), {"tier1": TierPrediction(4, 2, 5)}, ProducerState(instances=3, current_load=50.0)
    )
    assert d2.target_instances == 10 and any("current load" in r for r in d2.reasons)


def test_without_any_tier_the_engine_is_reactive():
    d = decide(config(), {"tier1": None}, ProducerState(instances=2, current_load=33.0))
    assert d.target_instances == 7 and d.prediction is None
    assert any("reactive" in r for r in d.reasons)


def test_invalid_config_is_refused():
    with pytest.raises(ValueError):
        config(capacity_per_instance=0)
    with pytest.raises(ValueError):
        config(min_instances=5, max_instances=2)


def test_decides_for_1000_producers_with_reasons():
    """Speed is measured by a benchmark, not asserted here; this checks the batch is complete."""
    cfgs = [config(producer_id=f"p{i}") for i in range(1000)]
    tiers = [
        {
            "tier1": TierPrediction(10 + i % 50, 5, 20 + i % 70),
            "tier2": None,
            "tier3": TierPrediction(12, 8, 25),
        }
        for i in range(1000)
    ]
    states = [
        ProducerState(
            instances=1 + i % 20, current_load=float(i % 40), now_s=1e4, last_scale_out_s=0.0
        )
        for i in range(1000)
    ]
    decisions = [decide(c, t, s) for c, t, s in zip(cfgs, tiers, states)]
    assert len(decisions) == 1000 and all(d.reasons for d in decisions)


def test_a_calibrated_sizing_is_held_under_the_maximum_utilisation_only():
    from leadtime.engine import CombinedPrediction, Sizing, allocate

    web = config(target_utilisation=0.7, max_utilisation=0.9)
    prediction = CombinedPrediction(40, 30, 60, {"tier1": 1.0}, ())
    sizing = Sizing(value=63.0, quantile=0.95, source="tier1", factor=1.05)
    d = allocate(web, prediction, ProducerState(instances=4, current_load=25), sizing)
    # 63 at 90 % of 10 per instance needs 7; uncalibrated, the point 40 at 70 % needs 6 and the
    # upper bound 60 at 90 % needs 7: the quantile replaces both rules, its headroom taken once
    assert d.target_instances == 7 and d.sizing == sizing
    assert any("window peak q95 63" in r and "from tier1" in r for r in d.reasons)
    # the floor: the current load at the maximum utilisation (the quantile covers the window)
    busy = allocate(web, prediction, ProducerState(instances=4, current_load=80),
                    Sizing(value=10.0, quantile=0.95, source="reactive", factor=1.0))
    assert busy.floor == 9 and busy.target_instances == 9
    # without a sizing the uncalibrated rule stands, and the floor is at the target utilisation
    plain = allocate(web, prediction, ProducerState(instances=4, current_load=80))
    assert plain.floor == 12 and plain.sizing is None


def test_a_producer_without_a_reported_state_says_its_count_is_assumed():
    cfg = config(min_instances=2)
    tiers = {"tier1": TierPrediction(30.0, 25.0, 35.0)}
    fleet = decide_all({"p": cfg}, {"p": tiers}, {}, weights=DEFAULT_WEIGHTS, threshold=0.0)
    decision = fleet.decisions["p"]
    assert decision.current_instances == 2
    assert decision.reasons[0].startswith("no state reported: assumed 2 instance(s)")
    reported = decide(cfg, tiers, ProducerState(instances=2))
    assert not any("no state reported" in r for r in reported.reasons)


def test_the_reacting_floor_holds_what_reacting_would_and_lets_scale_in_go_at_once():
    """With the reacting floor (the loop passes what the current load needs at the target
    utilisation), a decision never goes under it, says so, and scales in at once to its target
    instead of waiting the cool-down: the floor already holds what the present needs."""
    cfg = config()
    small = {"tier1": TierPrediction(4, 2, 5)}  # needs 1 instance
    raised = decide(cfg, small, ProducerState(instances=3, current_load=20.0,
                                              reacting_instances=6))
    assert raised.target_instances == 6 and raised.floor == 6
    assert any("reacting floor: the current load needs 6" in r for r in raised.reasons)
    just_after = ProducerState(instances=20, now_s=1000, last_scale_out_s=900,
                               reacting_instances=6)
    fast = decide(cfg, small, just_after)
    assert fast.target_instances == 6 and fast.action == "scale_in"
    assert any("at once" in r for r in fast.reasons)
    slow = decide(cfg, small, ProducerState(instances=20, now_s=1000, last_scale_out_s=900))
    assert slow.target_instances == 20  # without the floor: the cool-down holds


def test_the_budget_at_price_zero_holds_the_reacting_floor_and_says_why():
    """Price 0 (the budget mode when no price fits, or before its sizing is calibrated) buys
    nothing ahead: the decision is the reacting floor, however high the tiers' prediction."""
    from leadtime.engine import Sizing

    cfg = config()
    high = {"tier1": TierPrediction(200, 150, 260)}
    reacting = Sizing(value=0.0, quantile=0.0, source="reactive", factor=0.0, price=0.0,
                      budget=1.03, reacting_spend=3600.0 * 6, own_spend=3600.0 * 6)
    state = ProducerState(instances=6, current_load=30.0, reacting_instances=6)
    fleet = decide_all({"p": cfg}, {"p": high}, {"p": state}, weights=DEFAULT_WEIGHTS,
                       threshold=0.0, sizing={"p": reacting})
    decision = fleet.decisions["p"]
    assert decision.target_instances == 6 and decision.action == "hold"
    assert any("nothing bought ahead (price 0)" in r for r in decision.reasons)


def test_the_reacting_floor_has_the_hpas_tolerance():
    """Within the tolerance of the target the floor is the fleet as it is, as the HPA leaves
    it; outside it, what the load needs."""
    from leadtime.engine import reacting_floor

    cfg = config()  # 5 a instance at the target utilisation
    assert reacting_floor(21.0, cfg, instances=4, tolerance=0.1) == 4  # 1.05 of the target
    assert reacting_floor(21.0, cfg) == 5
    assert reacting_floor(30.0, cfg, instances=4, tolerance=0.1) == 6  # 1.5: what it needs
    assert reacting_floor(17.0, cfg, instances=4, tolerance=0.1) == 4  # 0.85 of the target
    assert reacting_floor(12.0, cfg, instances=4, tolerance=0.1) == 3
