"""A producer sized on two resources through the decision loop: each resource is decided as a
producer of its own from its reported load, and the binding one sets the count."""

from __future__ import annotations

import pytest

from leadtime.config import parse_config
from loop.clock import ReplayClock
from loop.decision_log import DecisionLog
from loop.decision_loop import DecisionLoop, Report
from loop.sources import Unavailable

CONFIG = {
    "engine": {"decision_interval_s": 60, "reacting_tolerance": 0.0},
    "pools": {"p": {"defaults": {"target_utilisation": 1.0, "max_utilisation": 1.0,
                                 "max_instances": 50},
                    "producers": [
                        {"id": "db", "resources": {"cpu": {"capacity_per_instance": 4},
                                                   "memory": {"capacity_per_instance": 16}}},
                        {"id": "web", "capacity_per_instance": 10}]}}}


def run(reports, tmp_path=None):
    config = parse_config(CONFIG)
    clock = ReplayClock(1_700_000_000.0)
    log = DecisionLog(tmp_path / "log.sqlite") if tmp_path is not None else None
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock, decision_log=log)
    passes = []
    for batch in reports:
        loop.report(batch)
        passes.append(loop.step())
        clock.advance(60)
    return loop, passes


def test_the_binding_resource_sets_the_count_as_it_changes():
    """By day CPU binds (12 cores need 3 instances, 20 GB of memory 2); in a nightly batch
    memory does (90 GB need 6; 2 cores need 1, and CPU's floor holds its 3 of the last 300 s,
    as each resource's floor is held where no tier sizes)."""
    _, passes = run([
        [Report("db", 2, loads={"cpu": 12.0, "memory": 20.0}), Report("web", 2, 15.0)],
        [Report("db", 3, loads={"cpu": 2.0, "memory": 90.0}), Report("web", 2, 15.0)],
    ])
    day, night = (p.fleet.decisions["db"] for p in passes)
    assert (day.resource, day.target_instances, day.by_resource) == ("cpu", 3,
                                                                     {"cpu": 3, "memory": 2})
    assert (night.resource, night.target_instances) == ("memory", 6)
    assert night.reasons[0] == "binding resource memory: 6 instance(s) (cpu 3)"
    assert "memory: current load needs 6: raised from 0" in night.reasons
    assert any(r.startswith("cpu: reacting floor held at 3") for r in night.reasons)
    assert passes[0].fleet.decisions["web"].resource == "load"  # its one load, as before
    assert set(passes[0].fleet.decisions) == {"db", "web"}


def test_a_resource_not_reported_is_not_held_against_the_others(tmp_path):
    """Memory unreported: cpu alone decides; the log keeps one decision for the producer."""
    loop, passes = run([[Report("db", 1, loads={"cpu": 10.0})]], tmp_path)
    d = passes[0].fleet.decisions["db"]
    assert (d.resource, d.target_instances) == ("cpu", 3)
    assert set(loop.states) == {"db/cpu", "db/memory"}
    history = loop.decision_log.history(producer_id="db")
    assert len(history) == 1 and history[0]["target_instances"] == 3


def test_the_report_counts_producers_not_resources():
    config = parse_config(CONFIG)
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")],
                        ReplayClock(1_700_000_000.0))
    assert loop.report([Report("db", 1, loads={"cpu": 1.0, "memory": 1.0})]) == 1


def memory_binds_hourly(passes: int = 300):
    """A loop sizing ``db`` on a calm CPU and a memory that binds five minutes an hour,
    calibrated after 10 windows; yields it after each pass."""
    import numpy as np

    config = parse_config({**CONFIG, "engine": {**CONFIG["engine"], "sizing_min_windows": 10,
                                                "sizing_min_history_s": 0}})
    clock = ReplayClock(1_700_000_000.0)
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock)
    rng = np.random.default_rng(3)
    instances = 2
    for i in range(passes):
        batch = 60.0 if i % 60 < 5 else 10.0
        loop.report([Report("db", instances, loads={"cpu": float(rng.uniform(6, 10)),
                                                    "memory": batch})])
        instances = loop.step().fleet.decisions["db"].target_instances
        yield loop
        clock.advance(60)


def test_in_the_budget_mode_a_producers_resources_share_one_price():
    """Each refit, the resources' records are pooled (the producer holds the largest count)
    and every resource of the producer takes the one price they afford together."""
    *_, loop = memory_binds_hourly()  # the loop after its last pass
    cpu, memory = loop._sizers["db/cpu"], loop._sizers["db/memory"]
    assert cpu.spend_rows is not None and memory.spend_rows is not None
    assert cpu.price == memory.price


def test_a_producers_resources_step_aside_together():
    """Each refit, the resources' missed loads are pooled (:func:`loop.sizing.pooled_aside`):
    CPU and memory step aside on the same passes, whatever each record alone would say."""
    decided, asides = None, 0  # the pooled sums in force in the next pass
    for loop in memory_binds_hourly():
        cpu, memory = loop._sizers["db/cpu"], loop._sizers["db/memory"]
        assert cpu.aside == memory.aside
        sizing = loop.latest.fleet.decisions["db"].sizing
        if sizing is not None and sizing.aside is not None and decided is not None:
            assert sizing.aside == decided  # the reasons give the sums that decided
            asides += 1
        decided = cpu.pooled
    assert asides > 0 and cpu.pooled == memory.pooled


def test_tier2_feeds_the_resources_that_set_a_factor():
    """Requests are announced per producer; a declared resource that sets
    tier2_load_per_demand turns that demand into its own load, the others hear nothing."""
    from loop.sources import Tier2Announced
    from models.tier2.announced import AnnouncedDemand

    config = parse_config({"engine": {"decision_interval_s": 60}, "pools": {"p": {"producers": [
        {"id": "db", "resources": {"cpu": {"capacity_per_instance": 4,
                                           "tier2_load_per_demand": 2.0},
                                   "memory": {"capacity_per_instance": 16}}},
        {"id": "web", "capacity_per_instance": 10, "tier2_load_per_demand": 1.0}]}}})
    assert config.tier2_scales() == {"db/cpu": 2.0, "web": 1.0}
    clock = ReplayClock(1_700_000_000.0)
    demand = AnnouncedDemand()
    demand.add(clock.now() - 10, [("db", 300.0, 270.0, 330.0), ("web", 300.0, 270.0, 330.0)])
    source = Tier2Announced(demand, config.tier2_scales, config.resource_owners)
    loop = DecisionLoop(config, [source], clock, weights={"tier2": 1.0})
    tiers = loop.step().tiers
    # 300 units announced over the 300 s lead time: 1 a second, twice that for db's cpu
    assert tiers["db/cpu"]["tier2"].point == pytest.approx(2.0)
    assert tiers["web"]["tier2"].point == pytest.approx(1.0)
    assert "tier2" not in tiers["db/memory"]
