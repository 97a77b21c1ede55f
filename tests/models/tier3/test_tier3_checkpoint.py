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
    assert service.journal.read_bytes().count(b"\n") == 0  # the checkpoint covers it all
    service.ingest(events(50, 7))  # accepted after the checkpoint: in the journal only
    expected_after = service.state.experience.expected("c1", "p1")

    restored, info = Tier3Service.restore(state)
    assert info.version == version and info.events_in_checkpoint == 50
    assert info.events_replayed == 7 and info.events_lost == 0
    assert "7 event(s) replayed from the journal" in info.message()
    assert restored.state.experience.expected("c1", "p1") == pytest.approx(expected_after)
    # the duplicate memory survives too
    assert restored.ingest(events(0, 5))["duplicates"] == 5

    # without the journal, what came after the checkpoint is lost, and said
    restored.journal.unlink()
    restored.ingest(events(100, 3))
    restored.journal.unlink()
    again, info = Tier3Service.restore(state)
    assert info.events_in_checkpoint == 50 and info.events_lost == 10
    assert "10 event(s)" in info.message()
    assert again.state.experience.expected("c1", "p1") == pytest.approx(expected)

    from models.registry import champion_version

    assert str(champion_version(MODEL_NAME).version) == version


@pytest.mark.slow
def test_periodic_checkpoint_every_n_events(state):
    from models.tier3.service import Tier3Service

    service, _ = Tier3Service.restore(state, every_events=20, every_seconds=10**9)
    assert service.ingest(events(0, 10))["checkpoint"] is None
    assert service.ingest(events(10, 15))["checkpoint"] == {"scheduled_at_events": 25}
    assert service.flush(timeout=120) == "1"
    _, info = Tier3Service.restore(state)
    assert info.version == "1" and info.events_in_checkpoint == 25 and info.events_lost == 0


class _Settings:
    """Just what Tier3Service touches, for the tests that fake the MLflow upload."""

    def __init__(self, home) -> None:
        self.home_dir = home
        self.experiment = "test"


def test_due_checkpoint_uploads_in_the_background(tmp_path, monkeypatch):
    """The request that makes a checkpoint due returns before the (slow) upload finishes."""
    import threading

    import models.tier3.service as service_module

    started, release, uploads = threading.Event(), threading.Event(), []

    def slow_upload(snapshot: bytes, events: int, experiment: str) -> str:
        started.set()
        release.wait(10)
        uploads.append((service_module.pickle.loads(snapshot).events_applied, events))
        return str(len(uploads))

    monkeypatch.setattr(service_module, "register_checkpoint", slow_upload)
    service = service_module.Tier3Service(_Settings(tmp_path), every_events=10,
                                          every_seconds=10**9)
    out = service.ingest(events(0, 12))
    assert out["checkpoint"] == {"scheduled_at_events": 12} and service.version is None
    assert started.wait(10)  # the upload is running, the request has returned
    service.ingest(events(12, 3))  # accepted while the upload runs: not in that snapshot
    assert service.ingest(events(15, 7))["checkpoint"]  # due again while busy: queued ...
    assert service.ingest(events(22, 10))["checkpoint"]  # ... and replaced by the newer one
    release.set()
    assert service.flush(timeout=10) == "2"
    # each snapshot is the consistent cut at its own count; the queued 22 was coalesced into 32
    assert uploads == [(12, 12), (32, 32)]
    assert service.registered_events == 32


def test_failed_background_upload_makes_the_next_batch_due(tmp_path, monkeypatch):
    import models.tier3.service as service_module

    calls = []

    def flaky(snapshot: bytes, events: int, experiment: str) -> str:
        calls.append(events)
        if len(calls) == 1:
            raise OSError("store down")
        return "1"

    monkeypatch.setattr(service_module, "register_checkpoint", flaky)
    service = service_module.Tier3Service(_Settings(tmp_path), every_events=10,
                                          every_seconds=10**9)
    service.ingest(events(0, 10))
    assert service.flush(timeout=10) is None and "store down" in service.last_error
    assert service.ingest(events(10, 1))["checkpoint"] == {"scheduled_at_events": 11}
    assert service.flush(timeout=10) == "1" and calls == [10, 11] and service.last_error is None
