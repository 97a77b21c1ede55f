"""Fleet decisions: threshold gate, redirect, selection weights, dry-run, config validation."""

from __future__ import annotations

import pytest

from leadtime.config import DEFAULT_WEIGHTS, producer_config
from leadtime.engine import (
    ProducerConfig,
    ProducerState,
    TierPrediction,
    combine,
    decide_all,
    redirect,
)


def cfg(pid: str, **kw) -> ProducerConfig:
    base = {"target_utilisation": 0.7, "min_instances": 1, "max_instances": 4}
    capacity = kw.pop("capacity_per_instance", 10.0)
    return producer_config(pid, capacity, **{**base, **kw})


def decide_all_default(configs, preds, states, pools=None, **kw):
    return decide_all(configs, preds, states, pools, weights=DEFAULT_WEIGHTS, **kw)


def tier(v: float, spread: float = 0.1) -> TierPrediction:
    return TierPrediction(v, v * (1 - spread), v * (1 + spread))


def test_weights_renormalise_over_answering_tiers():
    c = combine({"tier1": tier(100), "tier2": None, "tier3": tier(40)}, DEFAULT_WEIGHTS)
    assert c is not None and sum(c.weights.values()) == pytest.approx(1)
    assert c.weights == pytest.approx({"tier1": 4 / 7, "tier3": 3 / 7}) and c.missing == ("tier2",)


def test_gate_never_holds_below_what_the_current_load_needs():
    """Capacity 10, 2 instances 100 % busy (load 20), Tier 1 predicts 5: the load score (0.25) is
    under the threshold, yet the current load needs 3 instances at 70 %: scale out to 3."""
    configs = {"p": cfg("p", max_instances=10)}
    states = {"p": ProducerState(instances=2, current_load=20.0, now_s=1e4)}
    preds = {"p": {"tier1": TierPrediction(5.0, 4.0, 6.0)}}
    d = decide_all_default(configs, preds, states, threshold=0.6).decisions["p"]
    assert d.load_score == pytest.approx(0.25)
    assert d.action == "scale_out" and d.target_instances == 3
    assert any("current load needs 3" in r for r in d.reasons)
    # and when the prediction asks for more than the floor, the gate holds at the floor
    preds = {"p": {"tier1": TierPrediction(9.0, 8.0, 60.0)}}
    d = decide_all_default(configs, preds, states, threshold=0.6).decisions["p"]
    assert d.action == "scale_out" and d.target_instances == 3
    assert any("no pre-allocation" in r for r in d.reasons)


def test_threshold_gates_pre_allocation_but_not_above_it():
    configs = {"p": cfg("p")}
    states = {"p": ProducerState(instances=2, current_load=5.0, now_s=1e4)}
    # point 9 on 20 capacity: score 0.45; upper 9.9 needs 2 > ... use a wider upper bound
    preds = {"p": {"tier1": TierPrediction(9.0, 8.0, 20.0)}}
    below = decide_all_default(configs, preds, states, threshold=0.6).decisions["p"]
    assert below.action == "hold" and below.target_instances == 2
    assert any("threshold" in r for r in below.reasons)
    above = decide_all_default(configs, preds, states, threshold=0.4).decisions["p"]
    assert above.action == "scale_out" and above.target_instances == 3
    off = decide_all_default(configs, preds, states, threshold=0.0).decisions["p"]
    assert off.action == "scale_out"


def test_redirect_sums_to_one_and_moves_load_off_a_saturating_producer():
    configs = {"hot": cfg("hot", max_instances=2), "cool": cfg("cool", max_instances=2),
               "big": cfg("big", max_instances=4)}
    states = {p: ProducerState(instances=2 if p != "big" else 4, now_s=1e4) for p in configs}
    preds = {"hot": {"tier1": tier(19.0)}, "cool": {"tier1": tier(4.0)},
             "big": {"tier1": tier(10.0)}}
    fleet = decide_all_default(configs, preds, states, {"pool": ["hot", "cool", "big"]}, threshold=0.8)
    pool = fleet.pools["pool"]
    assert sum(pool.redirect.values()) == pytest.approx(1.0)
    assert pool.redirect["hot"] < pool.current_share["hot"]
    assert pool.redirect["big"] > pool.current_share["big"]  # the most spare capacity
    # the predicted load each producer would get stays under its capacity
    total = 33.0
    assert pool.redirect["hot"] * total < 20 and pool.act
    assert sum(pool.selection.values()) == pytest.approx(1.0) and pool.selection["hot"] == 0.0
    assert any("hot" in r for r in pool.reasons)


def test_redirect_minimises_queueing_delay():
    capacity, load = {"a": 10.0, "b": 30.0}, {"a": 9.0, "b": 11.0}
    w = redirect(capacity, load)

    def delay(shares):
        return sum(shares[p] * 20 / (capacity[p] - shares[p] * 20) for p in capacity)

    best = delay(w)
    for x in (0.1, 0.2, 0.3, 0.4, 0.45):
        assert best <= delay({"a": x, "b": 1 - x}) + 1e-12
    # overloaded pool: proportional to capacity
    assert redirect(capacity, {"a": 30.0, "b": 30.0}) == pytest.approx({"a": 0.25, "b": 0.75})


def test_no_producer_over_threshold_keeps_the_current_split():
    configs = {"a": cfg("a"), "b": cfg("b")}
    states = {p: ProducerState(instances=2, now_s=1e4) for p in configs}
    preds = {"a": {"tier1": tier(4.0)}, "b": {"tier1": tier(6.0)}}
    pool = decide_all_default(configs, preds, states, {"p": ["a", "b"]}, threshold=0.8).pools["p"]
    assert pool.redirect == pytest.approx({"a": 0.4, "b": 0.6}) and not pool.act


def test_dry_run_acts_on_nothing():
    configs = {"hot": cfg("hot"), "cool": cfg("cool")}
    states = {p: ProducerState(instances=1, now_s=1e4) for p in configs}
    preds = {"hot": {"tier1": tier(30.0)}, "cool": {"tier1": tier(1.0)}}
    live = decide_all_default(configs, preds, states, {"p": ["hot", "cool"]}, threshold=0.5)
    dry = decide_all_default(configs, preds, states, {"p": ["hot", "cool"]}, threshold=0.5, dry_run=True)
    assert live.decisions["hot"].act and live.pools["p"].act
    assert not any(d.act for d in dry.decisions.values()) and not dry.pools["p"].act
    # same decisions, only flagged
    assert dry.decisions["hot"].target_instances == live.decisions["hot"].target_instances
    assert all("dry run" in d.reasons[-1] for d in dry.decisions.values())


def test_fleet_of_1000_producers_in_10_pools_is_complete():
    """The speed of this batch is measured by ``leadtime bench engine``, not asserted here."""
    from leadtime_cli.engine import synthetic_fleet

    configs, preds, states, pools = synthetic_fleet(1000, 10)
    fleet = decide_all_default(configs, preds, states, pools, threshold=0.6)
    assert len(fleet.decisions) == 1000 and len(fleet.pools) == 10
    assert all(abs(sum(p.redirect.values()) - 1) < 1e-9 for p in fleet.pools.values())


def test_config_errors_are_clear(tmp_path):
    from leadtime.config import ConfigError, load_config, parse_config

    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"pools.a.producers\[0\].max_instances: must be >= "):
        parse_config({"pools": {"a": {"producers": [
            {"id": "x", "capacity_per_instance": 1, "min_instances": 5, "max_instances": 2}]}}})
    with pytest.raises(ConfigError, match="capacity_per_instance: required"):
        parse_config({"pools": {"a": {"producers": [{"id": "x"}]}}})
    with pytest.raises(ConfigError, match=r"engine\.mode"):
        parse_config({"engine": {"mode": "go"},
                      "pools": {"a": {"producers": [{"id": "x", "capacity_per_instance": 1}]}}})
    with pytest.raises(ConfigError, match="already in pool"):
        parse_config({"pools": {"a": {"producers": [{"id": "x", "capacity_per_instance": 1}]},
                                "b": {"producers": [{"id": "x", "capacity_per_instance": 1}]}}})
    with pytest.raises(ConfigError, match=r"tier2_load_per_demand: Input should be greater than 0"):
        parse_config({"pools": {"a": {"defaults": {"tier2_load_per_demand": -1},
                                      "producers": [{"id": "x", "capacity_per_instance": 1}]}}})
    scaled = parse_config({"pools": {"a": {"defaults": {"tier2_load_per_demand": 2.0},
                                           "producers": [{"id": "x", "capacity_per_instance": 1},
                                                         {"id": "y", "capacity_per_instance": 1,
                                                          "tier2_load_per_demand": 0.5}]}}})
    assert scaled.tier2_scales() == {"x": 2.0, "y": 0.5}


def test_repo_example_config_is_valid():
    from leadtime.config import load_config
    from leadtime.settings import PROJECT_ROOT

    config = load_config(PROJECT_ROOT / "leadtime.yaml")
    assert sum(config.engine.weights.values()) == pytest.approx(1)
    assert config.producers()["svc-2"].capacity_per_instance == 80
