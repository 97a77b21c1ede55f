"""The allocators' API: decisions, tier breakdowns, selection weights, reload, readiness, metrics.

:class:`DecisionRuntime` holds one immutable :class:`Snapshot` (config, Tier 1 champion, tier
weights, the versions loaded and why any is missing). ``POST /v1/admin/reload`` builds a new
snapshot beside the old one and swaps the reference: requests in flight keep the snapshot they
started with, none is dropped. A missing champion or an unreachable registry degrades that tier
(the engine renormalises over the others) and keeps the last loaded version if there was one.

Decisions are recomputed at most every ``engine.decision_interval_s`` and each pass is appended to
the decision log, so a busy ``GET /v1/decisions`` does not multiply log rows.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, Field

from leadtime.config import ConfigError, LeadtimeConfig, load_config
from leadtime.decision_log import DecisionLog
from leadtime.engine import (
    DEFAULT_WEIGHTS,
    Decision,
    FleetDecisions,
    ProducerState,
    TierPrediction,
    decide_all,
)
from serving.auth import token_guard

if TYPE_CHECKING:
    from serving.announced import AnnouncedDemand

log = logging.getLogger(__name__)
TIERS = ("tier1", "tier2", "tier3")


@dataclass(frozen=True)
class Snapshot:
    """Everything one engine pass reads; replaced whole on reload, never mutated."""

    config: LeadtimeConfig | None
    config_error: str | None = None
    tier1: Any = None  # mlflow pyfunc of the Tier 1 champion
    tier1_version: str | None = None
    tier1_error: str | None = None
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    weights_source: str = "config"
    weights_error: str | None = None
    loaded_at: float = 0.0


def _champion(name: str):
    from leadtime.registry import champion_version

    return champion_version(name)


def load_tier1(name: str):
    """(model, version) of the Tier 1 champion; LookupError when there is none."""
    import mlflow

    from leadtime.registry import model_uri

    version = _champion(name)
    if version is None:
        raise LookupError(f"no champion of {name!r} in the registry")
    return mlflow.pyfunc.load_model(model_uri(name)), str(version.version)


def load_weights(name: str) -> tuple[dict[str, float], str]:
    """Tier weights of the ``leadtime-weights`` champion (its run's ``weights.json``)."""
    import mlflow

    version = _champion(name)
    if version is None:
        raise LookupError(f"no champion of {name!r} yet (recalibrate has not promoted weights)")
    path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="weights.json")
    with open(path) as handle:
        weights = {k: float(v) for k, v in json.load(handle).items()}
    return weights, str(version.version)


class ProducerStateIn(BaseModel):
    """What an allocator reports for one producer."""

    producer_id: str = Field(min_length=1, max_length=200)
    instances: int = Field(ge=0, le=1_000_000, description="Running plus starting instances.")
    current_load: float | None = Field(default=None, ge=0, le=1e15)
    last_scale_out_s: float | None = Field(default=None, ge=0, le=1e12,
                                           description="Unix seconds of the last scale-out.")


class StateBatch(BaseModel):
    producers: list[ProducerStateIn] = Field(min_length=1, max_length=100_000)


class DecisionRuntime:
    """The engine as a service: snapshot, tier sources, state reports, cached passes, log."""

    def __init__(
        self,
        settings,
        tier3: Callable[[], Any] | None = None,
        tier2: AnnouncedDemand | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.tier3 = tier3  # () -> Tier3Service (lazy restore)
        self.tier2 = tier2  # serving.announced.AnnouncedDemand: the demand announced per producer
        self.clock = clock
        self.snapshot = Snapshot(config=None, config_error="not loaded yet")
        self._reload_lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self.states: dict[str, ProducerState] = {}
        self._last: tuple[float, Snapshot, FleetDecisions, dict] | None = None
        self._log: DecisionLog | None = None
        self.tier_errors: dict[str, str] = {}
        self.metrics = None  # serving.metrics.Metrics, set by mount()
        self.reload_hooks: list[Callable[[], None]] = []  # other champions reload re-reads
        self.champion_status: dict[str, Callable[[], dict[str, Any]]] = {}  # for /readyz

    # --- loading ----------------------------------------------------------------------------

    @property
    def decision_log(self) -> DecisionLog:
        if self._log is None:
            self._log = DecisionLog(self.settings.decision_log)
        return self._log

    def load(self, *, models: bool = True) -> Snapshot:
        """Build a new snapshot and swap it in; what fails keeps the previous value, and says so."""
        with self._reload_lock:
            old = self.snapshot
            try:
                config, config_error = load_config(self.settings.config_path), None
            except ConfigError as exc:
                config, config_error = old.config, str(exc)
            new = replace(old, config=config, config_error=config_error, loaded_at=self.clock())
            if config is not None and old.weights_source == "config":
                new = replace(new, weights=dict(config.engine.weights))
            if models:
                try:
                    model, version = load_tier1(self.settings.baseline_model_name)
                    new = replace(new, tier1=model, tier1_version=version, tier1_error=None)
                except Exception as exc:  # registry unreachable, no champion, bad artefact
                    kept = f"; serving last loaded version {old.tier1_version}" if old.tier1 else ""
                    new = replace(new, tier1_error=f"{type(exc).__name__}: {exc}{kept}")
                try:
                    weights, version = load_weights(self.settings.weights_model_name)
                    new = replace(new, weights=weights, weights_source=f"{self.settings.weights_model_name} v{version}",
                                  weights_error=None)
                except Exception as exc:
                    new = replace(new, weights_error=f"{type(exc).__name__}: {exc}")
            self.snapshot = new  # the atomic swap
            self._last = None  # next request decides with the new snapshot
            if self.metrics is not None:
                self.metrics.reloads.labels("ok" if config_error is None else "config_error").inc()
            return new

    # --- state reports ------------------------------------------------------------------------

    def report(self, batch: StateBatch) -> int:
        now = self.clock()
        for p in batch.producers:
            self.states[p.producer_id] = ProducerState(p.instances, p.current_load, now,
                                                       p.last_scale_out_s)
        return len(batch.producers)

    # --- tiers --------------------------------------------------------------------------------

    def tier_predictions(self, snap: Snapshot, now: float) -> dict[str, dict[str, TierPrediction | None]]:
        config = snap.config
        assert config is not None
        producers = config.producers()
        out: dict[str, dict[str, TierPrediction | None]] = {p: {} for p in producers}
        errors: dict[str, str] = {}
        if snap.tier1 is not None:
            try:
                ids = list(producers)
                stamps = [pd.Timestamp(now + producers[p].spinup_lead_time_s, unit="s")
                          .floor("min") for p in ids]
                frame = snap.tier1.predict(pd.DataFrame({"producer_id": ids, "timestamp": stamps}),
                                           params={"level": 95})
                for pid, point, lower, upper in zip(ids, frame["point"], frame["lower"],
                                                    frame["upper"]):
                    t = TierPrediction(float(point), float(lower), float(upper))
                    out[pid]["tier1"] = t if t.usable() else None
                stale = [pid for pid, m in zip(ids, frame["model"]) if m == "stale"]
                if stale:
                    errors["tier1"] = (f"champion too stale for now for {', '.join(stale[:5])}: "
                                       "refit it (baseline-daily) on recent load")
            except Exception as exc:
                errors["tier1"] = f"prediction failed: {type(exc).__name__}: {exc}"
        else:
            errors["tier1"] = snap.tier1_error or "no Tier 1 champion loaded"
        scales = config.tier2_scales()
        if self.tier2 is None:
            errors["tier2"] = "no announced-demand source wired"
        elif not scales:
            errors["tier2"] = ("no producer sets tier2_load_per_demand in the config: announced "
                               "demand is not turned into load")
        else:
            try:
                windows = {p: producers[p].spinup_lead_time_s for p in scales if p in producers}
                answered = self.tier2.predict(windows, scales, now)
                for pid, t in answered.items():
                    if pid in out:
                        out[pid]["tier2"] = t
                silent = [p for p in scales if p not in answered]
                if silent:
                    errors["tier2"] = (f"nothing announced yet through /v1/requests/predict for "
                                       f"{', '.join(silent[:5])}")
            except Exception as exc:
                errors["tier2"] = f"{type(exc).__name__}: {exc}"
        if self.tier3 is not None:
            try:
                service = self.tier3()
                for pid in producers:
                    out[pid]["tier3"] = service.assess(pid).prediction
            except Exception as exc:
                errors["tier3"] = f"{type(exc).__name__}: {exc}"
        else:
            errors["tier3"] = "no Tier 3 service"
        self.tier_errors = errors
        return out

    # --- decisions ----------------------------------------------------------------------------

    def decide(self, *, force: bool = False) -> tuple[float, Snapshot, FleetDecisions, dict]:
        """The current pass (recomputed and logged when older than the decision interval)."""
        snap = self.snapshot
        if snap.config is None:
            raise LookupError(snap.config_error or "no configuration loaded")
        last = self._last
        now = self.clock()
        interval = snap.config.engine.decision_interval_s
        if not force and last is not None and last[1] is snap and now - last[0] < interval:
            return last
        with self._pass_lock:
            last = self._last
            if not force and last is not None and last[1] is snap and now - last[0] < interval:
                return last
            began = time.perf_counter()
            config = snap.config
            tiers = self.tier_predictions(snap, now)
            configs = config.producers()
            fleet = decide_all(configs, tiers, self.states, config.pool_members(), snap.weights,
                               config.engine.threshold, config.dry_run)
            try:
                self.decision_log.append(fleet, tiers, configs, now, config.pool_of(),
                                         snap.weights_source)
            except Exception as exc:  # the log must not take decisions down; say so loudly
                log.error("decision log append failed: %s", exc)
                self.tier_errors["decision_log"] = f"append failed: {exc}"
            if self.metrics is not None:
                self.metrics.observe_pass(fleet, time.perf_counter() - began, self.tier_errors)
            self._last = (now, snap, fleet, tiers)
            return self._last

    def readiness(self) -> dict[str, Any]:
        snap = self.snapshot
        degraded = dict(self.tier_errors)
        if not degraded and snap.config is not None:
            degraded = {t: e for t, e in self._static_degraded(snap).items()}
        return {
            "ready": snap.config is not None,
            "config": {"path": str(self.settings.config_path), "error": snap.config_error,
                       "mode": snap.config.engine.mode if snap.config else None,
                       "producers": len(snap.config.producers()) if snap.config else 0},
            "champions": {
                self.settings.baseline_model_name: {"version": snap.tier1_version,
                                                    "loaded": snap.tier1 is not None,
                                                    "error": snap.tier1_error},
                self.settings.weights_model_name: {"source": snap.weights_source,
                                                   "weights": snap.weights,
                                                   "error": snap.weights_error},
                **{name: status() for name, status in self.champion_status.items()},
            },
            "tiers": {t: ("degraded" if t in degraded else "ok") for t in TIERS},
            "degraded": degraded,
            "loaded_at": snap.loaded_at,
        }

    def _static_degraded(self, snap: Snapshot) -> dict[str, str]:
        out = {}
        if snap.tier1 is None:
            out["tier1"] = snap.tier1_error or "no Tier 1 champion loaded"
        if self.tier2 is None or not snap.config.tier2_scales():
            out["tier2"] = "no announced-demand source wired, or no producer sets tier2_load_per_demand"
        if self.tier3 is None:
            out["tier3"] = "no Tier 3 service"
        return out


# --- JSON shapes ------------------------------------------------------------------------------


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def decision_json(d: Decision, pool: str | None) -> dict[str, Any]:
    p = d.prediction
    return {
        "producer_id": d.producer_id, "pool": pool, "action": d.action, "act": d.act,
        "dry_run": d.dry_run, "target_instances": d.target_instances,
        "current_instances": d.current_instances, "load_score": _f(d.load_score),
        "prediction": None if p is None else {
            "point": _f(p.point), "lower": _f(p.lower), "upper": _f(p.upper),
            "weights": p.weights, "missing": list(p.missing)},
        "reasons": list(d.reasons),
    }


def _tier_json(t: TierPrediction | None) -> dict[str, float | None] | None:
    return None if t is None else {"point": _f(t.point), "lower": _f(t.lower), "upper": _f(t.upper)}


def router(runtime: DecisionRuntime) -> APIRouter:
    settings = runtime.settings
    api = APIRouter(tags=["decisions"])
    guard = [Depends(token_guard(settings))]

    def current():
        try:
            return runtime.decide()
        except LookupError as exc:
            raise HTTPException(503, str(exc)) from None

    @api.get("/v1/decisions")
    def decisions(pool: str | None = Query(default=None, max_length=200)) -> dict[str, Any]:
        """Allocate decisions for every producer (or one pool) and the pools' routing weights."""
        decided_at, snap, fleet, _ = current()
        assert snap.config is not None
        pool_of = snap.config.pool_of()
        if pool is not None and pool not in snap.config.pools:
            raise HTTPException(404, f"no pool {pool!r}; pools: {sorted(snap.config.pools)}")
        items = [decision_json(d, pool_of.get(pid)) for pid, d in fleet.decisions.items()
                 if pool is None or pool_of.get(pid) == pool]
        pools = {name: {"redirect": pd_.redirect, "current_share": pd_.current_share,
                        "act": pd_.act, "reasons": list(pd_.reasons)}
                 for name, pd_ in fleet.pools.items() if pool is None or name == pool}
        return {"decided_at": decided_at, "mode": snap.config.engine.mode,
                "threshold": fleet.threshold, "weights": fleet.weights,
                "weights_source": snap.weights_source,
                "degraded": runtime.tier_errors, "decisions": items, "pools": pools}

    @api.get("/v1/producers/{producer_id}")
    def producer(producer_id: str) -> dict[str, Any]:
        """One producer's decision with each tier's answer and the weight it got."""
        decided_at, snap, fleet, tiers = current()
        d = fleet.decisions.get(producer_id)
        if d is None:
            raise HTTPException(404, f"producer {producer_id!r} is not in the configuration")
        used = d.prediction.weights if d.prediction else {}
        breakdown = {t: {"prediction": _tier_json(tiers.get(producer_id, {}).get(t)),
                         "configured_weight": fleet.weights.get(t, 0.0),
                         "used_weight": used.get(t, 0.0),
                         "degraded": runtime.tier_errors.get(t)} for t in TIERS}
        assert snap.config is not None
        return {"decided_at": decided_at, "tiers": breakdown,
                "decision": decision_json(d, snap.config.pool_of().get(producer_id))}

    @api.get("/v1/selection-weights")
    def selection(pool: str | None = Query(default=None, max_length=200)) -> dict[str, Any]:
        """Per pool, the share of new consumers the leasing agent should give each producer."""
        decided_at, _snap, fleet, _ = current()
        if pool is not None and pool not in fleet.pools:
            raise HTTPException(404, f"no pool {pool!r}")
        return {"decided_at": decided_at, "dry_run": fleet.dry_run,
                "pools": {n: {"weights": p.selection, "act": not p.dry_run}
                          for n, p in fleet.pools.items() if pool is None or n == pool}}

    @api.post("/v1/producers/state", dependencies=guard)
    def report_state(batch: StateBatch) -> dict[str, Any]:
        """Allocators report instances and current load (used by the next decision pass)."""
        return {"accepted": runtime.report(batch)}

    @api.post("/v1/admin/reload", dependencies=guard)
    def reload() -> dict[str, Any]:
        """Re-read leadtime.yaml and the champions by alias (Tier 1, weights, Tier 2); each is
        swapped atomically, and one that fails to load keeps its last loaded version."""
        runtime.load()
        for hook in runtime.reload_hooks:
            hook()
        return runtime.readiness()

    @api.get("/readyz")
    def readyz(response: Response) -> dict[str, Any]:
        """Which champions are loaded and which tiers are degraded (503 without a config)."""
        body = runtime.readiness()
        if not body["ready"]:
            response.status_code = 503
        return body

    return api


def mount(app: FastAPI, settings, *, tier3: Callable[[], Any] | None = None,
          tier2: AnnouncedDemand | None = None) -> DecisionRuntime:
    """Create the runtime, mount its routes and ``/metrics``; the caller calls ``runtime.load``."""
    from serving.metrics import Metrics

    runtime = DecisionRuntime(settings, tier3=tier3, tier2=tier2)
    runtime.metrics = Metrics()
    app.include_router(router(runtime))
    runtime.metrics.install(app, runtime)
    return runtime


