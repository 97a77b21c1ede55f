"""``POST /v1/observations`` (Tier 3 ingestion) and ``GET /v1/tier3/{producer_id}``.

Writes need ``Authorization: Bearer <token>`` where the token is the ``LEADTIME_API_TOKEN``
setting; when it is unset, writes are refused (503). The body
is an :class:`models.tier3.events.ObservationBatch`, validated strictly (a number must be a JSON
number, a flag a JSON boolean, a timestamp an ISO 8601 string); a malformed one gets a 422 whose
``loc`` names the field and nothing of it is applied. Duplicates are counted and ignored;
out-of-order events are accepted.

The Tier 3 service is restored from its last ``leadtime-tier3`` checkpoint on first use, once per
process; the restore message (events lost since that checkpoint) is in every response's
``restore`` field and in ``GET /v1/tier3``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from models.tier3.events import ObservationBatch
from serving.auth import token_guard
from serving.contract import GUARDED, raw_body, responses, validate_json

#: The component name of the body's schema in the OpenAPI document (see :func:`schemas`).
BODY = "ObservationBatch"


def schemas() -> dict[str, Any]:
    """The OpenAPI components of ``POST /v1/observations``'s body."""
    from pydantic import TypeAdapter

    from serving.contract import component_schemas

    return component_schemas(BODY, TypeAdapter(ObservationBatch))


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


def router(settings, clock=None) -> APIRouter:
    """The Tier 3 routes for ``settings`` (state under its home, checkpoints in its MLflow);
    timestamps are checked against ``clock`` (the decision loop's; default the wall clock)."""
    api = APIRouter(tags=["tier3"])
    runtime = _Lazy(settings)

    @api.post("/v1/observations", dependencies=[Depends(token_guard(settings))],
              responses=responses(422, *GUARDED),
              openapi_extra=raw_body(BODY, "Performance events and metric samples, in any "
                                           "order (at most 10,000 of each)."))
    async def observations(request: Request) -> Any:
        """Ingest performance events and metric samples; each updates Tier 3 at once."""
        now = clock.now() if clock is not None else time.time()
        batch, refused = await validate_json(request, ObservationBatch, context={"now": now})
        if refused is not None:
            return refused
        result = await run_in_threadpool(lambda: runtime.get().ingest_batch(batch))
        return {**result, "restore": runtime.restore}

    @api.get("/v1/tier3")
    def status() -> dict[str, Any]:
        service = runtime.get()
        return {"restore": runtime.restore, "checkpoint_version": service.version,
                "events_total": service.state.events_applied, "producers": service.state.producers()}

    @api.get("/v1/tier3/{producer_id}", responses=responses(404, 422))
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

    api.tier3_service = runtime.get  # the same restored service, for the decision engine
    return api
