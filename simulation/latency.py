"""The queueing model: a fluid queue between intervals, M/M/c inside an interval.

Per interval ``t`` with ``n`` ready instances, capacity ``c`` per instance (load units per
interval), maximum utilisation ``u`` and arrivals ``a``:

* **fluid queue** (between intervals): usable capacity ``K = n*c*u``; offered = ``a + q[t-1]``;
  served = ``min(offered, K)``; the rest is carried over as backlog ``q[t]``; backlog beyond
  ``timeout_s`` worth of usable capacity is dropped (clients time out).
* **M/M/c** (inside the interval): the instance fleet is ``N = n * servers_per_instance``
  workers with mean service time ``s``, at utilisation ``rho = served / (n*c)`` (at most ``u``).
  The queueing delay ``W`` has ``P(W > x) = C(N, N*rho) * exp(-N*(1-rho)*x/s)`` (Erlang C).
* **latency** of the demand in the interval: ``s + F + W`` where ``F`` is the fluid wait, by
  Little's law the mean backlog over the interval divided by the usable capacity:
  ``F = (q[t-1] + q[t]) / 2 / K * interval``. Dropped demand counts as ``timeout_s``.
* **SLO**: an interval meets the SLO when nothing is carried over (``q[t] == 0``: work left
  unfinished at the interval's end waits for a later interval), nothing is dropped, its M/M/c
  p99 ``s + W99`` is within ``slo_ms``, where ``W99 = ln(C / 0.01) * s / (N*(1-rho))`` (0 when
  ``C <= 0.01``), and no backlog was carried in. Where one was and it drains within the
  interval, only the arrivals queued behind it are late: at time ``x`` (in intervals) the queue
  ahead is ``q[t-1] - (K - a) x``, so the share ``(q[t-1] - K * slack) / (K - a)`` of the
  interval's demand misses (``slack``: the SLO less ``s + W99``, in intervals;
  :func:`simulation.simulator.late_share`). The score is then the same whatever the sampling
  interval of a load held constant within each interval. ``F``, the mean fluid wait, enters
  the p99 latency metric only. Fewer instances can only raise the p99, the backlog or its
  drain, so the fewest instances meeting the SLO for known arrivals (the oracle) is a true
  lower bound.
"""

from __future__ import annotations

import numpy as np


def erlang_c(servers: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Probability of waiting in M/M/N at per-server utilisation ``rho`` (vectorised).

    Erlang B by its stable recursion ``B(j) = A*B(j-1) / (j + A*B(j-1))``, then
    ``C = B / (1 - rho*(1 - B))``. ``servers == 0`` gives 1 (everything waits).
    """
    servers = np.asarray(servers, dtype=np.int64)
    rho = np.clip(np.asarray(rho, dtype=float), 0.0, 1.0 - 1e-12)
    load = servers * rho
    blocking = np.ones_like(rho)
    out = np.ones_like(rho)
    top = int(servers.max()) if servers.size else 0
    for j in range(1, top + 1):
        active = servers >= j
        ab = load * blocking
        blocking = np.where(active, ab / (j + ab), blocking)
    has = servers > 0
    out[has] = blocking[has] / (1.0 - rho[has] * (1.0 - blocking[has]))
    return np.clip(out, 0.0, 1.0)


def wait_p99_ms(servers: np.ndarray, rho: np.ndarray, service_ms: float) -> np.ndarray:
    """99th percentile of the M/M/N queueing delay in milliseconds (inf without servers)."""
    servers = np.asarray(servers, dtype=np.int64)
    c = erlang_c(servers, rho)
    rate = servers * (1.0 - np.clip(rho, 0.0, 1.0 - 1e-12)) / service_ms  # per ms
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(c > 0.01, np.log(np.maximum(c, 1e-300) / 0.01) / rate, 0.0)
    return np.where(servers > 0, w, np.inf)


def fluid_queue(
    arrivals: np.ndarray, ready: np.ndarray, usable_capacity: float, timeout_intervals: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Served, carried-over backlog and dropped load per interval (the fluid queue)."""
    served = np.zeros_like(arrivals)
    backlog = np.zeros_like(arrivals)
    dropped = np.zeros_like(arrivals)
    q = 0.0
    for t in range(arrivals.size):
        cap = ready[t] * usable_capacity
        offered = arrivals[t] + q
        s = min(offered, cap)
        q = offered - s
        limit = cap * timeout_intervals
        if q > limit:
            dropped[t] = q - limit
            q = limit
        served[t] = s
        backlog[t] = q
    return served, backlog, dropped


def latency_tail(
    x_ms: float | np.ndarray,
    base_ms: np.ndarray,
    servers: np.ndarray,
    rho: np.ndarray,
    erlang: np.ndarray,
    service_ms: float,
) -> np.ndarray:
    """P(latency > x) per interval for latency = base + W (base = service + fluid wait)."""
    slack = np.asarray(x_ms) - base_ms
    rate = servers * (1.0 - np.clip(rho, 0.0, 1.0 - 1e-12)) / service_ms
    tail = np.where(slack < 0, 1.0, erlang * np.exp(-rate * np.maximum(slack, 0.0)))
    return np.where(servers > 0, tail, 1.0)


def mixture_quantile(
    q: float,
    weights: np.ndarray,
    base_ms: np.ndarray,
    servers: np.ndarray,
    rho: np.ndarray,
    service_ms: float,
    dropped_weight: float,
    cap_ms: float,
) -> float:
    """The ``q`` quantile of latency over all demand (per-interval distributions, weighted).

    Dropped demand counts as ``cap_ms`` (the timeout). Solved by bisection on the survival
    function ``sum_t w_t * P_t(L > x) = (1 - q) * sum_t w_t``.
    """
    total = float(weights.sum()) + dropped_weight
    if total <= 0:
        return float("nan")
    keep = weights > 0
    w, b, n, r = weights[keep], base_ms[keep], servers[keep], rho[keep]
    erl = erlang_c(n, r)
    goal = (1.0 - q) * total

    def exceed(x: float) -> float:
        over = float((w * latency_tail(x, b, n, r, erl, service_ms)).sum())
        return over + (dropped_weight if x < cap_ms else 0.0)

    lo, hi = 0.0, cap_ms
    if exceed(cap_ms * (1 - 1e-12)) > goal:
        return cap_ms
    for _ in range(60):
        mid = (lo + hi) / 2
        if exceed(mid) > goal:
            lo = mid
        else:
            hi = mid
    return hi
