"""``POST /v1/observations`` (Tier 3 ingestion) and ``GET /v1/tier3/{producer_id}``.

Writes need ``Authorization: Bearer <token>`` where the token is the ``LEADTIME_API_TOKEN``
environment variable, read on every request; when it is unset, writes are refused (503). The body
is an :class:`models.tier3.events.ObservationBatch`; a malformed one gets a 422 whose ``loc``
names the field. Duplicates are counted and ignored; out-of-order events are accepted.

The Tier 3 service is restored from its last ``leadtime-tier3`` checkpoint on first use, once per
process; the restore message (events lost since that checkpoint) is in every response's
``restore`` field and in ``GET /v1/tier3``.
"""

from __future__ import annotations

import hmac
import os
import threading
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from models.tier3.events import ObservationBatch

TOKEN_ENV = "LEADTIME_API_TOKEN"


def require_token(request: Request) -> None:
    """Refuse a write without the right bearer token (or when no token is configured)."""
    expected = os.environ.get(TOKEN_ENV)
    if not expected:
        raise HTTPException(503, f"writes are disabled: set {TOKEN_ENV} on the server")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


class _Lazy:
    """The process's Tier 3 service, restored on first use."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.service = None
        self.restore: str | None = None

    def get(self):
        with self.lock:
            if self.service is None:
                from models.tier3.service import Tier3Service

                self.service, info = Tier3Service.restore(self.settings)
                self.restore = info.message()
            return self.service


def router(settings) -> APIRouter:
    """The Tier 3 routes for ``settings`` (state under its home, checkpoints in its MLflow)."""
    api = APIRouter(tags=["tier3"])
    runtime = _Lazy(settings)

    @api.post("/v1/observations", dependencies=[Depends(require_token)])
    def observations(batch: ObservationBatch) -> dict[str, Any]:
        """Ingest performance events and metric samples; each updates Tier 3 at once."""
        result = runtime.get().ingest_batch(batch)
        return {**result, "restore": runtime.restore}

    @api.get("/v1/tier3")
    def status() -> dict[str, Any]:
        service = runtime.get()
        return {"restore": runtime.restore, "checkpoint_version": service.version,
                "events_total": service.state.events_applied, "producers": service.state.producers()}

    @api.get("/v1/tier3/{producer_id}")
    def assess(producer_id: str) -> dict[str, Any]:
        """Tier 3's prediction for the producer (engine currency), its risk and the evidence."""
        a = runtime.get().assess(producer_id)
        if a.prediction is None and not a.evidence["hit"]:
            raise HTTPException(404, f"no observations of producer {producer_id!r} yet")
        p = a.prediction
        return {"producer_id": producer_id, "risk": a.risk, "flagged": a.flagged,
                "prediction": None if p is None else
                {"point": p.point, "lower": p.lower, "upper": p.upper},
                "evidence": a.evidence}

    return api
