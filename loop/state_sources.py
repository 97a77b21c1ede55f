"""State sources of the decision loop: producer states read at each pass, beside the POSTed ones.

An allocator can report states (``POST /v1/producers/state``); a state source lets the loop read
them itself. :class:`PrometheusStates` asks Prometheus, at every pass, each producer's
``load_query`` and ``instances_query`` (``leadtime.yaml``). What it reads goes through the same
path as a report (the loop's states, the observed load of recalibration).

When Prometheus is down, or a query answers nothing, the loop keeps deciding on the last state it
has (reported or read) and says so: in ``Pass.degraded`` (``/readyz``, ``/metrics``) under the
source's name, and in the reasons of each producer's decision (:func:`with_reasons`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from leadtime.engine import FleetDecisions, ProducerConfig

if TYPE_CHECKING:
    from leadtime.config import LeadtimeConfig


@dataclass(frozen=True)
class Report:
    """What an allocator reports for one producer."""

    producer_id: str
    instances: int  # running plus starting
    current_load: float | None = None  # its one load (or its resource named ``load``)
    last_scale_out_s: float | None = None
    loads: Mapping[str, float] | None = None  # per declared resource (``leadtime.yaml``)


@dataclass(frozen=True)
class Pulled:
    """One read: ``(producer, instances, current load)`` rows, what failed, per-producer notes."""

    reports: list[tuple[str, int, float | None]] = field(default_factory=list)
    error: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    loads: dict[str, dict[str, float]] = field(default_factory=dict)  # per declared resource


class StateSource(Protocol):
    name: str

    def pull(self, config: LeadtimeConfig, producers: Mapping[str, ProducerConfig],
             states: Mapping[str, Report], now_s: float) -> Pulled: ...


class PrometheusStates:
    """Current load and instances of the producers that name a query, from Prometheus."""

    name = "prometheus"

    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        from connectors.prometheus import PrometheusClient

        self.client = PrometheusClient(url, timeout_s)
        self.last_read_s: dict[str, float] = {}  # producer -> when Prometheus last answered
        self._queries: tuple[int, dict[str, tuple[str | None, str | None]],
                             dict[str, str]] | None = None

    def queries(self, config: LeadtimeConfig) -> dict[str, tuple[str | None, str | None]]:
        """``{producer: (load_query, instances_query)}``, cached per configuration object."""
        return self._cached(config)[0]

    def labels(self, config: LeadtimeConfig) -> dict[str, str]:
        """``{producer: producer_label}`` of the producers whose queries are fleet queries."""
        return self._cached(config)[1]

    def _cached(self, config: LeadtimeConfig) -> tuple[dict[str, tuple[str | None, str | None]],
                                            dict[str, str]]:
        if self._queries is None or self._queries[0] != id(config):
            from connectors.prometheus import render

            found, labels = {}, {}
            for pid, keys in config.resource_keys().items():
                s = config.settings_of(pid)
                if s.resources:  # one query per declared resource, under its key
                    load_query = None
                    for name, r in s.resources.items():
                        if r.load_query:
                            found[keys[name]] = (render(r.load_query, pid), None)
                else:
                    load_query = s.load_query
                if load_query or s.instances_query:
                    found[pid] = (load_query, s.instances_query)
                    if s.producer_label:
                        labels[pid] = s.producer_label
            self._queries = (id(config), found, labels)
        return self._queries[1], self._queries[2]

    def pull(self, config: LeadtimeConfig, producers: Mapping[str, ProducerConfig],
             states: Mapping[str, Report], now_s: float) -> Pulled:
        from connectors.prometheus import current

        keys = config.resource_keys()
        queries = {p: q for p, q in self.queries(config).items() if p in producers or p in keys}
        if not queries:
            return Pulled()
        got = current(self.client, queries, labels=self.labels(config))
        rows: list[tuple[str, int, float | None]] = []
        notes: dict[str, str] = {}
        per_resource: dict[str, dict[str, float]] = {}
        for pid, resources in keys.items():
            several = list(resources.values()) != [pid]
            if pid not in queries and not (several and any(k in queries for k in
                                                           resources.values())):
                continue
            instances_q = queries.get(pid, (None, None))[1]
            first = producers[next(iter(resources.values()))]
            if several:  # the load of each resource, read under its key, else its last one
                loads = {name: got.load[key] for name, key in resources.items()
                         if key in got.load}
                load = None
                why = got.down or next((got.errors[k] for k in [pid, *resources.values()]
                                        if k in got.errors), None)
            else:
                loads, load, why = {}, got.load.get(pid), got.down or got.errors.get(pid)
            instances = got.instances.get(pid)
            previous = states.get(next(iter(resources.values())))
            if load is None and not loads and instances is None:
                notes[pid] = self._stale(pid, previous, now_s, why)
                continue
            if instances is None:
                if previous is not None:
                    instances = previous.instances
                else:
                    instances = max(1, first.min_instances)
                    notes[pid] = (f"instances unknown ({'no instances_query' if instances_q is None else got.errors.get(pid)}"
                                  f" and no state report): taken as {instances}")
            if load is None and not several and previous is not None:
                load = previous.current_load
            if several:
                for name, key in resources.items():  # unread: the last one known
                    last = states.get(key)
                    if name not in loads and last is not None and last.current_load is not None:
                        loads[name] = last.current_load
                per_resource[pid] = loads
            self.last_read_s[pid] = now_s
            rows.append((pid, int(instances), load))
        error = None
        if got.down:
            error = f"{got.down}: deciding on the last known states"
        elif got.errors:
            failed = sorted(got.errors)
            error = (f"no answer for {len(failed)} producer(s): "
                     + "; ".join(f"{p}: {got.errors[p]}" for p in failed[:3]))
        return Pulled(rows, error, notes, per_resource)

    def _stale(self, pid: str, previous: Report | None, now_s: float, why: str | None) -> str:
        seen = self.last_read_s.get(pid)
        since = f"read {now_s - seen:.0f} s ago" if seen is not None else "never read from it"
        kept = "the last known state" if previous is not None else "no state (engine default)"
        return f"Prometheus state unavailable ({why or 'no sample'}): decided on {kept}, {since}"


def with_reasons(fleet: FleetDecisions, notes: Mapping[str, str]) -> FleetDecisions:
    """The decisions with each producer's note appended to its reasons."""
    if not notes:
        return fleet
    decisions = {pid: replace(d, reasons=(*d.reasons, notes[pid])) if pid in notes else d
                 for pid, d in fleet.decisions.items()}
    return replace(fleet, decisions=decisions)
