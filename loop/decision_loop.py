"""The decision loop: one object that turns tier answers and producer states into decisions.

It owns everything a pass needs (``docs/design.md``, "One loop"):

* the **tier sources** (:mod:`loop.sources`): Tier 1 from the champion, Tier 2 from announced
  demand, Tier 3 from its nowcast and risk, each asked the peak load ahead (Tier 1 over
  ``[now, now + lead + interval)``, ``ProducerConfig.window_s``);
* the **producer states** that allocators report (instances, current load) and the time of each
  producer's last scale-out;
* the **sizing** calibration (:mod:`loop.sizing`): per producer, the quantile of the window
  peak to provision for, from the candidate (tier, combination or the current load) with the
  lowest measured loss;
* the **engine** call (:func:`leadtime.engine.decide_all`: allocate, the threshold gate,
  redirect, selection weights), the **decision log** and the **recalibration** of the weights;
* a **clock** (:mod:`loop.clock`), so it never reads the time itself.

It has two drivers. The API (:mod:`serving.decisions`) runs :meth:`DecisionLoop.step` on a
background thread every ``engine.decision_interval_s`` and whenever states are reported; GETs only
read :attr:`DecisionLoop.latest`. The replay (:mod:`simulation.policies`, ``Leadtime``) moves a
:class:`~loop.clock.ReplayClock` through a trace and calls the same :meth:`step`. What the
benchmark measures is therefore the served loop, by construction.

Nothing is lost on restart: each pass is appended to the decision log in one transaction
together with the loop's own state (reported states, last scale-outs, weights), and
:meth:`DecisionLoop.restore` reads that state back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from leadtime.config import EngineSpec, LeadtimeConfig, shard_of
from leadtime.engine import (
    FleetDecisions,
    ProducerConfig,
    ProducerState,
    Sizing,
    TierPrediction,
    combine,
    decide_all,
    reacting_floor,
)
from leadtime.rows import FloatRows
from loop.clock import Clock
from loop.hpa_twin import HpaTwin, HpaTwinConfig, window_max
from loop.sizing import (
    COMBINED,
    REACTIVE,
    SizingConfig,
    WindowPeakCalibrator,
    candidate_values,
    pooled_aside,
    pooled_price,
)
from loop.sources import TierSource
from loop.state_sources import Report, StateSource, with_reasons

if TYPE_CHECKING:  # the replay runs without a log; pandas is not needed to type it
    from loop.decision_log import DecisionLog

log = logging.getLogger(__name__)
TIERS = ("tier1", "tier2", "tier3")


#: How often the loop applies the decision log's retention (loop-clock seconds).
PRUNE_EVERY_S = 3600.0


class NotRecorded(RuntimeError):
    """A durable state report that could not be written (nothing of it was applied)."""


@dataclass(frozen=True)
class Pass:
    """One pass of the loop: when, what each tier said, what was decided, and what was missing."""

    number: int  # passes since the log began (1, 2, ...; continued after a restart)
    decided_at: float
    fleet: FleetDecisions
    tiers: dict[str, dict[str, TierPrediction | None]]
    degraded: dict[str, str]
    weights_source: str
    seconds: float  # wall time the pass took


class _WindowPeaks:
    """One producer's decision windows still waiting for their peak, and the load samples they
    need: each window's peak is :func:`loop.recalibrate.join_window_peaks`'s (the samples
    stamped after the decision, up to the first at or after its end), found as the samples
    arrive instead of by keeping a week of them. A sample re-reported under the newest stamp
    replaces it, also in the peaks of the windows it closed, as the batch join reads the last
    report of a stamp; a sample stamped before the newest is not used. (The sizing's
    :class:`leadtime.window_peak.OpenWindows` keeps the first report of a stamp and one window a
    decision time; recalibration must agree with the decision log's join, which keeps the
    last and every decision.)"""

    __slots__ = ("closed", "loads", "pending")

    def __init__(self) -> None:
        self.pending: deque[tuple[float, float, int]] = deque()  # (t0, end, seq)
        self.closed: list[tuple[float, int]] = []  # (t0, seq) closed by the newest sample
        self.loads: deque[tuple[float, float]] = deque()  # (at, load) the windows need

    def open(self, t0: float, end: float, seq: int) -> None:
        self.pending.append((t0, end, seq))

    def observe(self, at: float, load: float) -> list[tuple[int, float]]:
        """The sample stamped ``at``: ``(seq, peak)`` of every window it closes (or, re-reported,
        of the windows it had closed)."""
        loads = self.loads
        if loads and at < loads[-1][0]:
            return []
        if loads and at == loads[-1][0]:
            loads[-1] = (at, load)
        else:
            loads.append((at, load))
            self.closed = []
        pending = self.pending
        if any(end <= at for _, end, _ in pending):  # ``at`` covers their end
            still = deque()
            for t0, end, seq in pending:
                (self.closed.append((t0, seq)) if end <= at else still.append((t0, end, seq)))
            self.pending = pending = still
        peaks = [(seq, max((v for s, v in loads if s > t0), default=math.nan))
                 for t0, seq in self.closed]
        oldest = min([t0 for t0, _, _ in pending] + [t0 for t0, _ in self.closed], default=at)
        while len(loads) > 1 and loads[0][0] <= oldest:  # no window needs them
            loads.popleft()
        return peaks


class _History:
    """The loop's own record of its tier points and of what each decision's window peaked at,
    for recalibration, as rows of floats (a week of it at one pass a minute took 4 MiB a
    producer as tuples and dicts): per decision ``(decided_at, producer, lead, seq, peak, tier,
    point, tier, point, ...)``, names as their number in :attr:`names`, ``seq`` the decision's
    number, ``peak`` NaN until its window is over and NaN for the slots of tiers that did not
    answer. The observed load itself is not kept: each window's peak is taken as the samples
    arrive (:class:`_WindowPeaks`)."""

    SLOTS = len(TIERS)  # tier points a decision keeps: one per tier
    SEQ, PEAK, FIRST_TIER = 3, 4, 5  # columns

    def __init__(self) -> None:
        self.decisions = FloatRows(self.FIRST_TIER + 2 * self.SLOTS)
        self.windows: dict[str, _WindowPeaks] = {}
        self.names: list[str] = []
        self._numbers: dict[str, int] = {}
        self._seq = 0

    def number(self, name: str) -> int:
        """The number a producer or tier name is kept under."""
        if name not in self._numbers:
            self._numbers[name] = len(self.names)
            self.names.append(name)
        return self._numbers[name]

    def remember(self, now: float, pid: str, lead: float, points: Mapping[str, float],
                 keep: float = -math.inf) -> None:
        """Record a decision's tier points and open its window; forget the decisions, and this
        producer's windows waiting for a sample, from before ``keep``."""
        if len(points) > self.SLOTS:
            raise ValueError(f"{len(points)} tier points; the record keeps {self.SLOTS}")
        seq, self._seq = self._seq, self._seq + 1
        row = [now, self.number(pid), lead, seq, math.nan] + [math.nan] * (2 * self.SLOTS)
        for slot, (tier, point) in enumerate(points.items()):
            row[self.FIRST_TIER + 2 * slot], row[self.FIRST_TIER + 1 + 2 * slot] = (
                self.number(tier), point)
        self.decisions.append(row)
        decisions = self.decisions
        while len(decisions) and decisions.first() < keep:
            decisions.popleft()
        windows = self._windows(pid)
        windows.open(now, now + lead, seq)
        pending = windows.pending  # a producer whose load is not reported closes none
        while pending and pending[0][0] < keep:
            pending.popleft()

    def _windows(self, pid: str) -> _WindowPeaks:
        windows = self.windows.get(pid)
        if windows is None:
            windows = self.windows[pid] = _WindowPeaks()
        return windows

    def observe(self, pid: str, at: float, load: float) -> None:
        """A load sample of ``pid``: the peaks of the decision windows it closes."""
        closed = self._windows(pid).observe(at, load)
        if closed and len(self.decisions):
            rows = self.decisions.rows()
            first = int(rows[0, self.SEQ])
            for seq, peak in closed:
                if 0 <= seq - first < len(rows):  # not aged out
                    rows[seq - first, self.PEAK] = peak

    def _long(self, since: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The decisions from ``since`` in long form, one entry per tier point, in decision
        order and each decision's tiers in the order they answered: each entry's row in
        :attr:`decisions` and its slot, and those rows."""
        rows = self.decisions.rows()
        recent = np.flatnonzero(rows[:, 0] >= since)
        row, slot = np.nonzero(~np.isnan(rows[recent, self.FIRST_TIER::2]))  # row-major
        return recent[row], slot, rows

    def points(self, since: float) -> list[tuple[float, str, float, str, float]]:
        """``(decided_at, producer, lead, tier, point)`` of the decisions from ``since``, in
        the order they were taken, each decision's tiers in the order they answered."""
        row, slot, rows = self._long(since)
        names, tier = self.names, self.FIRST_TIER + 2 * slot
        return [(at, names[int(pid)], lead, names[int(t)], point)
                for (at, pid, lead), t, point in zip(rows[row, :3].tolist(),
                                                     rows[row, tier].tolist(),
                                                     rows[row, tier + 1].tolist())]

    def joined(self, since: float):
        """:meth:`points` with each window's peak (``actual``), where it is over: the frame
        :func:`loop.recalibrate.join_window_peaks` gives (each producer's rows together, in
        the order the producers first decided; its index, ``window_start`` and
        ``decision_id``), built from the record's arrays rather than grouped and concatenated
        producer by producer (a week of a large fleet's decisions is millions of rows)."""
        import pandas as pd

        row, slot, rows = self._long(since)
        columns = ["decided_at", "producer_id", "lead_s", "tier", "point", "actual"]
        pid = rows[row, 1].astype(np.int64)
        _, first = np.unique(pid, return_index=True)  # each producer's first entry
        rank = np.empty(len(self.names), dtype=np.int64)
        rank[pid[np.sort(first)]] = np.arange(first.size)
        order = np.argsort(rank[pid], kind="stable")
        row, slot, pid = row[order], slot[order], pid[order]
        actual = rows[row, self.PEAK]
        points = rows[row, self.FIRST_TIER + 1 + 2 * slot]
        kept = np.flatnonzero(~np.isnan(actual) & ~np.isnan(points))
        if not kept.size:
            return pd.DataFrame(columns=columns)
        row, slot, pid = row[kept], slot[kept], pid[kept]
        at, lead = rows[row, 0], rows[row, 2]
        new = np.ones(kept.size, dtype=bool)  # a decision's first entry: another producer or time
        new[1:] = (pid[1:] != pid[:-1]) | (at[1:] != at[:-1])
        names = np.array(self.names, dtype=object)
        return pd.DataFrame({
            "decided_at": at, "producer_id": names[pid], "lead_s": lead,
            "tier": names[rows[row, self.FIRST_TIER + 2 * slot].astype(np.int64)],
            "point": points[kept], "actual": actual[kept], "window_start": at + lead,
            "decision_id": np.cumsum(new) - 1}, index=kept)


def _several(resources: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """The producers sized on several resources (the others decide under their own id)."""
    return {pid: dict(keys) for pid, keys in resources.items() if list(keys.values()) != [pid]}


def _refit_phases(resources: Mapping[str, Mapping[str, str]]) -> dict[str, float]:
    """Per resource key, its producer's place in a refit period, as a share of it: the sizing
    refits of a fleet that started together spread over the period instead of all landing on
    one pass. The place is a hash of the producer's id (:func:`leadtime.config.shard_of`), so a
    producer refits at the same moments whichever shard decides it; a producer's resources
    share it, so they refit together (their price is pooled). A loop that decides one producer
    (the replay; a shard of one) has no fleet to spread over and refits from its first pass.

    >>> _refit_phases({"b": {"load": "b"}, "a": {"cpu": "a/cpu", "memory": "a/memory"}})
    {'b': 0.087946, 'a/cpu': 0.96225, 'a/memory': 0.96225}
    >>> _refit_phases({"a": {"load": "a"}})
    {'a': 0.0}
    """
    if len(resources) < 2:
        return {key: 0.0 for keys in resources.values() for key in keys.values()}
    return {key: shard_of(pid, 1_000_000) / 1_000_000
            for pid, keys in resources.items() for key in keys.values()}


class DecisionLoop:
    """See the module docstring. Thread-safe: one lock around passes and reports."""

    def __init__(
        self,
        config: LeadtimeConfig,
        sources: Sequence[TierSource],
        clock: Clock,
        *,
        decision_log: DecisionLog | None = None,  # None: the replay keeps no log
        weights: Mapping[str, float] | None = None,
        weights_source: str = "config",
        recalibrate: bool = False,
        on_pass: Callable[[Pass], None] | None = None,  # e.g. the Prometheus metrics
        state_sources: Sequence[StateSource] = (),  # e.g. connectors' PrometheusStates
    ) -> None:
        self.state_sources = list(state_sources)
        self.clock = clock
        self.sources = list(sources)
        self.decision_log = decision_log
        self.recalibrate_weights = recalibrate
        self.on_pass = on_pass
        self._lock = threading.RLock()
        self.config = config
        self.weights = dict(weights) if weights is not None else dict(config.engine.weights)
        self.weights_source = weights_source
        self.states: dict[str, Report] = {}
        self.last_scale_out_s: dict[str, float] = {}
        self.latest: Pass | None = None
        self.passes = 0  # the number of the latest pass (restored from the log on restart)
        self._last_prune: float | None = None
        self.last_recalibration_s: float | None = None
        self.weight_history: list[tuple[float, dict[str, float], bool]] = []
        self._observed_error: str | None = None  # the last failed observed-load append
        self._history = _History()
        self._producers = config.resource_configs()  # by resource key (a producer's id for
        self._resources = config.resource_keys()  # its one load): each decided as a producer
        self._several = _several(self._resources)  # the producers sized on several resources
        self._phases = _refit_phases(self._resources)
        self._sizers: dict[str, WindowPeakCalibrator] = {}
        self._made_sizing_config: tuple[EngineSpec, SizingConfig] | None = None
        self._twins: dict[str, HpaTwin] = {}  # per producer, what reacting would hold
        self._floors: dict[str, list[tuple[float, int]]] = {}  # (stood until, floor) per producer

    # --- configuration ---------------------------------------------------------------------

    def configure(self, config: LeadtimeConfig) -> None:
        """A new ``leadtime.yaml`` (reload); weights follow it unless a registry set them."""
        with self._lock:
            self.config = config
            self._producers = config.resource_configs()
            self._resources = config.resource_keys()
            self._several = _several(self._resources)
            self._phases = _refit_phases(self._resources)
            if self.weights_source == "config":
                self.weights = dict(config.engine.weights)

    def set_weights(self, weights: Mapping[str, float], source: str) -> None:
        with self._lock:
            self.weights = dict(weights)
            self.weights_source = source

    def set_sources(self, sources: Sequence[TierSource]) -> None:
        with self._lock:
            self.sources = list(sources)

    # --- inputs ----------------------------------------------------------------------------

    def report(self, reports: Iterable[Report], *, durable: bool = False) -> int:
        """Record allocators' states; their current load is also the observed load (stamped
        now) that recalibration joins with each decision's window (one log append per report).

        With ``durable`` (the API's state reports) the states are written to the decision log
        before anything is applied, and a failed write raises :class:`NotRecorded` with nothing
        applied: a report that returns was written. Otherwise (a state source's pull) a failed
        write is reported as degraded and the pass goes on."""
        reports = list(reports)
        count = len(reports)
        reports = [r for report in reports for r in self._per_resource(report)]
        now = self.clock.now()
        loads = {r.producer_id: float(r.current_load) for r in reports
                 if r.current_load is not None and math.isfinite(r.current_load)}
        with self._lock:  # written and applied in one order
            if self.decision_log is not None:
                try:
                    self.decision_log.record_observed(
                        [(p, now, load) for p, load in loads.items()],
                        [(r.producer_id, r.instances, r.current_load, r.last_scale_out_s, now)
                         for r in reports])
                    self._observed_error = None
                except Exception as exc:  # feedback data must not take decisions down
                    self._observed_error = f"observed-load append failed: {exc}"
                    if durable:
                        raise NotRecorded(f"the decision log could not record the report "
                                          f"({exc}); nothing was applied: retry") from exc
            for r in reports:
                self.states[r.producer_id] = r
                load = loads.get(r.producer_id)
                if load is not None:
                    self._remember_load(r.producer_id, now, load)
                    sizer = self._sizer(r.producer_id)
                    if sizer is not None:
                        sizer.observe(now, load)
        return count

    def _pool_resources(self, now: float) -> None:
        """A producer sized on several resources decides as one, from the next pass: at each
        refit, in the budget mode, its resources' price is the one their records afford pooled
        (:func:`loop.sizing.pooled_price`), one budget; and it steps aside on all of them or on
        none (:func:`loop.sizing.pooled_aside`), as a window is violated when any is short."""
        engine = self.config.engine
        for keys in self._several.values():
            sizers = [self._sizers[k] for k in keys.values() if k in self._sizers]
            if len(sizers) < 2 or any(s.fitted_at != now for s in sizers):
                continue
            if engine.sizing_budget is not None:
                price = pooled_price(sizers, engine.sizing_budget)
                if price is not None:
                    for sizer in sizers:
                        sizer.price, sizer.aim = price, sizers[0].aim
            if engine.sizing_step_aside:
                pooled_aside(sizers)

    def _by_producer(self, notes: Mapping[str, str]) -> dict[str, str]:
        """Notes by resource key as notes by producer, each saying its resource."""
        if not notes:
            return {}
        keyed = {key for keys in self._several.values() for key in keys.values()}
        out = {pid: note for pid, note in notes.items() if pid not in keyed}
        for pid, keys in self._several.items():
            parts = [f"{name}: {notes[key]}" for name, key in keys.items() if key in notes]
            if parts:
                out[pid] = "; ".join(parts)
        return out

    def _per_resource(self, report: Report) -> list[Report]:
        """A producer sized on several resources reports one state: one report per resource
        key, each with that resource's load (``current_load`` is the resource named ``load``)."""
        keys = self._several.get(report.producer_id)
        if keys is None:
            if report.current_load is None and report.loads and "load" in report.loads:
                return [replace(report, current_load=report.loads["load"], loads=None)]
            return [report]
        loads = dict(report.loads or {})
        if report.current_load is not None:
            loads.setdefault("load", report.current_load)
        return [Report(key, report.instances, loads.get(name), report.last_scale_out_s)
                for name, key in keys.items()]

    def _sizer(self, producer_id: str) -> WindowPeakCalibrator | None:
        """The producer's sizing calibration, for windows of its lead time plus one decision
        interval (``loop.sizing``); rebuilt when either or the price changes."""
        config = self._producers.get(producer_id)
        if config is None:
            return None
        engine = self.config.engine
        wanted = self._sizing_config(engine)
        horizon = config.window_s
        capacity = (config.peak_capacity, config.min_instances, config.max_instances)
        sizer = self._sizers.get(producer_id)
        if (sizer is None or sizer.horizon_s != horizon or sizer.config != wanted
                or sizer.capacity != capacity):
            sizer = self._sizers[producer_id] = WindowPeakCalibrator(
                horizon, wanted, capacity,
                refit_phase_s=self._phases.get(producer_id, 0.0) * wanted.refit_every_s)
            self._twins[producer_id] = HpaTwin(HpaTwinConfig(
                capacity_per_instance=config.capacity_per_instance,
                target_utilisation=config.target_utilisation, min_instances=config.min_instances,
                max_instances=config.max_instances, spinup_s=config.spinup_lead_time_s,
                spend_window_s=engine.sizing_budget_window_s))
        return sizer

    def _sizing_config(self, engine: EngineSpec) -> SizingConfig:
        """The sizing's settings of ``engine``, made once per engine section rather than once
        per producer and pass."""
        made = self._made_sizing_config
        if made is None or made[0] is not engine:
            made = self._made_sizing_config = (engine, SizingConfig.from_engine(engine))
        return made[1]

    def _sizing(self, now: float, pid: str, tiers: Mapping[str, TierPrediction | None],
                state: ProducerState | None,
                offered: Mapping[str, tuple] | None = None) -> Sizing | None:
        """Record this pass's candidates and return the calibrated sizing (None: not yet)."""
        sizer = self._sizer(pid)
        if sizer is None:
            return None
        uppers = {t: p.upper for t, p in tiers.items()
                  if p is not None and p.usable() and self.weights.get(t, 0) > 0}
        if len(uppers) > 1:
            combined = combine(tiers, self.weights)
            if combined is not None:
                uppers[COMBINED] = combined.upper
        load = None if state is None else state.current_load
        if load is not None:
            uppers[REACTIVE] = float(load)
        twin = self._twins[pid]
        if twin.last_pass is None or now > twin.last_pass:
            twin.step(now, load)
        values = candidate_values(uppers, offered or {}, sizer.grid)
        floor = None if state is None else state.reacting_instances
        sizing = sizer.sizing(now, values, floor)
        sizer.record(now, values, reacting=twin.instances if twin.sized else None, floor=floor)
        return sizing

    def _held_floor(self, producer_id: str, now: float, floor: int | None) -> int | None:
        """The highest reacting floor that stood within the trailing
        ``engine.reacting_stabilisation_s``: the HPA's downscale stabilisation, so capacity a
        burst raised is not given back between its spikes (None: no load, nothing to hold).
        The pass holds it only where no tier sizes; where one does, its window peak holds the
        window and the floor is the present.

        A floor stands until the next pass replaces it, as a Kubernetes recommendation is
        repeated every sync until its metric changes (the HPA twin stamps its recommendations
        the same way, and both keep the window's maximum with :func:`loop.hpa_twin.window_max`):
        at one pass a minute a 300 s window holds the last five floors, at coarser passes the
        one before. The pass then clamps it between the present floor and the current count, as
        Kubernetes clamps its stabilised recommendation: a fleet already below it is held where
        it is, never raised back up.
        """
        window = self.config.engine.reacting_stabilisation_s
        if window <= 0 or floor is None:
            return floor
        stood = self._floors.get(producer_id, [])
        if stood:  # the last floor stood until this pass
            stood[-1] = (now, stood[-1][1])
        held, kept = window_max(stood, now - window, floor)
        kept.append((now, floor))
        self._floors[producer_id] = kept
        return held

    def _remember_load(self, producer_id: str, at_s: float, load: float) -> None:
        if self.recalibrate_weights:
            self._history.observe(producer_id, at_s, load)

    # --- the pass --------------------------------------------------------------------------

    def step(self) -> Pass:
        """One pass at the clock's now: ask every tier, decide, log, maybe recalibrate."""
        with self._lock:
            began = time.perf_counter()
            now = self.clock.now()
            config = self.config
            producers = self._producers
            level = config.engine.level
            if self.recalibrate_weights:
                self._maybe_recalibrate(now)
            tiers: dict[str, dict[str, TierPrediction | None]] = {p: {} for p in producers}
            offered: dict[str, dict[str, tuple]] = {p: {} for p in producers}
            degraded: dict[str, str] = {}
            notes = self._pull_states(producers, now, degraded)
            for source in self.sources:
                try:
                    answers = source.answer(producers, now, level)
                except Exception as exc:  # one tier failing must not stop the others
                    degraded[source.tier] = f"{type(exc).__name__}: {exc}"
                    continue
                for pid, prediction in answers.predictions.items():
                    if pid in tiers:
                        tiers[pid][source.tier] = prediction
                if self.weights.get(source.tier, 0) > 0:  # a tier without weight neither sizes
                    for pid, named in answers.candidates.items():
                        if pid in offered:
                            offered[pid].update(named)
                if answers.error:
                    degraded[source.tier] = answers.error
            for tier in TIERS:
                if self.weights.get(tier, 0) > 0 and not any(tier in t for t in tiers.values()):
                    degraded.setdefault(tier, f"no {tier} source wired")
            floor_on = config.engine.reacting_floor
            states = {pid: ProducerState(
                instances=r.instances, current_load=r.current_load, now_s=now,
                last_scale_out_s=self._last_scale_out(pid, r),
                reacting_instances=reacting_floor(
                    r.current_load, producers[pid], r.instances, config.engine.reacting_tolerance)
                if floor_on else None)
                for pid, r in self.states.items() if pid in producers}
            held = {pid: self._held_floor(pid, now, s.reacting_instances)
                    for pid, s in states.items()}
            sizing = {pid: self._sizing(now, pid, tiers[pid], states.get(pid), offered[pid])
                      for pid in producers}
            self._pool_resources(now)
            held_notes: dict[str, str] = {}
            for pid, s in states.items():
                aside = sizing[pid] is not None and sizing[pid].aside is not None
                twin = self._twins[pid] if aside else None  # a sizing has its twin
                if aside and twin.sized:
                    # stepping aside: the floor is what the HPA twin holds, as reacting would
                    states[pid] = replace(s, reacting_instances=twin.instances)
                    held_notes[pid] = f"reacting floor: what the HPA twin holds, {twin.instances}"
                    continue
                reacting = sizing[pid] is None or sizing[pid].source == REACTIVE
                if reacting and held[pid] is not None:  # as Kubernetes: never back up to it
                    held[pid] = min(max(s.instances, s.reacting_instances), held[pid])
                if reacting and held[pid] != s.reacting_instances:  # no tier sizes: the HPA's
                    states[pid] = replace(s, reacting_instances=held[pid])  # stabilisation too
                    held_notes[pid] = (
                        f"reacting floor held at {held[pid]} (the current load needs "
                        f"{s.reacting_instances}): no tier sizes, so the floor keeps its highest "
                        f"count of the last {config.engine.reacting_stabilisation_s:g} s, as the "
                        f"HPA's downscale stabilisation")
            fleet = decide_all(producers, tiers, states, config.pool_members(),
                               weights=self.weights, threshold=config.engine.threshold,
                               dry_run=config.dry_run, sizing=sizing, resources=self._several)
            fleet = with_reasons(with_reasons(fleet, notes), self._by_producer(held_notes))
            logged_tiers, logged_configs = tiers, producers
            for pid, decision in fleet.decisions.items():
                # each resource's record holds what its own decision asked for (its budget
                # compares its sizing with its own twin), a producer's one load the decision
                keys = ({pid: decision.target_instances} if pid in producers else
                        {key: decision.by_resource[name]
                         for name, key in self._resources[pid].items()
                         if name in decision.by_resource})
                if pid not in producers:  # several resources: the log keeps the binding one's
                    key = self._resources[pid][decision.resource]
                    if logged_tiers is tiers:
                        logged_tiers, logged_configs = dict(tiers), dict(producers)
                    logged_tiers[pid], logged_configs[pid] = tiers[key], producers[key]
                for key, held_count in keys.items():
                    if decision.action == "scale_out":
                        self.last_scale_out_s[key] = now
                    if key in self._sizers:
                        self._sizers[key].held(now, held_count)
                    self._remember(now, key, producers[key].spinup_lead_time_s, tiers[key])
            if self.decision_log is not None:
                try:
                    self.decision_log.append(fleet, logged_tiers, logged_configs, now,
                                             config.pool_of(), self.weights_source,
                                             loop_state=self.state())
                except Exception as exc:  # the log must not take decisions down; say so loudly
                    log.error("decision log append failed: %s", exc)
                    degraded["decision_log"] = f"append failed: {exc}"
            if self._observed_error is not None:
                degraded.setdefault("decision_log", self._observed_error)
            self._maybe_prune(now, degraded)
            self.passes += 1
            self.latest = Pass(self.passes, now, fleet, tiers, degraded, self.weights_source,
                               time.perf_counter() - began)
            if self.on_pass is not None:
                self.on_pass(self.latest)
            return self.latest

    def _maybe_prune(self, now: float, degraded: dict[str, str]) -> None:
        """Once an hour (loop clock), fold the log's decisions older than
        ``engine.log_retention_s`` into hourly aggregates and reuse their space."""
        if self.decision_log is None or not hasattr(self.decision_log, "prune"):
            return
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        try:
            cut = now - self.config.engine.log_retention_s
            self.decision_log.prune(math.floor(cut / 3600.0) * 3600.0)  # whole hours only
        except Exception as exc:  # retention must not take decisions down; say so
            log.error("decision log retention failed: %s", exc)
            degraded["decision_log"] = f"retention failed: {exc}"

    def _pull_states(self, producers: Mapping[str, ProducerConfig], now: float,
                     degraded: dict[str, str]) -> dict[str, str]:
        """Read the state sources (e.g. Prometheus) as reports; their failures as degraded."""
        notes: dict[str, str] = {}
        for source in self.state_sources:
            try:
                pulled = source.pull(self.config, producers, self.states, now)
            except Exception as exc:  # a state source failing must not stop the pass
                degraded[source.name] = f"{type(exc).__name__}: {exc}"
                continue
            self.report(Report(pid, n, load, self._reported_scale_out(pid), pulled.loads.get(pid))
                        for pid, n, load in pulled.reports)
            if pulled.error:
                degraded[source.name] = pulled.error
            notes.update(pulled.notes)
        return notes

    def _reported_scale_out(self, pid: str) -> float | None:
        """The last scale-out a producer's allocator reported (its first resource's record)."""
        first = next(iter(self._resources.get(pid, {pid: pid}).values()))
        return getattr(self.states.get(first), "last_scale_out_s", None)

    def _last_scale_out(self, pid: str, report: Report) -> float | None:
        own = self.last_scale_out_s.get(pid)
        reported = report.last_scale_out_s
        if own is None:
            return reported
        return own if reported is None else max(own, reported)

    # --- recalibration (the replay's feedback; serving's is the ``recalibrate`` flow) --------

    def _remember(self, now: float, pid: str, lead: float,
                  tiers: Mapping[str, TierPrediction | None]) -> None:
        if not self.recalibrate_weights:
            return
        points = {t: p.point for t, p in tiers.items() if p is not None and p.usable()}
        if not points:
            return
        self._history.remember(now, pid, lead, points,
                               keep=now - self.config.engine.recalibration_window_s - 2 * lead)

    def joined(self, now: float):
        """Logged tier points of the decisions whose window is over, with its observed peak."""
        return self._history.joined(now - self.config.engine.recalibration_window_s)

    def _maybe_recalibrate(self, now: float) -> None:
        """Re-weight once per ``recalibrate_every_s`` period of Unix time (daily: at the first
        pass after each UTC midnight), whenever the loop was started."""
        every = self.config.engine.recalibrate_every_s
        if self.last_recalibration_s is None:
            self.last_recalibration_s = now
            return
        if math.floor(now / every) <= math.floor(self.last_recalibration_s / every):
            return
        self.last_recalibration_s = now
        from loop.recalibrate import recalibrate

        joined = self.joined(now)
        if joined.empty or joined["tier"].nunique() < 2:
            return
        result = recalibrate(joined, self.weights)
        promoted = bool(result.candidate_score <= result.current_score)
        if promoted:
            self.weights = dict(result.weights)
            self.weights_source = "recalibrated in the loop"
        self.weight_history.append((now, dict(result.weights), promoted))

    # --- restart ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What must survive a restart (written with every logged pass)."""
        return {
            "states": {p: [r.instances, r.current_load, r.last_scale_out_s]
                       for p, r in self.states.items()},
            "last_scale_out_s": dict(self.last_scale_out_s),
            "weights": dict(self.weights), "weights_source": self.weights_source,
            "decided_at": self.latest.decided_at if self.latest else None,
            "pass": self.passes + 1,  # written with the pass it describes (not yet counted)
        }

    def restore(self) -> bool:
        """Read the loop's state back from the decision log; False when there is none."""
        if self.decision_log is None:
            return False
        saved = self.decision_log.loop_state()
        if not saved:
            return False
        with self._lock:
            states = {**saved.get("states", {}), **saved.get("reported", {})}  # newest wins
            self.states = {p: Report(p, int(v[0]), v[1], v[2]) for p, v in states.items()}
            self.passes = int(saved.get("pass") or saved.get("batch_id") or 0)
            self.last_scale_out_s = {p: float(t)
                                     for p, t in saved.get("last_scale_out_s", {}).items()}
        return True
