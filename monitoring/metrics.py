"""``/metrics`` in the Prometheus text format, from a registry private to each app instance."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from leadtime.engine import FleetDecisions


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("leadtime_http_requests", "HTTP requests.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("leadtime_http_request_seconds", "HTTP request latency.",
                                 ["route"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.passes = Histogram("leadtime_engine_pass_seconds",
                                "Time of one engine pass (tiers + decisions + log).", registry=r,
                                buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.decisions = Counter("leadtime_decisions", "Decisions made, by action.",
                                 ["action", "act"], registry=r)
        self.load_score = Gauge("leadtime_load_score", "Predicted load / current capacity.",
                                ["producer_id"], registry=r)
        self.target = Gauge("leadtime_target_instances", "Target instances.", ["producer_id"],
                            registry=r)
        self.degraded = Gauge("leadtime_tier_degraded", "1 when a tier is degraded.", ["tier"],
                              registry=r)
        self.reloads = Counter("leadtime_reloads", "Reloads, by result.", ["result"], registry=r)

    def observe_pass(self, fleet: FleetDecisions, seconds: float, errors: dict[str, str]) -> None:
        self.passes.observe(seconds)
        for pid, d in fleet.decisions.items():
            self.decisions.labels(d.action, str(d.act).lower()).inc()
            if d.load_score is not None:
                self.load_score.labels(pid).set(d.load_score)
            self.target.labels(pid).set(d.target_instances)
        for tier in ("tier1", "tier2", "tier3"):
            self.degraded.labels(tier).set(1 if tier in errors else 0)

    def install(self, app: FastAPI, runtime: Any) -> None:
        @app.middleware("http")
        async def count(request: Request, call_next):
            began = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.requests.labels(path, request.method, str(response.status_code)).inc()
            self.latency.labels(path).observe(time.perf_counter() - began)
            return response

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
