"""Checkpoints in a real MLflow store (tmp dir): round-trip and the count of events lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.tier3.events import PerformanceEvent

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def events(start: int, n: int) -> list[PerformanceEvent]:
    return [PerformanceEvent(timestamp=T0 + timedelta(seconds=i), consumer_id=f"c{i % 3}",
                             producer_id=f"p{i % 2}", latency_ms=100.0 + i % 7, demand=1.0)
            for i in range(start, start + n)]


@pytest.mark.slow
def test_checkpoint_restore_round_trip_and_lost_events(state):
    from models.tier3.service import MODEL_NAME, Tier3Service

    service, info = Tier3Service.restore(state, every_events=10**9, every_seconds=10**9)
    assert info.version is None and info.events_lost == 0
    service.ingest(events(0, 50))
    version = service.checkpoint()
    expected = service.state.experience.expected("c1", "p1")
    service.ingest(events(50, 7))  # accepted after the checkpoint: lost by a restart

    restored, info = Tier3Service.restore(state)
    assert info.version == version and info.events_in_checkpoint == 50 and info.events_lost == 7
    assert "7 event(s)" in info.message()
    assert restored.state.experience.expected("c1", "p1") == pytest.approx(expected)
    # the duplicate memory survives too
    assert restored.ingest(events(0, 5))["duplicates"] == 5

    from leadtime.registry import champion_version

    assert str(champion_version(MODEL_NAME).version) == version


@pytest.mark.slow
def test_periodic_checkpoint_every_n_events(state):
    from models.tier3.service import Tier3Service

    service, _ = Tier3Service.restore(state, every_events=20, every_seconds=10**9)
    assert service.ingest(events(0, 10))["checkpoint"] is None
    assert service.ingest(events(10, 15))["checkpoint"] == "1"
