"""The decision loop across a restart: acknowledged reports and the pass counter come back
from the decision log (a real SQLite file)."""

from __future__ import annotations

import pytest

from leadtime.config import parse_config
from loop.clock import ReplayClock
from loop.decision_log import DecisionLog
from loop.decision_loop import DecisionLoop, NotRecorded, Report
from loop.sources import Unavailable

CONFIG = {"engine": {"mode": "dry_run"},
          "pools": {"web": {"defaults": {"capacity_per_instance": 10},
                            "producers": [{"id": "a"}, {"id": "b"}]}}}


def new_loop(path, clock) -> DecisionLoop:
    loop = DecisionLoop(parse_config(CONFIG), [Unavailable("tier1", "none here")], clock,
                        decision_log=DecisionLog(path))
    loop.restore()
    return loop


def test_reports_after_the_last_pass_and_the_pass_count_survive(tmp_path):
    clock = ReplayClock(1_700_000_000.0)
    first = new_loop(tmp_path / "log.sqlite", clock)
    first.report([Report("a", 3, 12.0)], durable=True)
    assert [first.step().number for _ in range(3)] == [1, 2, 3]
    first.report([Report("b", 5, 40.0, 1_699_999_000.0)], durable=True)  # after the last pass

    again = new_loop(tmp_path / "log.sqlite", clock)  # as after a SIGKILL: nothing flushed
    assert again.states["a"] == Report("a", 3, 12.0)
    assert again.states["b"] == Report("b", 5, 40.0, 1_699_999_000.0)
    assert again.step().number == 4
    assert again.latest.fleet.decisions["b"].current_instances == 5


def test_a_report_the_log_cannot_write_is_refused_and_not_applied(tmp_path):
    loop = new_loop(tmp_path / "log.sqlite", ReplayClock(1_700_000_000.0))
    loop.decision_log.close()  # every write now fails
    with pytest.raises(NotRecorded, match="nothing was applied"):
        loop.report([Report("a", 9, 1.0)], durable=True)
    assert "a" not in loop.states
    loop.report([Report("a", 9, 1.0)])  # a state source's pull: applied, said degraded
    assert loop.states["a"].instances == 9
    assert "decision_log" in loop.step().degraded


def test_tier3_without_observations_is_reported_degraded_with_the_reason(tmp_path):
    from loop.sources import Tier3Assess
    from models.tier3.state import Tier3State

    state = Tier3State()
    loop = DecisionLoop(parse_config(CONFIG), [Tier3Assess(lambda: state)],
                        ReplayClock(1_700_000_000.0))
    degraded = loop.step().degraded
    assert "no Tier 3 answer yet for a, b" in degraded["tier3"]
