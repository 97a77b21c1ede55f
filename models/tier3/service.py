"""Tier 3 as a running service: the online state, its checkpoints in MLflow and a restart count.

* :class:`Tier3Service` is the Python ingestion API (``ingest``) and the reader (``assess``);
  it is thread-safe (one lock) and checkpoints every ``every_events`` accepted events or
  ``every_seconds``, whichever comes first. A due checkpoint is a **snapshot** (the pickled
  state, taken under the lock, so it is a consistent cut at ``events_total``) handed to a
  background thread that uploads it to MLflow: the request that makes it due does not wait for
  the 1–5 s upload. Snapshots due while one uploads are coalesced (only the newest is uploaded);
  an older snapshot never replaces a newer champion; a failed upload is logged and the next batch
  makes a checkpoint due again. ``flush()`` waits for the uploads (shutdown, tests).
* A **checkpoint** is a new version of the registered model ``leadtime-tier3`` (a pyfunc whose
  artifact is the pickled state; ``predict`` takes ``producer_id`` rows and returns Tier 3's
  prediction). The newest checkpoint holds the ``champion`` alias.
* A **journal** (``<home>/tier3/journal.jsonl``) holds every batch accepted since the newest
  registered checkpoint, one numbered line each, written before the batch is applied (so before
  the API acknowledges it). A snapshot records the journal number it covers; once it is
  registered, the lines it covers are dropped. On restart the champion checkpoint is loaded and
  the journal lines after it are applied again (duplicates are ignored, as always): an
  acknowledged batch survives the process being killed. A torn last line (killed mid-write, so
  never acknowledged) is skipped.
* A tiny **ledger** file beside it holds the number of events accepted so far (rewritten per
  batch). After the replay, ``lost = ledger − events in the restored state`` is reported: zero
  unless the journal was removed or damaged.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadtime.config import ENGINE_DEFAULTS
from models.tier3.events import MetricSample, ObservationBatch, PerformanceEvent
from models.tier3.state import Assessment, Tier3State

log = logging.getLogger(__name__)

MODEL_NAME = "leadtime-tier3"
ARTIFACT = "state"


@dataclass(frozen=True)
class RestoreInfo:
    version: str | None  # None: no checkpoint yet, started empty
    events_in_checkpoint: int
    events_lost: int

    events_replayed: int = 0  # from the journal, after the checkpoint

    def message(self) -> str:
        replayed = (f"; {self.events_replayed} event(s) replayed from the journal"
                    if self.events_replayed else "")
        if self.version is None:
            return (f"no {MODEL_NAME} checkpoint: started empty{replayed}"
                    + (f"; {self.events_lost} event(s) accepted earlier are lost"
                       if self.events_lost else ""))
        return (f"restored {MODEL_NAME} v{self.version} ({self.events_in_checkpoint} events)"
                f"{replayed}; {self.events_lost} event(s) accepted since then are lost")


def _pyfunc_class():
    import mlflow

    class Tier3Pyfunc(mlflow.pyfunc.PythonModel):
        """Input: a ``producer_id`` column; output: point, lower, upper, risk, flagged."""

        def load_context(self, context) -> None:
            self.state = load_state(Path(context.artifacts[ARTIFACT]))

        def predict(self, context, model_input, params=None):
            import pandas as pd

            rows = []
            for producer in model_input["producer_id"].astype(str):
                a = self.state.assess(producer)
                p = a.prediction
                rows.append({"producer_id": producer, "point": p.point if p else None,
                             "lower": p.lower if p else None, "upper": p.upper if p else None,
                             "risk": a.risk, "flagged": a.flagged})
            return pd.DataFrame(rows)

    return Tier3Pyfunc


def load_state(path: Path) -> Tier3State:
    return pickle.loads(Path(path).read_bytes())


def register_checkpoint(state_bytes: bytes, events: int, experiment: str = "leadtime") -> str:
    """Log the pickled state as a new ``leadtime-tier3`` version; move ``champion`` to it."""
    import mlflow

    from models.registry import CHAMPION, client, use_experiment

    use_experiment(experiment)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name="tier3-checkpoint"):
        path = Path(tmp) / "state.pkl"
        path.write_bytes(state_bytes)
        mlflow.log_metric("events_applied", events)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_pyfunc_class()(), artifacts={ARTIFACT: str(path)},
            pip_requirements=_requirements(), registered_model_name=MODEL_NAME,
        )
    version = str(info.registered_model_version)
    mlflow_client = client()
    mlflow_client.set_model_version_tag(MODEL_NAME, version, "events_applied", str(events))
    mlflow_client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    return version


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "river", "numpy", "pydantic", "pandas")]


def load_champion() -> tuple[Tier3State, str] | None:
    """The champion checkpoint's state and version, or None when there is none."""
    import mlflow

    from models.registry import champion_version, model_uri

    champion = champion_version(MODEL_NAME)
    if champion is None:
        return None
    model = mlflow.pyfunc.load_model(model_uri(MODEL_NAME))
    return model.unwrap_python_model().state, str(champion.version)


class Tier3Service:
    """Thread-safe ingestion, assessment and periodic checkpoints of one Tier 3 state."""

    def __init__(self, settings, state: Tier3State | None = None, *,
                 every_events: int = 10_000, every_seconds: float = 300.0) -> None:
        self.settings = settings
        self.state = state or Tier3State()
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.lock = threading.Lock()
        self.checkpoint_lock = threading.Lock()
        self.last_checkpoint_events = self.state.events_applied
        self.last_checkpoint_at = time.monotonic()
        self.version: str | None = None
        self.registered_events = self.state.events_applied  # events in the newest registered one
        self.last_error: str | None = None
        self._pending: tuple[bytes, int, int] | None = None  # newest snapshot to upload
        self._worker: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.journal_seq = getattr(self.state, "journal_seq", 0)  # the last line written

    @property
    def ledger(self) -> Path:
        return self.settings.home_dir / "tier3" / "ledger"

    @property
    def journal(self) -> Path:
        return self.settings.home_dir / "tier3" / "journal.jsonl"

    @classmethod
    def restore(cls, settings, **kwargs) -> tuple[Tier3Service, RestoreInfo]:
        """Start from the champion checkpoint (or empty), apply the journal after it again, and
        count the events lost (accepted but in neither)."""
        settings.prepare()
        found = load_champion()
        state, version = found if found is not None else (Tier3State(), None)
        service = cls(settings, state, **kwargs)
        service.version = version
        service.registered_events = in_checkpoint = state.events_applied
        replayed = service._replay_journal()
        accepted = service._read_ledger()
        lost = max(0, accepted - state.events_applied)
        service._write_ledger(state.events_applied)
        return service, RestoreInfo(version, in_checkpoint, lost, replayed)

    def _replay_journal(self) -> int:
        """Apply the journal's lines after the state's ``journal_seq``; returns the events."""
        import orjson

        if not self.journal.is_file():
            return 0
        before = self.state.events_applied
        covered = getattr(self.state, "journal_seq", 0)
        with self.journal.open("rb") as lines:
            for line in lines:
                try:
                    entry = orjson.loads(line)
                    seq, batch = int(entry["seq"]), ObservationBatch.model_validate(entry["batch"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.warning("tier3 journal: skipped a torn or unreadable line")
                    continue
                self.journal_seq = max(self.journal_seq, seq)
                if seq > covered:
                    self.state.ingest(list(batch.events), list(batch.metrics))
        return self.state.events_applied - before

    def _append_journal(self, events: list[PerformanceEvent],
                        metrics: list[MetricSample]) -> None:
        """Write the batch as the journal's next line (under ``lock``, before it is applied)."""
        self.journal_seq += 1
        batch = ObservationBatch(events=events, metrics=metrics).model_dump_json()
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("ab") as out:  # closed: in the OS's hands, a kill keeps it
            out.write(b'{"seq":%d,"batch":%s}\n' % (self.journal_seq, batch.encode()))

    def _trim_journal(self, covered: int) -> None:
        """Drop the journal lines a registered checkpoint covers (numbers up to ``covered``)."""
        import orjson

        with self.lock:
            if not self.journal.is_file():
                return
            kept = []
            for line in self.journal.read_bytes().splitlines(keepends=True):
                try:
                    if int(orjson.loads(line)["seq"]) > covered:
                        kept.append(line)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
            tmp = self.journal.with_suffix(".tmp")
            tmp.write_bytes(b"".join(kept))
            tmp.replace(self.journal)

    def ingest(self, events: list[PerformanceEvent] | None = None,
               metrics: list[MetricSample] | None = None) -> dict[str, Any]:
        """Journal a batch, then apply it at once; checkpoint when one is due. Returns the
        batch's counts (``durable``: the batch is in the journal, so a restart keeps it)."""
        events, metrics = list(events or []), list(metrics or [])
        with self.lock:
            self._append_journal(events, metrics)
            result = self.state.ingest(events, metrics)
            total = self.state.events_applied
            self._write_ledger(total)
            due = (total - self.last_checkpoint_events >= self.every_events
                   or (total > self.last_checkpoint_events
                       and time.monotonic() - self.last_checkpoint_at >= self.every_seconds))
            if due:  # snapshot under the lock; the upload runs in the background
                self._schedule(*self._snapshot(), total)
                self.last_checkpoint_events, self.last_checkpoint_at = total, time.monotonic()
        return {**result.as_dict(), "events_total": total, "durable": True,
                "checkpoint": {"scheduled_at_events": total} if due else None}

    def _snapshot(self) -> tuple[bytes, int]:
        """The pickled state, marked with the journal line it covers, and that line's number.
        Under ``lock``."""
        self.state.journal_seq = self.journal_seq
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL), self.journal_seq

    def _schedule(self, snapshot: bytes, covered: int, total: int) -> None:
        """Queue ``snapshot`` (replacing an older queued one); start the uploader. Under ``lock``."""
        self._pending = (snapshot, total, covered)
        self._idle.clear()
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._drain, name="tier3-checkpoint",
                                            daemon=True)
            self._worker.start()

    def _drain(self) -> None:
        while True:
            with self.lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._worker = None
                    self._idle.set()
                    return
            try:
                self._register(*job)
                self.last_error = None
            except Exception as exc:  # the stream must go on; retried when due
                self.last_error = f"checkpoint at {job[1]} events failed: {exc!r}"
                log.error("tier3 %s", self.last_error)
                with self.lock:  # make the next batch due again
                    self.last_checkpoint_events = min(self.last_checkpoint_events,
                                                      self.registered_events)

    def flush(self, timeout: float | None = None) -> str | None:
        """Wait for background checkpoint uploads; returns the newest registered version."""
        if not self._idle.wait(timeout):
            raise TimeoutError(f"tier3 checkpoint upload still running after {timeout} s")
        return self.version

    def ingest_batch(self, batch: ObservationBatch) -> dict[str, Any]:
        return self.ingest(list(batch.events), list(batch.metrics))

    def checkpoint(self) -> str:
        """Checkpoint now; returns the new ``leadtime-tier3`` version."""
        with self.lock:
            total = self.state.events_applied
            snapshot, covered = self._snapshot()
            self.last_checkpoint_events, self.last_checkpoint_at = total, time.monotonic()
        return self._register(snapshot, total, covered)

    def _register(self, snapshot: bytes, total: int, covered: int) -> str:
        with self.checkpoint_lock:
            if total < self.registered_events and self.version is not None:
                return self.version  # a newer checkpoint is registered already
            self.version = register_checkpoint(snapshot, total, self.settings.experiment)
            self.registered_events = total
            self._trim_journal(covered)
        return self.version

    def assess(self, producer: str) -> Assessment:
        with self.lock:
            return self.state.assess(producer)

    def phase_samples(self, producer: str) -> tuple:
        with self.lock:
            return self.state.phase_samples(producer)

    def configure_producer(self, producer: str, lead_s: float,
                           level: int = ENGINE_DEFAULTS.level) -> None:
        with self.lock:
            self.state.configure_producer(producer, lead_s, level)

    def _read_ledger(self) -> int:
        try:
            return int(self.ledger.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _write_ledger(self, total: int) -> None:
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.ledger.with_suffix(".tmp")
        tmp.write_text(str(total))
        tmp.replace(self.ledger)
