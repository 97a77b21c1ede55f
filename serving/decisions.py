"""The allocators' API around the decision loop: decisions, tier breakdowns, reload, readiness.

:class:`DecisionRuntime` loads what the loop needs (``leadtime.yaml``, the Tier 1 champion, the
tier weights) and builds one :class:`loop.decision_loop.DecisionLoop`. A background thread runs
the loop every ``engine.decision_interval_s`` (wall time) and at once whenever an allocator
reports states; every GET only reads the latest pass, so reads never wait for a model, a tier or
the decision log. ``POST /v1/admin/reload`` re-reads the configuration and the champions (they
take effect at the next pass); each part that fails keeps its last loaded value, and says so in
``/readyz``. The loop re-weights the tiers daily from its own record, as in the replay; weights
promoted in the registry by the ``recalibrate`` flow (reviewed there) replace them on reload.

The loop's state lives in this process: ``leadtime serve`` runs one worker (``--workers`` above 1
is refused) and an allocator reports to that one process. On restart the loop reads its state
back from the decision log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from leadtime.config import (
    RESOURCE_NAME,
    ConfigError,
    LeadtimeConfig,
    load_config,
    resource_key,
    shard,
)
from leadtime.engine import Decision, TierPrediction
from loop.clock import Clock, WallClock
from loop.collector import FleetCollector
from loop.decision_loop import TIERS, DecisionLoop, NotRecorded, Pass, Report
from loop.sources import Tier1Champion, Tier2Announced, Tier3Assess, TierSource, Unavailable
from serving.auth import token_guard
from serving.contract import GUARDED, responses

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from leadtime.settings import Settings
    from loop.actuators import Actuator
    from loop.decision_log import DecisionLog
    from models.tier2.inflight import AnnouncedWork
    from models.tier3.service import Tier3Service
    from monitoring.metrics import Metrics

log = logging.getLogger(__name__)


class ProducerStateIn(BaseModel):
    """What an allocator reports for one producer (strict: numbers are JSON numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    producer_id: str = Field(min_length=1, max_length=200)
    instances: int = Field(ge=0, le=1_000_000, strict=False,  # JSON Schema: 3.0 is an integer
                           description="Running plus starting instances.")
    current_load: float | None = Field(default=None, ge=0, le=1e15)
    last_scale_out_s: float | None = Field(default=None, ge=0, le=1e12,
                                           description="Unix seconds of the last scale-out.")
    loads: dict[Annotated[str, StringConstraints(pattern=RESOURCE_NAME)],
                Annotated[float, Field(ge=0, le=1e15)]] = Field(
        default_factory=dict, max_length=16, json_schema_extra={"additionalProperties": False},
        description="The current load of each resource the producer declares in leadtime.yaml "
                    "(e.g. {\"cpu\": 3.2, \"memory\": 11e9}); current_load is its resource "
                    "named load.")


    @field_validator("instances", mode="before")
    @classmethod
    def _a_json_number(cls, value: Any) -> Any:
        if isinstance(value, bool | str):
            raise ValueError("instances must be a JSON number (an integer)")
        return value


class StateBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    producers: list[ProducerStateIn] = Field(min_length=1, max_length=100_000)


#: Long polls (``after_pass``) that may wait at once; one more is answered 429.
MAX_WAITING = 1000
#: The most decisions one page of ``GET /v1/decisions/history`` holds.
HISTORY_MAX = 1000


class UnknownProducers(LookupError):
    """A state report naming producers that are not in ``leadtime.yaml``."""

    def __init__(self, unknown: list[str]) -> None:
        shown = ", ".join(repr(p[:64]) for p in unknown[:5])
        more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
        super().__init__(f"{len(unknown):,} producer id(s) are not in leadtime.yaml: {shown}"
                         f"{more}; nothing of the report was recorded")


class UnknownResources(ValueError):
    """A state report naming resources its producer does not declare in ``leadtime.yaml``."""


def resource_problems(batch: StateBatch, keys: Mapping[str, Mapping[str, str]]) -> list[str]:
    """What a batch reports of resources its producers do not declare."""
    problems = []
    for p in batch.producers:
        declared = keys.get(p.producer_id, {"load": p.producer_id})
        unknown = sorted(set(p.loads or {}) - set(declared))
        if unknown:
            problems.append(f"{p.producer_id!r} declares no resource {', '.join(unknown)} "
                            f"(its resources: {', '.join(declared)})")
        elif p.current_load is not None and "load" not in declared:
            problems.append(f"{p.producer_id!r} is sized on {', '.join(declared)}: report "
                            "them in loads, not current_load")
    return problems


class TooManyWaiting(RuntimeError):
    """More long polls than :data:`MAX_WAITING` would wait at once."""


@dataclass(frozen=True)
class Rendered:
    """One pass's ``GET /v1/decisions`` answer, serialised once: the bytes, their gzip and
    their ETag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, content: dict[str, Any]) -> Rendered:
        import gzip
        import hashlib

        body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        return cls(body, gzip.compress(body, compresslevel=5, mtime=0), etag)


class DecisionRuntime:
    """Loads the loop's inputs, owns the loop and the thread that runs it."""

    def __init__(
        self,
        settings: Settings,
        tier3: Callable[[], Tier3Service] | None = None,
        tier2: AnnouncedWork | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.tier3 = tier3  # restored lazily, on the first pass that asks
        self.tier2 = tier2  # or anything with AnnouncedWork's predict
        self.clock = clock or WallClock()
        self.loop: DecisionLoop | None = None
        self.config: LeadtimeConfig | None = None
        self.config_error: str | None = "not loaded yet"
        self.tier1: PyFuncModel | None = None
        self.tier1_version: str | None = None
        self.tier1_error: str | None = None
        self.weights_source = "config"
        self.weights_error: str | None = None
        self.loaded_at = 0.0
        pools = getattr(settings, "shard_pools", None)  # this process's share of the pools
        self.shard_pools = [p.strip() for p in pools.split(",") if p.strip()] if pools else None
        self.metrics: Metrics | None = None  # set by mount()
        self.reload_hooks: list[Callable[[], None]] = []  # other champions reload re-reads
        self.champion_status: dict[str, Callable[[], dict[str, Any]]] = {}  # for /readyz
        self._reload_lock = threading.Lock()
        self._passed = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: DecisionLog | None = None
        self._known: tuple[LeadtimeConfig, frozenset[str]] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None  # where long polls wait
        self._new_pass: asyncio.Event | None = None
        self._waiting = 0  # long polls waiting now (touched on the event loop only)
        self.rendered: dict[tuple[int, str | None], Rendered] = {}  # the latest pass, as bytes
        self.actuators: list[Actuator] = self.build_actuators()
        self.collector = FleetCollector()  # the fleet's state frozen out of each collection
        self.published = -1  # the last pass whose effects are applied (actuators, metrics)

    # --- loading ----------------------------------------------------------------------------

    @property
    def decision_log(self) -> DecisionLog:
        if self._log is None:
            from loop.decision_log import DecisionLog

            self._log = DecisionLog(self.settings.decision_log)
        return self._log

    def sources(self) -> list[TierSource]:
        out: list[TierSource] = [
            Tier1Champion(self.tier1) if self.tier1 is not None
            else Unavailable("tier1", self.tier1_error or "no Tier 1 champion loaded"),
            Tier2Announced(self.tier2, lambda: self.config.tier2_scales() if self.config else {},
                           lambda: self.config.resource_owners() if self.config else {})
            if self.tier2 is not None else Unavailable("tier2", "no announced-demand source wired"),
            Tier3Assess(self.tier3) if self.tier3 is not None
            else Unavailable("tier3", "no Tier 3 service"),
        ]
        return out

    def build_actuators(self) -> list[Actuator]:
        """HAProxy, when ``LEADTIME_HAPROXY_SOCKET`` is set (see :mod:`loop.actuators`)."""
        address = getattr(self.settings, "haproxy_socket", None)
        if not address:
            return []
        from loop.actuators import HAProxyWeights

        return [HAProxyWeights(address)]

    def _actuate(self, result: Pass) -> None:
        """Apply the pass (already logged) through each actuator; a failure is reported."""
        for actuator in self.actuators:
            try:
                actuator.apply(result, self.config)
            except Exception as exc:  # an actuator must not take the loop down
                actuator.error = f"{type(exc).__name__}: {exc}"
                log.exception("actuator %s failed", actuator.name)
            if self.metrics is not None:
                self.metrics.actuator_up.labels(actuator.name).set(
                    0 if getattr(actuator, "error", None) else 1)

    def state_sources(self) -> list[Any]:
        """Prometheus, when ``LEADTIME_PROMETHEUS_URL`` is set (see :mod:`loop.state_sources`)."""
        url = getattr(self.settings, "prometheus_url", None)
        if not url:
            return []
        from loop.state_sources import PrometheusStates

        return [PrometheusStates(url, self.settings.prometheus_timeout_s)]

    def load(self, *, models: bool = True) -> None:
        """Re-read the configuration and the champions; what fails keeps its previous value."""
        with self._reload_lock:
            try:
                self.config = shard(load_config(self.settings.config_path),
                                    getattr(self.settings, "shard_index", 0),
                                    getattr(self.settings, "shard_count", 1),
                                    self.shard_pools)
                self.config_error = None
            except ConfigError as exc:
                self.config_error = str(exc)
            weights = None
            if models:
                from loop.weights_registry import load_weights
                from models.tier1.registry import load_champion

                try:
                    replacing = self.tier1 is not None
                    self.tier1, self.tier1_version = load_champion(
                        self.settings.baseline_model_name)
                    self.tier1_error = None
                    if replacing:
                        self._warm_tier1()
                except Exception as exc:  # registry unreachable, no champion, bad artefact
                    kept = (f"; serving last loaded version {self.tier1_version}"
                            if self.tier1 is not None else "")
                    self.tier1_error = f"{type(exc).__name__}: {exc}{kept}"
                try:
                    weights, version = load_weights(self.settings.weights_model_name)
                    self.weights_source = f"{self.settings.weights_model_name} v{version}"
                    self.weights_error = None
                except Exception as exc:
                    self.weights_error = f"{type(exc).__name__}: {exc}"
            self.loaded_at = self.clock.now()
            if self.config is not None:
                if self.loop is None:
                    self.loop = DecisionLoop(self.config, self.sources(), self.clock,
                                             decision_log=self.decision_log, recalibrate=True,
                                             on_pass=self._on_pass,
                                             state_sources=self.state_sources())
                    if self.loop.restore():
                        log.info("decision loop state restored from %s", self.settings.decision_log)
                else:
                    self.loop.configure(self.config)
                    self.loop.set_sources(self.sources())
                if weights is not None:
                    self.loop.set_weights(weights, self.weights_source)
            if self.metrics is not None:
                self.metrics.reloads.labels("ok" if self.config_error is None
                                            else "config_error").inc()
        # what was loaded takes effect at the next pass (the schedule's, or a state report's)

    def _warm_tier1(self) -> None:
        """Ask a champion that replaces another the loop's question once for every producer,
        before the loop is handed it: its forecast tables (one per producer, 4 to 15 ms each by
        recipe) are built here, in the reload, while passes go on with the previous champion,
        instead of in the first pass after it (a minute or more at 10,000 producers). The
        first champion of a process is not warmed: nothing would serve meanwhile, and start-up
        must answer its liveness probe, so the first pass builds them in the background."""
        if self.tier1 is None or self.config is None:
            return
        try:
            Tier1Champion(self.tier1).answer(self.config.resource_configs(), self.clock.now(),
                                             self.config.engine.level)
        except Exception as exc:  # the first pass asks again, and says what fails
            log.warning("warming the Tier 1 champion failed: %s", exc)

    def _on_pass(self, result: Pass) -> None:
        if self.metrics is not None:
            loop = self.loop
            self.metrics.observe_pass(
                result.fleet, result.seconds, result.degraded, tiers=result.tiers,
                loads={p: r.current_load for p, r in (loop.states if loop else {}).items()
                       if r.current_load is not None},
                sources=[s.name for s in (loop.state_sources if loop else [])],
                decided_at=result.decided_at)
        self._actuate(result)
        self.rendered.clear()
        self.collector.after_pass()
        self.published = result.number  # a long poll answers once the pass has been applied
        with self._passed:
            self._passed.notify_all()
        if self._event_loop is not None:
            try:
                self._event_loop.call_soon_threadsafe(self._announce_pass)
            except RuntimeError:  # the event loop has closed (the app stopped)
                self._event_loop = None

    # --- the schedule ---------------------------------------------------------------------

    def start(self) -> None:
        """Run a first pass now, then keep running the loop on a background thread."""
        if self.loop is not None:
            self.loop.step()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="decision-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.collector.release()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            interval = self.config.engine.decision_interval_s if self.config else 60.0
            self._wake.wait(timeout=max(0.0, interval - (time.monotonic() - last)))
            if self._stop.is_set():
                return
            woken = self._wake.is_set()
            self._wake.clear()
            if self.loop is None or (not woken and time.monotonic() - last < interval):
                continue
            try:
                self.loop.step()
            except Exception:  # the thread must survive a bad pass; the next one tries again
                log.exception("decision pass failed")
            last = time.monotonic()

    # --- state reports ----------------------------------------------------------------------

    def report(self, batch: StateBatch) -> tuple[int, int]:
        """Record the states durably and wake the loop; returns (accepted, the last pass before
        them). A batch naming a producer not in ``leadtime.yaml`` is refused whole
        (:class:`UnknownProducers`), and one the log cannot write raises
        :class:`loop.decision_loop.NotRecorded`; either way nothing of it is applied."""
        loop, config = self.loop, self.config
        if loop is None or config is None:
            raise LookupError(self.config_error or "no configuration loaded")
        known = self.known_producers(config)
        unknown = sorted({p.producer_id for p in batch.producers} - known)
        if unknown:
            raise UnknownProducers(unknown)
        problems = resource_problems(batch, config.resource_keys())
        if problems:
            raise UnknownResources("; ".join(problems[:5]) + "; nothing of the report was "
                                   "recorded")
        before = loop.passes
        count = loop.report((Report(p.producer_id, p.instances, p.current_load,
                                    p.last_scale_out_s, p.loads or None)
                             for p in batch.producers),
                            durable=True)
        self._wake.set()  # states reported: decide with them now
        return count, before

    def resource_keys(self) -> dict[str, dict[str, str]]:
        """Per configured producer, its resources' keys (:meth:`LeadtimeConfig.resource_keys`)."""
        return self.config.resource_keys() if self.config is not None else {}

    def known_producers(self, config: LeadtimeConfig | None = None) -> frozenset[str]:
        """The producer ids of ``config`` (default: the loaded one), computed once per config."""
        config = config or self.config
        if config is None:
            return frozenset()
        if self._known is None or self._known[0] is not config:
            self._known = (config, frozenset(config.producers()))
        return self._known[1]

    async def wait_for(self, after_pass: int, wait_s: float = 2.0) -> Pass:
        """The latest pass once it is newer than ``after_pass``, or after ``wait_s``: awaited on
        the event loop, so long polls hold no worker thread and never delay ``/healthz``. At
        most :data:`MAX_WAITING` wait at once; one more raises :class:`TooManyWaiting`."""
        loop = self.loop
        if loop is None or self.config is None:
            raise LookupError(self.config_error or "no configuration loaded")
        if self._waiting >= MAX_WAITING:
            raise TooManyWaiting(f"{MAX_WAITING} long polls are already waiting; retry, or "
                                 "read without after_pass")
        self._event_loop = asyncio.get_running_loop()
        if self._new_pass is None:
            self._new_pass = asyncio.Event()
        self._waiting += 1
        try:
            deadline = time.monotonic() + wait_s
            while loop.latest is None or self.published <= after_pass:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._new_pass.wait(), remaining)
                except TimeoutError:
                    break
        finally:
            self._waiting -= 1
        if loop.latest is None:
            raise LookupError("no decision pass has run yet")
        return loop.latest

    def _announce_pass(self) -> None:
        """On the event loop: wake every waiting long poll (and arm a new event)."""
        if self._new_pass is not None:
            self._new_pass.set()
            self._new_pass = asyncio.Event()

    def latest(self, after_pass: int | None = None, wait_s: float = 2.0) -> Pass:
        """The latest pass; with ``after_pass``, wait up to ``wait_s`` for a newer one."""
        if self.loop is None or self.config is None:
            raise LookupError(self.config_error or "no configuration loaded")
        if after_pass is not None:
            deadline = time.monotonic() + wait_s
            with self._passed:
                while (self.loop.latest is None or self.published <= after_pass) and (
                        remaining := deadline - time.monotonic()) > 0:
                    self._passed.wait(remaining)
        result = self.loop.latest
        if result is None:
            raise LookupError("no decision pass has run yet")
        return result

    def readiness(self) -> dict[str, Any]:
        config = self.config
        latest = self.loop.latest if self.loop is not None else None
        degraded = dict(latest.degraded) if latest is not None else {}
        weights = self.loop.weights if self.loop is not None else None
        return {
            "ready": config is not None,
            "config": {"path": str(self.settings.config_path), "error": self.config_error,
                       "mode": config.engine.mode if config else None,
                       "producers": len(config.producers()) if config else 0,
                       "shard": {"index": getattr(self.settings, "shard_index", 0),
                                 "count": getattr(self.settings, "shard_count", 1),
                                 "pools": sorted(config.pools) if config else []}},
            "champions": {
                self.settings.baseline_model_name: {"version": self.tier1_version,
                                                    "loaded": self.tier1 is not None,
                                                    "error": self.tier1_error},
                self.settings.weights_model_name: {"source": self.weights_source,
                                                   "weights": weights,
                                                   "error": self.weights_error},
                **{name: status() for name, status in self.champion_status.items()},
            },
            "tiers": {t: ("degraded" if t in degraded else "ok") for t in TIERS},
            "state_sources": {s.name: {"url": getattr(getattr(s, "client", None), "url", None),
                                       "status": "degraded" if s.name in degraded else "ok",
                                       "error": degraded.get(s.name)}
                              for s in (self.loop.state_sources if self.loop else [])},
            "actuators": {a.name: a.status() for a in self.actuators},
            "degraded": degraded,
            "decided_at": latest.decided_at if latest is not None else None,
            "loaded_at": self.loaded_at,
        }


# --- JSON shapes ------------------------------------------------------------------------------


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def decision_json(d: Decision, pool: str | None) -> dict[str, Any]:
    p = d.prediction
    return {
        "producer_id": d.producer_id, "pool": pool, "action": d.action, "act": d.act,
        "dry_run": d.dry_run, "target_instances": d.target_instances,
        "current_instances": d.current_instances, "load_score": _f(d.load_score),
        "floor": d.floor, "resource": d.resource,
        "by_resource": d.by_resource or {d.resource: d.target_instances},
        "prediction": None if p is None else {
            "point": _f(p.point), "lower": _f(p.lower), "upper": _f(p.upper),
            "weights": p.weights, "missing": list(p.missing)},
        "sizing": None if d.sizing is None else {
            "value": _f(d.sizing.value), "quantile": d.sizing.quantile,
            "source": d.sizing.source, "factor": _f(d.sizing.factor),
            "loss": _f(d.sizing.loss), "price": d.sizing.price, "budget": d.sizing.budget,
            "reacting_spend_s": _f(d.sizing.reacting_spend),
            "own_spend_s": _f(d.sizing.own_spend), "aim": _f(d.sizing.aim),
            "aside": None if d.sizing.aside is None else {
                "sizing_missed": _f(d.sizing.aside[0]), "twin_missed": _f(d.sizing.aside[1])}},
        "reasons": list(d.reasons),
    }


def _tier_json(t: TierPrediction | None) -> dict[str, float | None] | None:
    return None if t is None else {"point": _f(t.point), "lower": _f(t.lower), "upper": _f(t.upper)}


def router(runtime: DecisionRuntime) -> APIRouter:
    settings = runtime.settings
    api = APIRouter(tags=["decisions"])
    guard = [Depends(token_guard(settings))]

    async def current(after_pass: int | None = None) -> Pass:
        try:
            if after_pass is None:
                return runtime.latest()
            return await runtime.wait_for(after_pass)
        except TooManyWaiting as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "1"}) from None
        except LookupError as exc:
            raise HTTPException(503, str(exc)) from None

    after = Query(default=None, ge=0, le=10**12,
                  description="Wait (up to 2 s) for a pass newer than this one: the `pass` a "
                              "state report answered with, to read the decisions it led to.")

    def render(result: Pass, pool: str | None) -> Rendered:
        """The pass's answer for ``pool`` (None: every pool), serialised once per pass."""
        key = (result.number, pool)
        found = runtime.rendered.get(key)
        if found is not None:
            return found
        config = runtime.config
        assert config is not None
        fleet = result.fleet
        pool_of = config.pool_of()
        items = [decision_json(d, pool_of.get(pid)) for pid, d in fleet.decisions.items()
                 if pool is None or pool_of.get(pid) == pool]
        pools = {name: {"redirect": pd_.redirect, "current_share": pd_.current_share,
                        "act": pd_.act, "reasons": list(pd_.reasons)}
                 for name, pd_ in fleet.pools.items() if pool is None or name == pool}
        rendered = Rendered.of({
            "pass": result.number, "decided_at": result.decided_at, "mode": config.engine.mode,
            "threshold": fleet.threshold, "weights": fleet.weights,
            "weights_source": result.weights_source, "degraded": result.degraded,
            "decisions": items, "pools": pools})
        if runtime.loop is not None and result is runtime.loop.latest:
            runtime.rendered[key] = rendered  # cleared at the next pass
        return rendered

    @api.get("/v1/decisions", responses={**responses(404, 422, 429, 503),
                                         304: {"description": "Not modified: the pass the "
                                                              "`If-None-Match` ETag names."}})
    async def decisions(request: Request, pool: str | None = Query(default=None, max_length=200),
                        after_pass: int | None = after) -> Response:
        """Allocate decisions for every producer (or one pool) and the pools' routing weights.

        The answer of a pass is serialised once and carries an ETag: `If-None-Match` with it
        answers 304 until the next pass; `Accept-Encoding: gzip` gets it compressed."""
        result = await current(after_pass)
        config = runtime.config
        assert config is not None
        if pool is not None and pool not in config.pools:
            shown = sorted(config.pools)[:20]
            raise HTTPException(404, f"no pool {pool[:64]!r}; pools: {shown}")
        key = (result.number, pool)
        rendered = runtime.rendered.get(key) or await run_in_threadpool(render, result, pool)
        headers = {"ETag": rendered.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == rendered.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(rendered.gzipped, media_type="application/json",
                            headers={**headers, "Content-Encoding": "gzip"})
        return Response(rendered.body, media_type="application/json", headers=headers)

    @api.get("/v1/decisions/history", responses=responses(422))
    def history(producer_id: str | None = Query(default=None, min_length=1, max_length=200),
                since: float | None = Query(default=None, ge=0, le=1e11,
                                            description="Unix seconds (decision time, from)."),
                until: float | None = Query(default=None, ge=0, le=1e11,
                                            description="Unix seconds (decision time, before)."),
                cursor: int = Query(default=0, ge=0, le=2**62,
                                    description="The `next` of the previous page."),
                limit: int = Query(default=100, ge=1, le=HISTORY_MAX)) -> dict[str, Any]:
        """Decisions read back from the decision log, oldest first: one producer's or every
        one's, in a window of decision time, a page of at most `limit` (up to 1,000); `next`
        is the cursor of the following page, null on the last."""
        rows = runtime.decision_log.history(producer_id, since, until, cursor, limit)
        return {"decisions": rows,
                "next": rows[-1]["decision_id"] if len(rows) == limit else None}

    @api.get("/v1/producers/{producer_id}", responses=responses(404, 422, 429, 503))
    async def producer(producer_id: str, after_pass: int | None = after) -> dict[str, Any]:
        """One producer's decision with each tier's answer and the weight it got."""
        result = await current(after_pass)
        fleet, tiers = result.fleet, result.tiers
        d = fleet.decisions.get(producer_id)
        if d is None:
            raise HTTPException(404, f"producer {producer_id[:64]!r} is not in the "
                                     "configuration")
        used = d.prediction.weights if d.prediction else {}
        # several resources: the binding one's tiers (each resource is answered under its key)
        key = resource_key(producer_id, d.resource) if d.by_resource else producer_id
        breakdown = {t: {"prediction": _tier_json(tiers.get(key, {}).get(t)),
                         "configured_weight": fleet.weights.get(t, 0.0),
                         "used_weight": used.get(t, 0.0),
                         "degraded": result.degraded.get(t)} for t in TIERS}
        assert runtime.config is not None
        return {"pass": result.number, "decided_at": result.decided_at, "tiers": breakdown,
                "decision": decision_json(d, runtime.config.pool_of().get(producer_id))}

    @api.get("/v1/selection-weights", responses=responses(404, 422, 503))
    async def selection(pool: str | None = Query(default=None, max_length=200)
                        ) -> dict[str, Any]:
        """Per pool, the share of new consumers the leasing agent should give each producer."""
        result = await current()
        fleet = result.fleet
        if pool is not None and pool not in fleet.pools:
            raise HTTPException(404, f"no pool {pool[:64]!r}")
        return {"decided_at": result.decided_at, "dry_run": fleet.dry_run,
                "pools": {n: {"weights": p.selection, "act": not p.dry_run}
                          for n, p in fleet.pools.items() if pool is None or n == pool}}

    @api.post("/v1/producers/state", dependencies=guard,
              responses=responses(400, 404, 422, *GUARDED))
    def report_state(batch: StateBatch) -> dict[str, Any]:
        """Allocators report instances and current load; the loop decides with them at once.

        The states are written to the decision log before this answers: a 200 survives a
        crash. A producer id not in leadtime.yaml refuses the whole batch (404)."""
        try:
            accepted, before = runtime.report(batch)
        except UnknownProducers as exc:
            raise HTTPException(404, str(exc)) from None
        except UnknownResources as exc:
            raise HTTPException(422, str(exc)) from None
        except (LookupError, NotRecorded) as exc:
            raise HTTPException(503, str(exc)) from None
        return {"accepted": accepted, "pass": before, "durable": True}

    @api.post("/v1/admin/reload", dependencies=guard, responses=responses(*GUARDED))
    def reload() -> dict[str, Any]:
        """Re-read leadtime.yaml and the champions by alias (Tier 1, weights, Tier 2); each is
        swapped atomically, and one that fails to load keeps its last loaded version."""
        runtime.load()
        for hook in runtime.reload_hooks:
            hook()
        return runtime.readiness()

    @api.get("/readyz", responses={503: {"description": "Not ready (no configuration): the "
                                                       "same body, saying why."}})
    async def readyz(response: Response) -> dict[str, Any]:
        """Which champions are loaded and which tiers are degraded (503 without a config)."""
        body = runtime.readiness()
        if not body["ready"]:
            response.status_code = 503
        return body

    return api


class AsOfClock:
    """A clock set to ``start_s`` when created that advances with wall time from there
    (``leadtime serve --as-of``: the loop decides as of the end of a replayed trace)."""

    def __init__(self, start_s: float) -> None:
        self.start_s = float(start_s)
        self._began = time.monotonic()

    def now(self) -> float:
        return self.start_s + (time.monotonic() - self._began)


def loop_clock(settings, clock: Clock | None = None) -> Clock:
    """The decision loop's clock: ``settings.as_of`` when set (replacing the wall clock, not a
    clock a caller chose), else ``clock``, else the wall clock."""
    as_of = getattr(settings, "as_of", None)
    if as_of is not None and (clock is None or isinstance(clock, WallClock)):
        from datetime import UTC

        stamp = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)
        log.info("decision loop clock: as of %s, advancing with wall time", stamp.isoformat())
        return AsOfClock(stamp.timestamp())
    return clock or WallClock()


def mount(app: FastAPI, settings: Settings, *, tier3: Callable[[], Tier3Service] | None = None,
          tier2: AnnouncedWork | None = None, clock: Clock | None = None) -> DecisionRuntime:
    """Create the runtime, mount its routes and ``/metrics``; the caller loads and starts it."""
    from monitoring.metrics import Metrics

    runtime = DecisionRuntime(settings, tier3=tier3, tier2=tier2, clock=loop_clock(settings, clock))
    runtime.metrics = Metrics(settings.metrics_detail)
    app.include_router(router(runtime))
    runtime.metrics.install(app, runtime)
    return runtime


