"""The reacting floor through the loop: what the current load needs now, held over the HPA's
downscale stabilisation window (``engine.reacting_stabilisation_s``) at any pass interval."""

from __future__ import annotations

import numpy as np
import pytest

from leadtime.config import parse_config
from loop.clock import ReplayClock
from loop.decision_loop import DecisionLoop, Report
from loop.sources import Unavailable


def floors(loads: list[float], interval_s: float, window_s: float) -> list[int]:
    """The floor of each pass, for one producer (10 a instance at the target) reporting
    ``loads`` one pass per ``interval_s``, and the instances its last decision asked for (an
    allocator that applies every decision)."""
    config = parse_config({
        "engine": {"decision_interval_s": interval_s, "reacting_stabilisation_s": window_s,
                   "reacting_tolerance": 0.0},
        "pools": {"p": {"defaults": {"capacity_per_instance": 10, "target_utilisation": 1.0,
                                     "max_utilisation": 1.0, "max_instances": 50},
                        "producers": [{"id": "svc"}]}}})
    clock = ReplayClock(1_700_000_000.0)
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock)
    out, instances = [], 1
    for load in loads:
        loop.report([Report("svc", instances, load)])
        decision = loop.step().fleet.decisions["svc"]
        out.append(decision.floor)
        instances = decision.target_instances
        clock.advance(interval_s)
    return out


SPIKE = [10.0, 80.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 30.0, 10.0]


def test_without_a_window_the_floor_is_the_present():
    assert floors(SPIKE, 60, 0) == [1, 8, 1, 1, 1, 1, 1, 1, 3, 1]


def test_at_one_pass_a_minute_five_minutes_hold_the_last_five_floors():
    """As the HPA at one metric a minute: a recommendation counts while it stood within 300 s."""
    assert floors(SPIKE, 60, 300) == [1, 8, 8, 8, 8, 8, 8, 1, 3, 3]


@pytest.mark.parametrize("interval_s", [300, 1800, 3600])
def test_at_coarser_passes_the_floor_before_is_held_once(interval_s):
    """The floor of one pass stood until the next one replaced it, so with passes 5, 30 or 60
    minutes apart the 300 s window still holds the previous pass's floor, as the HPA holds
    the recommendation it repeated until the metric changed."""
    assert floors(SPIKE, interval_s, 300) == [1, 8, 8, 1, 1, 1, 1, 1, 3, 3]


def test_a_higher_later_floor_outlives_a_lower_earlier_one():
    assert floors([50.0, 30.0, 40.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0], 60, 180) == [
        5, 5, 5, 5, 4, 4, 1, 1, 1]


class KnowsTheWindow:
    """A Tier 1 that answers each window's true peak (the loads are the test's own)."""

    tier = "tier1"

    def __init__(self, loads: list[float], start: float, interval_s: float, width: int) -> None:
        self.loads, self.start, self.interval_s, self.width = loads, start, interval_s, width

    def answer(self, producers, now_s, level):
        from leadtime.engine import TierPrediction
        from loop.sources import Answers

        i = round((now_s - self.start) / self.interval_s)
        peak = max(self.loads[i + 1:i + 1 + self.width])
        return Answers({"svc": TierPrediction(peak, peak, peak)})


def test_where_a_tier_sizes_the_floor_is_the_present():
    """Once a tier with skill sizes, its window peak holds the window: the floor is not held
    after a spike, and the decision says nothing of a held floor."""
    rng = np.random.default_rng(0)
    loads = [float(v) for v in rng.uniform(10, 20, 200)] + [80.0] + [10.0] * 20
    config = parse_config({
        "engine": {"decision_interval_s": 60, "sizing_budget": None, "sizing_min_windows": 30,
                   "sizing_min_history_s": 0, "reacting_tolerance": 0.0},
        "pools": {"p": {"defaults": {"capacity_per_instance": 10, "max_instances": 50},
                        "producers": [{"id": "svc"}]}}})
    clock = ReplayClock(1_700_000_000.0)
    source = KnowsTheWindow(loads, clock.now(), 60, 6)  # lead 300 s + one 60 s pass
    loop = DecisionLoop(config, [source], clock, weights={"tier1": 1.0})
    decisions = []
    for load in loads[:-6]:
        loop.report([Report("svc", 1, load)])
        decisions.append(loop.step().fleet.decisions["svc"])
        clock.advance(60)
    after = decisions[201:206]  # the passes after the spike
    assert all(d.sizing is not None and d.sizing.source == "tier1" for d in after)
    assert [d.floor for d in after] == [2] * 5  # 10 at 70 % of 10 a instance: the present
    assert not any("floor held" in r for d in after for r in d.reasons)


def untiered_loop() -> tuple[DecisionLoop, ReplayClock]:
    """One producer (10 a instance, at 100 %), no tier answering, a pass a minute."""
    config = parse_config({
        "engine": {"decision_interval_s": 60, "reacting_tolerance": 0.0},
        "pools": {"p": {"defaults": {"capacity_per_instance": 10, "target_utilisation": 1.0,
                                     "max_utilisation": 1.0}, "producers": [{"id": "svc"}]}}})
    clock = ReplayClock(1_700_000_000.0)
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock)
    return loop, clock


def test_a_held_floor_says_why():
    loop, clock = untiered_loop()
    for load in (80.0, 10.0):
        loop.report([Report("svc", 8, load)])
        decision = loop.step().fleet.decisions["svc"]
        clock.advance(60)
    assert decision.target_instances == 8
    assert any("reacting floor held at 8 (the current load needs 1)" in r and "300 s" in r
               for r in decision.reasons), decision.reasons


def test_a_held_floor_never_raises_the_count_back_up():
    """As Kubernetes clamps a recommendation between the current count and the window's
    highest: a fleet already below the held floor (scaled in while a tier sized, or changed by
    hand) is held where it is, not raised back to the old floor."""
    loop, clock = untiered_loop()
    targets = []
    for instances, load in ((8, 80.0), (5, 10.0), (5, 10.0)):
        loop.report([Report("svc", instances, load)])
        targets.append(loop.step().fleet.decisions["svc"].target_instances)
        clock.advance(60)
    assert targets == [8, 5, 5]
