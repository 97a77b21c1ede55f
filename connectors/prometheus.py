"""Prometheus as a source of load: instant queries for the present, range queries for history.

The client speaks Prometheus' HTTP API (``/api/v1/query``, ``/api/v1/query_range``) with httpx.
Queries come from ``leadtime.yaml``: a producer's (or its pool's) ``load_query`` and optional
``instances_query``, each a PromQL expression answering one series, in which ``$producer_id`` is
replaced by the producer's id. With ``producer_label`` set they are **fleet queries**: the
expression answers one series per producer, labelled with the producer's id under that label,
and ``$producer_ids`` is replaced by a regular expression matching exactly the ids that share
the query (a pool, usually), so one instant query reads them all
(``sum by (service) (rate(http_requests_total{service=~"$producer_ids"}[1m]))``).

* :func:`history` turns range queries into the load-trace contract (``timestamp, producer_id,
  value``: naive UTC timestamps, one row per step that has a sample) and reads it back through
  :func:`leadtime.data.read_load_trace`, so it passes the same Great Expectations suite as a
  CSV trace. A step without a sample (a scrape missed, a target down) has no row, and stays a
  gap in the series.
* :func:`current` reads each producer's load and instance count now, for the decision loop.

Every failure is a :class:`PrometheusError` with a message saying which query and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

PLACEHOLDER = "$producer_id"
FLEET_PLACEHOLDER = "$producer_ids"
MAX_POINTS = 10_000  # Prometheus refuses range queries above 11,000 points per series


class PrometheusError(RuntimeError):
    """Prometheus is unreachable, refused a query, or answered something unusable."""


def render(query: str, producer_id: str) -> str:
    """The query with ``$producer_id`` replaced (PromQL strings use double quotes).

    >>> render('sum(rate(http_requests_total{job="$producer_id"}[1m]))', "web-1")
    'sum(rate(http_requests_total{job="web-1"}[1m]))'
    """
    return query.replace(PLACEHOLDER, producer_id)


def id_regex(producer_ids: Iterable[str]) -> str:
    r"""A PromQL string literal's content matching exactly ``producer_ids`` (RE2 alternation,
    each id's regex metacharacters escaped, backslashes and quotes escaped for the literal).

    >>> print(id_regex(["web-1", "api.v2"]))
    web-1|api\\.v2
    """
    special = set(".+*?()|[]{}^$\\")
    regex = "|".join("".join("\\" + c if c in special else c for c in pid)
                     for pid in producer_ids)
    return regex.replace("\\", "\\\\").replace('"', '\\"')


class PrometheusClient:
    """A small client of the HTTP API; one keep-alive connection pool, a short timeout."""

    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        import httpx

        try:
            response = self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: "
                                  f"{type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP "
                                  f"{response.status_code}, not JSON") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused {params.get('query')!r}: "
                                  f"{body.get('errorType', 'error')}: {body.get('error', '?')}")
        return body["data"]

    def query(self, promql: str, at_s: float | None = None) -> list[tuple[dict, float, float]]:
        """An instant query: ``(labels, unix seconds, value)`` per series of the vector."""
        params: dict[str, Any] = {"query": promql}
        if at_s is not None:
            params["time"] = f"{at_s:.3f}"
        data = self._get("/api/v1/query", params)
        if data.get("resultType") == "scalar":
            t, v = data["result"]
            return [({}, float(t), float(v))]
        if data.get("resultType") != "vector":
            raise PrometheusError(f"{promql!r} answered a {data.get('resultType')}, not a vector")
        return [(r["metric"], float(r["value"][0]), float(r["value"][1])) for r in data["result"]]

    def query_range(self, promql: str, start_s: float, end_s: float,
                    step_s: float) -> list[tuple[dict, list[tuple[float, float]]]]:
        """A range query, split into chunks under Prometheus' points-per-series limit."""
        series: dict[tuple, tuple[dict, list[tuple[float, float]]]] = {}
        chunk = step_s * MAX_POINTS
        begin = start_s
        while begin <= end_s:
            stop = min(end_s, begin + chunk - step_s)
            data = self._get("/api/v1/query_range", {"query": promql, "start": f"{begin:.3f}",
                                                     "end": f"{stop:.3f}", "step": f"{step_s:g}"})
            if data.get("resultType") != "matrix":
                raise PrometheusError(f"{promql!r} answered a {data.get('resultType')}, "
                                      "not a range vector")
            for r in data["result"]:
                key = tuple(sorted(r["metric"].items()))
                entry = series.setdefault(key, (r["metric"], []))
                entry[1].extend((float(t), float(v)) for t, v in r["values"])
            begin = stop + step_s
        return list(series.values())


def _one(promql: str, found: list) -> Any:
    if len(found) > 1:
        labels = ", ".join(str(f[0]) for f in found[:3])
        raise PrometheusError(f"{promql!r} answered {len(found)} series ({labels}); a load query "
                              "must answer one: aggregate it, e.g. sum(...)")
    return found[0] if found else None


# --- history: the load-trace contract from range queries -------------------------------------


def history_frame(client: PrometheusClient, queries: Mapping[str, str], start: pd.Timestamp,
                  end: pd.Timestamp, step: pd.Timedelta) -> pd.DataFrame:
    """``timestamp, producer_id, value`` rows from one range query per producer (UTC, naive).

    Steps without a sample have no row; NaN samples (e.g. a rate over no data) are dropped too.
    """
    rows: list[tuple[pd.Timestamp, str, float]] = []
    start_s, end_s = start.timestamp(), end.timestamp()
    for pid, query in queries.items():
        promql = render(query, pid)
        found = _one(promql, client.query_range(promql, start_s, end_s, step.total_seconds()))
        if found is None:
            raise PrometheusError(f"{pid}: {promql!r} has no samples between {start} and {end}")
        rows.extend((pd.Timestamp(t, unit="s"), pid, v) for t, v in found[1] if math.isfinite(v))
    return pd.DataFrame(rows, columns=["timestamp", "producer_id", "value"])


def history(client: PrometheusClient, queries: Mapping[str, str], start: pd.Timestamp,
            end: pd.Timestamp, step: pd.Timedelta, out: Path):
    """Write the range queries' answer as a load-trace CSV at ``out`` and read it back validated.

    Returns the :class:`leadtime.data.LoadTrace`; a defect refuses it whole
    (:class:`leadtime.data.TraceError`), as for any CSV trace.
    """
    from leadtime.data import read_load_trace

    frame = history_frame(client, queries, start, end, step)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return read_load_trace(out)


def load_queries(config: Any, producers: Iterable[str] | None = None) -> dict[str, str]:
    """``load_query`` per producer of a :class:`leadtime.config.LeadtimeConfig` that sets one."""
    ids = list(producers) if producers is not None else list(config.producers())
    out = {}
    for pid in ids:
        query = config.settings_of(pid).load_query
        if query is not None:
            out[pid] = query
    return out


# --- the present: load and instances now, for the decision loop ------------------------------


@dataclass(frozen=True)
class Current:
    """What Prometheus said now: load and instances per producer, and what it could not say."""

    load: dict[str, float] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    sampled_at: dict[str, float] = field(default_factory=dict)  # unix seconds of the load sample
    errors: dict[str, str] = field(default_factory=dict)  # producer -> why
    down: str | None = None  # set when Prometheus itself failed (unreachable, refusing)


def current(client: PrometheusClient, queries: Mapping[str, tuple[str | None, str | None]],
            at_s: float | None = None, labels: Mapping[str, str] | None = None) -> Current:
    """Instant queries for ``{producer: (load_query, instances_query)}``; a producer with a
    label in ``labels`` has fleet queries, asked once for every producer sharing them.

    The first connection failure stops the round (Prometheus is down: no point waiting one
    timeout per producer) and is reported in ``down``.
    """
    out = Current()
    labels = labels or {}
    fleets: dict[tuple[str, str, str], list[str]] = {}
    for pid, pair in queries.items():
        if pid in labels:
            for kind, query in zip(("load", "instances"), pair, strict=True):
                if query is not None:
                    fleets.setdefault((kind, query, labels[pid]), []).append(pid)
    for (kind, query, label), ids in fleets.items():
        promql = query.replace(FLEET_PLACEHOLDER, id_regex(ids))
        try:
            found = client.query(promql, at_s)
        except PrometheusError as exc:
            if "unreachable" in str(exc) or "not JSON" in str(exc):
                return Current(out.load, out.instances, out.sampled_at, out.errors, str(exc))
            out.errors.update((pid, str(exc)) for pid in ids)
            continue
        by_id = {series.get(label): (t, v) for series, t, v in found}
        for pid in ids:
            t, v = by_id.get(pid, (None, math.nan))
            if t is None or not math.isfinite(v):
                out.errors[pid] = f"{kind}: no series with {label}={pid!r} now in {query!r}"
            elif kind == "load":
                out.load[pid], out.sampled_at[pid] = max(0.0, v), t
            else:
                out.instances[pid] = max(0, round(v))
    for pid, (load_q, instances_q) in queries.items():
        if pid in labels:
            continue
        for kind, query in (("load", load_q), ("instances", instances_q)):
            if query is None:
                continue
            promql = render(query, pid)
            try:
                found = _one(promql, client.query(promql, at_s))
            except PrometheusError as exc:
                if "unreachable" in str(exc) or "not JSON" in str(exc):
                    return Current(out.load, out.instances, out.sampled_at, out.errors, str(exc))
                out.errors[pid] = str(exc)
                continue
            if found is None or not math.isfinite(found[2]):
                out.errors[pid] = f"{kind}: {promql!r} has no sample now"
                continue
            if kind == "load":
                out.load[pid] = max(0.0, found[2])
                out.sampled_at[pid] = found[1]
            else:
                out.instances[pid] = max(0, round(found[2]))
    return out
