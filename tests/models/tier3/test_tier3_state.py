"""Tier 3 online state: updates change predictions, duplicates, out-of-order, risk, bad events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from models.tier3.events import MetricSample, ObservationBatch, PerformanceEvent
from models.tier3.state import Tier3State

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ev(i: int, consumer: str = "c1", producer: str = "p1", latency: float = 100.0, **kw):
    return PerformanceEvent(timestamp=T0 + timedelta(seconds=i), consumer_id=consumer,
                            producer_id=producer, latency_ms=latency, demand=1.0, **kw)


def test_online_updates_change_predictions():
    state = Tier3State()
    before = state.experience.expected("c1", "p1")
    state.ingest([ev(i, latency=400.0) for i in range(20)])
    after = state.experience.expected("c1", "p1")
    assert after > before + 0.5
    assert state.assess("p1").prediction is not None


def test_duplicates_ignored_and_out_of_order_accepted():
    state = Tier3State()
    first = state.ingest([ev(10), ev(11)])
    again = state.ingest([ev(11), ev(5, event_id="late-1"), ev(5, event_id="late-1")])
    assert first.accepted_events == 2
    assert again.duplicates == 2 and again.accepted_events == 1 and again.late == 1
    assert state.events_applied == 3


def test_metric_samples_late_and_duplicate():
    state = Tier3State()
    m = [MetricSample(timestamp=T0 + timedelta(minutes=i), producer_id="p1", metric="load",
                      value=10.0) for i in range(3)]
    assert state.ingest(metrics=m).accepted_metrics == 3
    out = state.ingest(metrics=[m[1], MetricSample(timestamp=T0 - timedelta(minutes=1),
                                                    producer_id="p1", metric="load", value=1.0)])
    assert out.duplicates == 1 and out.late_metrics_skipped == 1
    assert state.assess("p1").prediction.point == pytest.approx(10.0)


def test_metric_samples_deduplicate_per_series_not_in_the_events_cache():
    """A fleet's samples would crowd the events' keys out of the dedup cache: a series tells a
    resent sample from a late one by the stamps of its own last samples."""
    from models.tier3.state import RECENT_STAMPS

    state = Tier3State()
    m = [MetricSample(timestamp=T0 + timedelta(minutes=i), producer_id="p1", metric="load",
                      value=10.0 + i) for i in range(RECENT_STAMPS + 10)]
    assert state.ingest(metrics=m).accepted_metrics == len(m)
    assert not state.seen  # no key a sample
    out = state.ingest(metrics=[m[-1], m[-RECENT_STAMPS], m[0]])
    assert (out.duplicates, out.late_metrics_skipped, out.accepted_metrics) == (2, 1, 0)
    assert len(state.metrics[("p1", "load")].recent) == RECENT_STAMPS


def test_similar_consumers_raise_risk_when_their_group_is_hit():
    """Two groups see producers differently; group A is hit on p0; A's other members are at risk."""
    state, t = _two_groups_state()
    groups = {"A": [f"a{i}" for i in range(6)]}
    assert state.experience.similarity("a0", "a1") > state.experience.similarity("a0", "b0")
    hit = [ev(t + k, c, "p0", 50 * 4.0) for k in range(15) for c in ("a0", "a1")]
    state.ingest(hit)
    a = state.assess("p0")
    assert a.flagged and a.risk > 0
    at_risk = {x["consumer_id"] for x in a.evidence["at_risk"]}
    assert at_risk and at_risk <= set(groups["A"][2:])
    assert a.prediction.upper >= a.prediction.point >= a.prediction.lower


@pytest.mark.parametrize("bad, field", [
    ({"latency_ms": -1}, "latency_ms"),
    ({"latency_ms": "slow"}, "latency_ms"),
    ({"consumer_id": ""}, "consumer_id"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"colour": "red"}, "colour"),
])
def test_bad_events_refused_naming_the_field(bad, field):
    good = {"timestamp": "2025-01-01T00:00:00Z", "consumer_id": "c", "producer_id": "p",
            "latency_ms": 10, "error": False, "demand": 1}
    with pytest.raises(ValidationError) as info:
        ObservationBatch(events=[{**good, **bad}])
    assert any(field in map(str, e["loc"]) for e in info.value.errors())


def _two_groups_state():
    import numpy as np

    state = Tier3State()
    groups = {"A": [f"a{i}" for i in range(6)], "B": [f"b{i}" for i in range(6)]}
    base = {("A", "p0"): 50, ("A", "p1"): 400, ("A", "p2"): 60,
            ("B", "p0"): 300, ("B", "p1"): 40, ("B", "p2"): 350}
    rng = np.random.default_rng(0)
    events, t = [], 0
    for _ in range(120):
        for g, members in groups.items():
            for c in members:
                for p in ("p0", "p1", "p2"):
                    t += 1
                    events.append(ev(t, c, p, base[(g, p)] * float(rng.lognormal(0, 0.1))))
    state.ingest(events)
    return state, t


def test_unrelated_staggered_hits_are_not_a_coherent_group():
    """Two similar consumers hit 30 min apart: what independent blips do, not a common cause."""
    state, t = _two_groups_state()
    slow = [ev(t + 60 * k, "a0", "p0", 300.0) for k in range(45)]  # a0 slow for 45 min
    slow += [ev(t + 1800 + 60 * k + 30, "a1", "p0", 300.0) for k in range(14)]  # a1 from +30
    state.ingest(slow)
    a = state.assess("p0")
    assert len(a.evidence["hit"]) == 2
    assert a.evidence["coincidence"]["p_value"] > state.config.coincidence_alpha
    assert not a.flagged and a.evidence["coherent_group"] == []


def test_poisson_tail():
    from models.tier3.state import _poisson_sf

    assert _poisson_sf(0, 0.3) == 1.0
    assert _poisson_sf(1, 0.3) == pytest.approx(1 - 2.718281828 ** -0.3)
    assert _poisson_sf(2, 1e-3) == pytest.approx(1e-6 / 2, rel=1e-2)


def test_load_metrics_teach_the_nowcast_that_answers_for_the_window():
    import numpy as np

    rng = np.random.default_rng(3)
    state = Tier3State()
    loads = rng.poisson(200, 600)
    state.ingest(metrics=[MetricSample(timestamp=T0 + timedelta(minutes=i), producer_id="p1",
                                       metric="load", value=float(v)) for i, v in enumerate(loads)])
    answer = state.assess("p1").prediction
    assert state.nowcast("p1").known_ratios > 500
    # the window's peak is above the level, and the bounds carry the noise (not a point)
    assert answer.lower < answer.point < answer.upper
    assert 190 < answer.point < 260 and answer.upper < 300


def test_a_metric_detector_reads_the_series_own_interval_and_alerts_on_a_spike():
    """KNN-CAD in the live state: built at the second sample from its interval, a day of scores
    sets the threshold (never under the detector's floor), and once its two-day reference set is
    full a spike far outside the past alerts."""
    import numpy as np

    rng = np.random.default_rng(3)
    state = Tier3State()
    steps = np.arange(3 * 24 * 30)  # three days at 2 minutes: a daily cycle and bounded noise
    values = 100 + 5 * np.sin(2 * np.pi * steps / 720) + rng.uniform(-1, 1, steps.size)
    samples = [MetricSample(timestamp=T0 + timedelta(minutes=2 * i), producer_id="p1",
                            metric="latency_ms", value=float(v)) for i, v in enumerate(values)]
    state.ingest(metrics=samples)
    series = state.metrics[("p1", "latency_ms")]
    assert series.detector.interval_s == 120.0 and series.calibration_samples == 720
    assert series.threshold is not None and series.alert is None
    end = T0 + timedelta(minutes=2 * len(values))
    state.ingest(metrics=[MetricSample(timestamp=end, producer_id="p1", metric="latency_ms",
                                       value=400.0)])
    assert series.alert is not None and series.alert["value"] == 400.0
    assert series.alert["score"] > series.alert["threshold"]
