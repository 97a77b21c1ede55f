"""``/metrics`` in the Prometheus text format, from a registry private to each app instance.

Besides the service's own counters it exports the latest decision pass, per producer, so that
Grafana and ``prometheus-adapter`` can read the predictions (:class:`PassCollector`): the
predicted load of each tier and combined (point, lower, upper), the load score, target and
current instances, the tier weights used, the current load, the pools' redirect weights, and
whether each state source (Prometheus) answered. These are built at scrape time from one pass,
so a scrape never sees half of one pass and half of another, and a producer removed from
``leadtime.yaml`` disappears with the next pass.

**Cardinality.** Prometheus advises against many series per entity at fleet size, so the
per-producer series come in two levels (``LEADTIME_METRICS_DETAIL``):

* ``decisions``: what a dashboard, ``prometheus-adapter`` or an alert needs: the combined
  prediction's point, lower and upper bounds, the load score, target and current instances,
  the current load, and the pool's redirect weight: :data:`DECISION_SERIES` (8) per producer;
* ``full``: also each tier's prediction (three bounds each), the tier weights and the decision's
  action: up to :data:`FULL_SERIES` (21) per producer;
* ``auto`` (the default): ``full`` for a fleet of up to :data:`AUTO_FULL_UP_TO` producers,
  ``decisions`` beyond.

A producer sized on several resources (``resources`` in ``leadtime.yaml``) adds three series per
resource at either level: the instances it needs, whether it binds, and its latest load.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from leadtime.config import resource_key
from leadtime.engine import FleetDecisions

TIERS = ("tier1", "tier2", "tier3")
DECISION_SERIES = 8  # combined point/lower/upper, score, target, current, load, redirect
FULL_SERIES = DECISION_SERIES + 3 * len(TIERS) + len(TIERS) + 1  # tiers, weights, action
AUTO_FULL_UP_TO = 200  # producers: ``auto`` exports the full detail up to this fleet size


def full_detail(detail: str, producers: int) -> bool:
    """Whether the per-tier series are exported for a fleet of ``producers``.

    >>> full_detail("auto", 200), full_detail("auto", 201), full_detail("full", 10_000)
    (True, False, True)
    """
    if detail not in ("auto", "full", "decisions"):
        raise ValueError(f"metrics detail must be auto, full or decisions, not {detail!r}")
    return detail == "full" or (detail == "auto" and producers <= AUTO_FULL_UP_TO)


class PassCollector:
    """Gauges of the latest pass, produced at scrape time (see the module docstring)."""

    def __init__(self, detail: str = "auto") -> None:
        full_detail(detail, 0)  # a bad level fails here, not at the first scrape
        self.detail = detail
        self.latest: tuple[Any, ...] | None = None  # (fleet, tiers, loads, degraded, sources, at)

    def set(self, fleet: FleetDecisions, tiers: Any, loads: dict[str, float],
            degraded: dict[str, str], sources: list[str], decided_at: float | None) -> None:
        self.latest = (fleet, tiers, loads, dict(degraded), list(sources), decided_at)

    def describe(self):
        return []  # unchecked collector: its families depend on the pass

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        if self.latest is None:
            return
        fleet, tiers, loads, degraded, sources, decided_at = self.latest
        predicted = GaugeMetricFamily(
            "leadtime_predicted_load", "Predicted peak load of [now, now + spin-up lead time], "
            "per tier and combined, point and interval bounds.",
            labels=["producer_id", "tier", "bound"])
        score = GaugeMetricFamily("leadtime_load_score", "Predicted load / current capacity.",
                                  labels=["producer_id"])
        target = GaugeMetricFamily("leadtime_target_instances", "Target instances.",
                                   labels=["producer_id"])
        current = GaugeMetricFamily("leadtime_current_instances",
                                    "Instances the decision started from (reported or read).",
                                    labels=["producer_id"])
        weight = GaugeMetricFamily("leadtime_tier_weight", "Weight each tier got in the combined "
                                   "prediction (renormalised over the tiers that answered).",
                                   labels=["producer_id", "tier"])
        observed = GaugeMetricFamily("leadtime_current_load", "Latest observed load (reported "
                                     "or read from Prometheus).", labels=["producer_id"])
        action = GaugeMetricFamily("leadtime_decision_act", "1 when the decision is to be "
                                   "applied (a change, not a dry run).",
                                   labels=["producer_id", "action"])
        redirect = GaugeMetricFamily("leadtime_redirect_weight", "Share of the pool's traffic "
                                     "each producer should receive.", labels=["pool", "producer_id"])
        up = GaugeMetricFamily("leadtime_state_source_up", "1 when the state source answered "
                               "at the last pass.", labels=["source"])
        by_resource = GaugeMetricFamily(
            "leadtime_resource_instances", "Instances each resource of a producer sized on "
            "several needs (the largest binds).", labels=["producer_id", "resource"])
        binding = GaugeMetricFamily("leadtime_binding_resource", "1 for the resource that set "
                                    "the producer's count.", labels=["producer_id", "resource"])
        resource_load = GaugeMetricFamily("leadtime_resource_load", "Latest observed load of "
                                          "each resource.", labels=["producer_id", "resource"])
        full = full_detail(self.detail, len(fleet.decisions))
        for pid, d in fleet.decisions.items():
            for tier in TIERS if full else ():
                t = tiers.get(pid, {}).get(tier) if tiers else None
                if t is not None:
                    for bound in ("point", "lower", "upper"):
                        predicted.add_metric([pid, tier, bound], float(getattr(t, bound)))
            p = d.prediction
            if p is not None:
                for bound in ("point", "lower", "upper"):
                    predicted.add_metric([pid, "combined", bound], float(getattr(p, bound)))
                for tier in TIERS if full else ():
                    weight.add_metric([pid, tier], float(p.weights.get(tier, 0.0)))
            if d.load_score is not None:
                score.add_metric([pid], float(d.load_score))
            target.add_metric([pid], d.target_instances)
            current.add_metric([pid], d.current_instances)
            if full:
                action.add_metric([pid, d.action], 1.0 if d.act else 0.0)
            if pid in loads:
                observed.add_metric([pid], loads[pid])
            for resource, n in d.by_resource.items():  # several resources (none: its one load)
                by_resource.add_metric([pid, resource], n)
                binding.add_metric([pid, resource], 1.0 if resource == d.resource else 0.0)
                key = resource_key(pid, resource)
                if key in loads:
                    resource_load.add_metric([pid, resource], loads[key])
        for name, pool in fleet.pools.items():
            for pid, w in pool.redirect.items():
                redirect.add_metric([name, pid], float(w))
        for name in sources:
            up.add_metric([name], 0.0 if name in degraded else 1.0)
        yield from (predicted, score, target, current, weight, observed, action, redirect, up)
        yield from (f for f in (by_resource, binding, resource_load) if f.samples)
        if decided_at is not None:
            yield GaugeMetricFamily("leadtime_last_pass_timestamp_seconds",
                                    "When the latest decision pass ran (Unix seconds).",
                                    value=float(decided_at))


class CountRequests:
    """Pure ASGI middleware counting each answer by route template, method and status, and
    timing it (a ``BaseHTTPMiddleware`` would add a task and a stream per request)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # unless an answer starts

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - began)


class Metrics:
    def __init__(self, detail: str = "auto") -> None:
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
        self.latest_pass = PassCollector(detail)
        r.register(self.latest_pass)
        self.degraded = Gauge("leadtime_tier_degraded", "1 when a tier is degraded.", ["tier"],
                              registry=r)
        self.reloads = Counter("leadtime_reloads", "Reloads, by result.", ["result"], registry=r)
        self.actuator_up = Gauge("leadtime_actuator_up", "1 when the actuator's last apply "
                                 "succeeded (or had nothing to do).", ["actuator"], registry=r)

    def observe_pass(self, fleet: FleetDecisions, seconds: float, errors: dict[str, str], *,
                     tiers: Any = None, loads: dict[str, float] | None = None,
                     sources: list[str] | None = None, decided_at: float | None = None) -> None:
        """Count the pass's decisions and publish it (predictions, targets, weights)."""
        self.passes.observe(seconds)
        for d in fleet.decisions.values():
            self.decisions.labels(d.action, str(d.act).lower()).inc()
        for tier in TIERS:
            self.degraded.labels(tier).set(1 if tier in errors else 0)
        self.latest_pass.set(fleet, tiers or {}, loads or {}, errors, sources or [], decided_at)

    def install(self, app: FastAPI, runtime: Any) -> None:
        app.add_middleware(CountRequests, metrics=self)

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
