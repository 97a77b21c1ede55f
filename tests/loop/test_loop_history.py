"""The loop's record for recalibration keeps rows of floats and reads them back as they came."""

from __future__ import annotations

import pytest

from loop.decision_loop import _History


def test_points_come_back_in_decision_order_with_each_decisions_tiers_in_answer_order():
    history = _History()
    history.remember(0.0, "a", 300.0, {"tier3": 5.0, "tier1": 4.0})
    history.remember(0.0, "b", 600.0, {"tier1": 7.5})
    history.remember(60.0, "a", 300.0, {"tier1": 4.5, "tier2": 1.0, "tier3": 5.5})
    assert history.points(0.0) == [
        (0.0, "a", 300.0, "tier3", 5.0), (0.0, "a", 300.0, "tier1", 4.0),
        (0.0, "b", 600.0, "tier1", 7.5),
        (60.0, "a", 300.0, "tier1", 4.5), (60.0, "a", 300.0, "tier2", 1.0),
        (60.0, "a", 300.0, "tier3", 5.5)]
    assert [p[0] for p in history.points(30.0)] == [60.0] * 3  # from ``since`` on
    history.decisions.popleft()  # what ages out leaves from the front
    assert history.points(0.0)[0][1] == "b"
    with pytest.raises(ValueError, match="keeps 3"):
        history.remember(120.0, "a", 300.0, {f"tier{i}": 1.0 for i in range(4)})


def test_the_window_peaks_taken_as_samples_arrive_are_the_batch_joins():
    """The loop keeps each decision window's peak as the load arrives rather than a week of
    samples; what recalibration reads is, row for row, what joining the decisions with every
    sample reported would give (:func:`loop.recalibrate.join_window_peaks`), through gaps,
    a stamp reported twice (the last report wins) and two passes at one time."""
    import numpy as np
    import pandas as pd

    from leadtime.config import parse_config
    from leadtime.engine import TierPrediction
    from loop.clock import ReplayClock
    from loop.decision_loop import DecisionLoop, Report
    from loop.recalibrate import join_window_peaks
    from loop.sources import Answers

    class Answering:
        tier = "tier1"

        def answer(self, producers, now_s, level):
            return Answers({p: TierPrediction(10.0 + now_s % 7, 5.0, 30.0) for p in producers})

    ids = ["a", "b", "c"]
    config = parse_config({
        "engine": {"decision_interval_s": 300},
        "pools": {"p": {"defaults": {"capacity_per_instance": 10},
                        "producers": [{"id": "a"}, {"id": "b", "spinup_lead_time_s": 600},
                                      {"id": "c", "spinup_lead_time_s": 90}]}}})
    clock = ReplayClock(1_700_000_000.0)
    loop = DecisionLoop(config, [Answering()], clock, recalibrate=True)
    rng = np.random.default_rng(3)
    reported: dict[tuple[str, float], float] = {}
    for minute in range(600):
        now = clock.now()
        present = [p for p in ids if not (p == "b" and 100 <= minute < 130)]  # b's gap
        times = 2 if minute % 17 == 0 else 1  # a stamp reported twice
        for _ in range(times):
            loads = {p: float(rng.uniform(0, 50)) for p in present}
            loop.report([Report(p, 2, v) for p, v in loads.items()])
            reported.update({(p, now): v for p, v in loads.items()})
        if minute % 5 == 0:
            loop.step()
            if minute % 85 == 0:
                loop.step()  # two passes at one time
        clock.advance(60)
    now = clock.now()
    since = now - config.engine.recalibration_window_s
    predictions = pd.DataFrame(loop._history.points(since),
                               columns=["decided_at", "producer_id", "lead_s", "tier", "point"])
    observed = pd.DataFrame([(p, at, v) for (p, at), v in reported.items()],
                            columns=["producer_id", "at", "load"])
    expected = join_window_peaks(predictions, observed)
    got = loop.joined(now)
    assert len(got) > 300 and set(got["producer_id"]) == set(ids)
    pd.testing.assert_frame_equal(got, expected)


def test_a_producer_deciding_without_load_holds_a_bounded_record():
    """A producer whose reports carry no load closes no window: its windows age out with its
    decisions instead of piling up."""
    from loop.decision_loop import _History

    history = _History()
    for k in range(5000):
        now = 300.0 * k
        history.remember(now, "quiet", 300.0, {"tier1": 1.0}, keep=now - 86400.0)
    assert len(history.decisions) == 289 and len(history.windows["quiet"].pending) == 289
