"""Discrete-time replay of one producer's demand against simulated instances.

At the start of each interval ``t``: instances whose spin-up has elapsed become ready; the
policy (a shared reactive HPA before the switch step, see below) sees an
:class:`~simulation.policies.Observation` and asks for a count; the simulator clamps it to
``[min, max]``, launches the missing instances (ready at ``t + L``, ``L`` = spin-up in
intervals) or terminates the surplus at once (pending launches first, newest first); the
interval is then served by the ready instances (:mod:`simulation.latency`).

Warm-up: until ``switch_step`` every policy is driven by the same reactive HPA; the bench hands
over one hour plus ``L`` intervals before the first scored interval, so the policy's own
launches are serving and the warm-up's queue has drained when scoring starts. A policy with an
``observe(observation)`` method (leadtime's loop) sees the warm-up's last ``dry_run_s`` in dry
run, as a pool in ``mode: dry_run`` does before it acts: it learns, and the warm-up HPA
decides. Gaps (NaN demand) bring no load, give the policies no metric and are not scored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from simulation.config import SimConfig
from simulation.latency import erlang_c, fluid_queue, wait_p99_ms
from simulation.policies import Observation, Policy, clamp


@dataclass(frozen=True)
class Run:
    """One policy's replay: per-interval arrays."""

    policy: str
    demand: np.ndarray  # arrivals (NaN = gap)
    ready: np.ndarray
    starting: np.ndarray
    actions: np.ndarray  # bool: instances launched or terminated at this step
    served: np.ndarray
    backlog: np.ndarray
    dropped: np.ndarray
    rho: np.ndarray
    base_ms: np.ndarray  # service time + fluid wait
    p99_ms: np.ndarray  # per-interval p99 latency
    violated: np.ndarray  # bool: some of the interval's demand missed the SLO
    late_share: np.ndarray  # the share of the interval's demand that missed it (0 to 1)


def initial_instances(demand: np.ndarray, cfg: SimConfig) -> int:
    """Start sized for the first known interval at the target utilisation."""
    known = demand[np.isfinite(demand)]
    first = float(known[0]) if known.size else 0.0
    usable = cfg.capacity_per_instance * cfg.target_utilisation
    return clamp(int(np.ceil(first / usable - 1e-9)), cfg)


def simulate(
    demand: np.ndarray,
    cfg: SimConfig,
    policy: Policy,
    warmup: Policy | None = None,
    switch_step: int = 0,
    loads: dict[str, np.ndarray] | None = None,
) -> Run:
    """Replay ``demand`` under ``policy`` (``warmup`` before ``switch_step``); with ``loads``
    (several resources, :mod:`simulation.resources`) the policies also see each one's."""
    size = demand.size
    arrivals = np.nan_to_num(demand, nan=0.0)
    gap = ~np.isfinite(demand)
    lead = cfg.spinup_steps
    dt_s = cfg.dt_s
    watch = getattr(policy, "observe", None)
    watch_from = cfg.dry_run_from(switch_step)
    ready = initial_instances(demand, cfg)
    starting = 0
    pending: deque[list[int]] = deque()  # [ready_step, count], in launch order
    ready_out = np.zeros(size, dtype=np.int64)
    starting_out = np.zeros(size, dtype=np.int64)
    actions = np.zeros(size, dtype=bool)
    last_ready = ready
    lo, hi = cfg.min_instances, cfg.max_instances
    for t in range(size):
        while pending and pending[0][0] <= t:
            ready += pending[0][1]
            starting -= pending[0][1]
            pending.popleft()
        last_load = None if t == 0 or gap[t - 1] else float(arrivals[t - 1])
        last_loads = None if loads is None else {
            name: None if t == 0 or not np.isfinite(v[t - 1]) else float(v[t - 1])
            for name, v in loads.items()}
        obs = Observation(t, t * dt_s, last_load, last_ready, ready, starting, last_loads)
        active = warmup if (warmup is not None and t < switch_step) else policy
        if active is not policy and watch is not None and t >= watch_from:
            watch(obs)  # the policy learns from the warm-up in dry run; its answer is unused
        desired = active.decide(obs)
        desired = lo if desired < lo else min(desired, hi)
        current = ready + starting
        if desired > current:
            count = desired - current
            if lead == 0:
                ready += count
            else:
                pending.append([t + lead, count])
                starting += count
            actions[t] = True
        elif desired < current:
            surplus = current - desired
            while surplus and pending:
                take = min(surplus, pending[-1][1])
                pending[-1][1] -= take
                starting -= take
                surplus -= take
                if pending[-1][1] == 0:
                    pending.pop()
            ready -= surplus
            actions[t] = True
        ready_out[t] = ready
        starting_out[t] = starting
        last_ready = ready
    return serve(policy.name, demand, ready_out, starting_out, actions, cfg)


def serve(
    name: str,
    demand: np.ndarray,
    ready: np.ndarray,
    starting: np.ndarray,
    actions: np.ndarray,
    cfg: SimConfig,
) -> Run:
    """Apply the queueing model to a fleet trajectory (see :mod:`simulation.latency`)."""
    arrivals = np.nan_to_num(demand, nan=0.0)
    usable = cfg.usable_capacity
    served, backlog, dropped = fluid_queue(
        arrivals, ready.astype(float), usable, cfg.timeout_s / cfg.dt_s
    )
    full = ready * cfg.capacity_per_instance
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(full > 0, served / full, 0.0)
        previous = np.concatenate([[0.0], backlog[:-1]])
        fluid_s = np.where(
            ready > 0, (previous + backlog) / 2 / (ready * usable) * cfg.dt_s, np.inf
        )
    fluid_s = np.where((previous + backlog) > 0, fluid_s, 0.0)
    fluid_ms = np.minimum(fluid_s * 1000.0, cfg.timeout_s * 1000.0)
    servers = ready * cfg.servers_per_instance
    base = cfg.service_time_ms + fluid_ms
    waits = wait_p99_ms(servers, rho, cfg.service_time_ms)
    p99 = base + waits
    late = late_share(arrivals, previous, backlog, dropped, ready * usable, waits, cfg)
    violated = late > 0
    return Run(
        name, demand, ready, starting, actions, served, backlog, dropped, rho, base, p99, violated,
        late,
    )


def late_share(arrivals: np.ndarray, previous: np.ndarray, backlog: np.ndarray,
               dropped: np.ndarray, capacity: np.ndarray, waits_ms: np.ndarray,
               cfg: SimConfig) -> np.ndarray:
    """Per interval, the share of its arrivals served later than the SLO.

    All of them where work is carried out of the interval or dropped, or where the M/M/N p99
    alone is over the SLO. Where a backlog carried in drains within the interval, the
    arrivals that wait behind it: the queue ahead of an arrival at time ``s`` (in intervals)
    is ``q - (K - a) s``, served at ``K``, so it is late while ``q - (K - a) s > K * slack``
    (``slack``: the SLO less the service time and the p99 wait, in intervals). That share is
    the same whatever the sampling interval of a load held constant within each interval,
    where counting the whole interval would count an hour for a few minutes' drain
    (:mod:`simulation.latency`).

    >>> cfg = SimConfig(interval_s=3600, capacity_per_instance=100.0)
    >>> share = late_share(np.array([50.0]), np.array([17.0]), np.array([0.0]),
    ...                    np.array([0.0]), np.array([85.0]), np.array([0.0]), cfg)
    >>> round(float(share[0]), 3)  # 17 units drain at 85 - 50 = 35 an interval: 29 minutes
    0.485
    """
    tiny = 1e-9 * np.maximum(capacity / cfg.max_utilisation, 1.0)  # of the fleet's capacity
    whole = (backlog > tiny) | (dropped > 0)
    inside = (cfg.service_time_ms + waits_ms > cfg.slo_ms) & (arrivals > 0)
    draining = (previous > tiny) & (arrivals > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slack = np.maximum(cfg.slo_ms - cfg.service_time_ms - waits_ms, 0.0) / 1000.0 / cfg.dt_s
        drain = np.clip((previous - capacity * slack) / np.maximum(capacity - arrivals, 1e-12),
                        0.0, 1.0)
    share = np.where(whole | inside, 1.0, np.where(draining, drain, 0.0))
    return np.where(np.isfinite(share), share, 1.0)


def slo_need(arrivals: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Fewest instances meeting the SLO for each interval's arrivals with no backlog.

    At least ``ceil(a / (c * max_utilisation))`` (nothing carried over), then one more until the
    interval's p99 latency (service + M/M/N wait) is within the SLO; clamped to ``max``.
    """
    a = np.nan_to_num(arrivals, nan=0.0)
    need = np.ceil(a / cfg.usable_capacity - 1e-9).astype(np.int64)
    need = np.maximum(need, 0)
    busy = a > 0
    need[busy] = np.maximum(need[busy], 1)
    todo = np.flatnonzero(busy & (need < cfg.max_instances))
    while todo.size:
        n = need[todo]
        rho = a[todo] / (n * cfg.capacity_per_instance)
        p99 = cfg.service_time_ms + wait_p99_ms(
            n * cfg.servers_per_instance, rho, cfg.service_time_ms
        )
        todo = todo[p99 > cfg.slo_ms]
        need[todo] += 1
        todo = todo[need[todo] < cfg.max_instances]
    return np.clip(need, cfg.min_instances, cfg.max_instances)


__all__ = ["Run", "erlang_c", "initial_instances", "serve", "simulate", "slo_need"]
