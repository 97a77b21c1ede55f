"""Actuators: what applies a pass's decisions to a real system, after the pass is logged.

An actuator is anything with a ``name`` and ``apply(pass_, config) -> list[Actuation]``. Each
actuation is logged (``leadtime.actuation`` logger, INFO) with the decision it applies: the
pass number, when it was decided, the pool or producer, what was set and the decision's reasons.
The decision itself is already in the decision log when an actuator runs, so an actuator that
fails (its system is down) loses no decision: it records the error (``/readyz``, ``/metrics``)
and applies the latest decision at the next pass.

In ``dry_run`` mode an actuator touches nothing: it logs what it would have set.

:class:`HAProxyWeights` applies each pool's redirect weights through HAProxy's runtime API
(``set server <backend>/<server> weight N``), for the producers whose ``haproxy_server``
(``backend/server``) is set in ``leadtime.yaml``.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from leadtime.config import LeadtimeConfig
    from loop.decision_loop import Pass

log = logging.getLogger("leadtime.actuation")


@dataclass(frozen=True)
class Actuation:
    """One thing an actuator set (or would have set, or failed to set)."""

    actuator: str
    pass_number: int
    decided_at: float
    target: str  # e.g. "pool web"
    applied: dict[str, Any]  # e.g. {"web/s1": 128}
    dry_run: bool
    reasons: tuple[str, ...]
    error: str | None = None


class Actuator(Protocol):
    name: str

    def apply(self, result: Pass, config: LeadtimeConfig) -> list[Actuation]: ...


def _record(actuation: Actuation, history: deque) -> Actuation:
    history.append(actuation)
    verb = ("would set" if actuation.dry_run else "set") if actuation.error is None else \
        "FAILED to set"
    log.log(logging.WARNING if actuation.error else logging.INFO,
            "%s %s %s %s (pass %d, decided at %.0f: %s)%s", actuation.actuator, verb,
            actuation.target, actuation.applied, actuation.pass_number, actuation.decided_at,
            "; ".join(actuation.reasons), f": {actuation.error}" if actuation.error else "")
    return actuation


class HAProxyWeights:
    """A pool's redirect weights as HAProxy server weights (see the module docstring)."""

    name = "haproxy"

    def __init__(self, address: str, timeout_s: float = 2.0, keep: int = 100) -> None:
        from connectors.haproxy import HAProxyRuntime

        self.runtime = HAProxyRuntime(address, timeout_s)
        self.history: deque[Actuation] = deque(maxlen=keep)
        self.error: str | None = None  # the last failure, None once an apply succeeds
        self._pending: set[str] = set()  # pools whose last apply failed: retried next pass
        self._servers: tuple[int, dict[str, tuple[str, str]]] | None = None

    def servers(self, config: LeadtimeConfig) -> dict[str, tuple[str, str]]:
        """``{producer: (backend, server)}`` from ``haproxy_server``, cached per config."""
        if self._servers is None or self._servers[0] != id(config):
            found = {}
            for pid in config.producers():
                where = config.settings_of(pid).haproxy_server
                if where:
                    backend, server = where.split("/", 1)
                    found[pid] = (backend, server)
            self._servers = (id(config), found)
        return self._servers[1]

    def apply(self, result: Pass, config: LeadtimeConfig) -> list[Actuation]:
        from connectors.haproxy import HAProxyError, integer_weights

        servers = self.servers(config)
        done: list[Actuation] = []
        for name, pool in result.fleet.pools.items():
            mapped = {p: w for p, w in pool.redirect.items() if p in servers}
            if not mapped or not (pool.act or pool.dry_run or name in self._pending):
                continue  # nothing changed (and nothing to retry): HAProxy keeps its weights
            if pool.dry_run and not any(abs(pool.redirect[p] - pool.current_share.get(p, 0.0))
                                        > 1e-9 for p in mapped):
                continue
            weights = integer_weights(mapped)
            applied = {"/".join(servers[p]): n for p, n in weights.items()}
            error = None
            if not pool.dry_run:
                try:
                    for pid, n in weights.items():
                        self.runtime.set_weight(*servers[pid], n)
                    self._pending.discard(name)
                    self.error = None
                except HAProxyError as exc:
                    error = str(exc)
                    self.error = error
                    self._pending.add(name)
            done.append(_record(Actuation(self.name, result.number, result.decided_at,
                                          f"pool {name}", applied, pool.dry_run, pool.reasons,
                                          error), self.history))
        return done

    def status(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else None
        return {"address": self.runtime.address, "status": "degraded" if self.error else "ok",
                "error": self.error, "pending": sorted(self._pending),
                "last": None if last is None else {
                    "pass": last.pass_number, "target": last.target, "applied": last.applied,
                    "dry_run": last.dry_run, "error": last.error}}
