"""Scores of a replay, over the scored intervals only (after warm-up, gaps excluded).

* ``slo_violation_pct``: share of the demand (load units) served later than the SLO, in
  percent: all of an interval's where it carried work out, dropped some or its p99 latency was
  above ``slo_ms``; where it drained a backlog carried in, the arrivals queued behind it (see
  :mod:`simulation.latency`).
* ``underprovisioned_pct``: share of intervals whose ready instances were fewer than the
  interval's arrivals needed to meet the SLO (the oracle's per-interval need), in percent.
* ``instance_hours``: running plus starting instances, summed over the intervals, in hours
  (starting instances are billed, as in the clouds).
* ``cost_vs_oracle``: ``instance_hours / oracle instance_hours`` (1.0 = the lower bound).
* ``p99_latency_ms``: the 99th percentile of latency over all demand: each interval's latency
  distribution (service + fluid wait + M/M/N wait), weighted by its arrivals, dropped demand at
  the timeout.
* ``scaling_actions``: intervals in which the policy launched or terminated instances.
* ``slo_misses``: runs of consecutive scored intervals with demand late (one outage, however
  long, is one miss); ``slo_miss_minutes``: how long they lasted in all, in minutes.

Totals over several producers: ``instance_hours``, ``scaling_actions`` and the misses are summed,
``cost_vs_oracle`` is the ratio of the sums; the percentages and ``p99_latency_ms`` are the
unweighted means over producers (their load units differ, so demand-weighting would mix units).
"""

from __future__ import annotations

import numpy as np

from simulation.config import SimConfig
from simulation.latency import mixture_quantile
from simulation.simulator import Run

METRICS = (
    "slo_violation_pct",
    "underprovisioned_pct",
    "instance_hours",
    "cost_vs_oracle",
    "p99_latency_ms",
    "scaling_actions",
    "slo_misses",
    "slo_miss_minutes",
)


def score(run: Run, cfg: SimConfig, scored: np.ndarray, need: np.ndarray) -> dict[str, float]:
    """The metrics of one run (``cost_vs_oracle`` is filled in by :func:`add_cost_vs_oracle`)."""
    arrivals = np.nan_to_num(run.demand, nan=0.0)
    weights = np.where(scored, arrivals, 0.0)
    total = float(weights.sum())
    late = float((weights * run.late_share).sum())
    intervals = int(scored.sum())
    missed = run.violated & scored
    short = int((scored & (run.ready < need)).sum())
    hours = float((run.ready + run.starting)[scored].sum()) * cfg.dt_s / 3600.0
    servers = run.ready * cfg.servers_per_instance
    p99 = mixture_quantile(
        0.99,
        weights,
        run.base_ms,
        servers,
        run.rho,
        cfg.service_time_ms,
        float(run.dropped[scored].sum()),
        cfg.timeout_s * 1000.0,
    )
    return {
        "slo_violation_pct": 100.0 * late / total if total > 0 else 0.0,
        "underprovisioned_pct": 100.0 * short / intervals if intervals else 0.0,
        "instance_hours": hours,
        "cost_vs_oracle": float("nan"),
        "p99_latency_ms": p99,
        "scaling_actions": int(run.actions[scored].sum()),
        "slo_misses": int(np.count_nonzero(np.diff(missed.astype(np.int8), prepend=0) == 1)),
        "slo_miss_minutes": float(missed.sum()) * cfg.dt_s / 60.0,
    }


def add_cost_vs_oracle(results: dict[str, dict[str, float]]) -> None:
    """Fill ``cost_vs_oracle`` in place from the oracle's instance-hours."""
    oracle = results.get("oracle", {}).get("instance_hours")
    for metrics in results.values():
        metrics["cost_vs_oracle"] = metrics["instance_hours"] / oracle if oracle else float("nan")


def totals(per_producer: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Combine producers' results policy by policy (rules in the module docstring)."""
    out: dict[str, dict[str, float]] = {}
    producers = list(per_producer.values())
    if not producers:
        return out
    for policy in producers[0]:
        rows = [p[policy] for p in producers]
        out[policy] = {
            "slo_violation_pct": float(np.mean([r["slo_violation_pct"] for r in rows])),
            "underprovisioned_pct": float(np.mean([r["underprovisioned_pct"] for r in rows])),
            "instance_hours": float(sum(r["instance_hours"] for r in rows)),
            "cost_vs_oracle": float("nan"),
            "p99_latency_ms": float(np.nanmean([r["p99_latency_ms"] for r in rows])),
            "scaling_actions": int(sum(r["scaling_actions"] for r in rows)),
            "slo_misses": int(sum(r["slo_misses"] for r in rows)),
            "slo_miss_minutes": float(sum(r["slo_miss_minutes"] for r in rows)),
        }
    add_cost_vs_oracle(out)
    return out
