"""Tier 2's window answer from work in flight: what announced requests will hold, and when.

Each request announced to a producer holds its units from its start for its predicted run time,
with bounds from the intent model's interval: ``[start, start + lower]``, ``[start, start +
point]`` and ``[start, start + upper]``. A request is announced at its arrival (its start is
then taken to be its arrival, or a later moment a queue has told), told when it actually starts
(:meth:`InFlight.started`), and leaves the ledger when it is seen to finish
(:meth:`InFlight.finished`). Once it runs, how long it has run says more than its prediction
alone: the ledger keeps the run times it has seen finish, each over its prediction, per
producer, and a request that has run ``e`` seconds of a predicted ``p`` ends after the 50 %, 10 %
and 90 % quantiles (numpy's "lower" method) of the recorded ratios longer than ``e / p``, times
``p``, for the point, lower and upper bound: a long job that has outrun its prediction is
likely to run on, as the survival of run times has it. Until ``min_recorded`` runs are recorded,
or once it has run longer than any recorded, it ends at its prediction; a request still running
past its end is known to be running, so it counts until the next moment asked. A request
announced as **queued** (a queue
holds it, its start unknown) starts when the queue's record says it may: the ledger keeps the
waits it has seen (announced to started) per producer, and a request that has waited ``e``
seconds starts after the 10 %, 50 % and 90 % quantiles of the recorded waits longer than ``e``
(less ``e``), for the upper, point and lower bound: early for the most the window may hold, late
for the least. Until ``min_recorded`` waits are recorded, or once it has waited longer than any
recorded, it starts at the earliest moment asked. Either way it holds its run time from its
start until it is told to have started, however long it waits.

Tier 2's answer for the window ``[now, now + w]`` is the window peak of the held units, for each
bound, plus the projected arrivals of new work: the units that arrived per second over the last
``rate_span_s`` (an hour, or the window if longer), each holding for the mean predicted run time
of those arrivals, so that new work adds ``rate x min(t - now, mean run time)`` at ``now + t``.
Arrivals are counted over an hour rather than the window because a window of minutes sees a
handful of them at most, and their rate would jump between none and several. While the producer
has announced for less than the span, the rate is over the time it has (never less than the
window); while the record of arrivals (``max_jobs`` long) is full, over the time it holds. How
many arrive in the window is uncertain even at a known rate: the bounds scale the rate by
Poisson's 10 % and 90 % counts over the expected count (an 80 % interval, the intent model's).
The peak is read where it can occur: now, each start inside the window, just before each end
inside it, and the window's end.

Two requests in flight at 20 s, asked about ``[20, 80]`` with arrivals counted over the last
60 s: "a" (2 units, from 0 s, predicted 100 s, 50-200 s) and "b" (1 unit, from 10 s, predicted
30 s, 20-40 s). At the point both hold 3 units until "b" ends at 40 s; then "a" holds 2 to the
window's end, where the arrivals' rate (3 units in the last 60 s: 0.05 per second) adds
0.05 x 60 = 3 units of new work. Two arrivals were expected in the window; Poisson's 90 % count
is 4, so the upper bound's new work is twice the point's, and its 10 % count, 0, adds none to
the lower bound:

>>> ledger = InFlight(rate_span_s=60.0)
>>> ledger.announce("p", at_s=0.0, duration=(100.0, 50.0, 200.0), units=2.0, job="a")
'a'
>>> ledger.announce("p", at_s=10.0, duration=(30.0, 20.0, 40.0), job="b")
'b'
>>> answer = ledger.predict({"p": 60.0}, {"p": 1.0}, now=20.0)["p"]
>>> round(answer.lower, 2), round(answer.point, 2), round(answer.upper, 2)
(3.0, 5.0, 8.0)
>>> ledger.finished("p", "b"), ledger.in_flight("p")
(True, 1)

A queued request of 30 s announced at 0 s and still waiting at 100 s is 30 s of work from
100 s, not work that ended at 30 s:

>>> queue = InFlight(rate_span_s=60.0)
>>> queue.announce("p", at_s=0.0, duration=(30.0, 30.0, 30.0), job="q", queued=True)
'q'
>>> round(queue.predict({"p": 60.0}, {"p": 1.0}, now=100.0)["p"].point, 2)  # 1 unit + none new
1.0
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from leadtime.engine import TierPrediction
from models.tier2.online_calibration import OnlineCalibration

ARRIVALS_LOW, ARRIVALS_HIGH = 0.1, 0.9  # new work's count: an 80 % interval
WAIT_QUANTILES = (0.5, 0.9, 0.1)  # a queued request's remaining wait: point, lower, upper
RUN_QUANTILES = (0.5, 0.1, 0.9)  # a running request's run time: point, lower, upper


def poisson_quantile(mean: float, q: float) -> int:
    """The smallest count whose Poisson(``mean``) probability of at most it reaches ``q``; from
    a mean of 100 on, the normal approximation (within a count of the exact one there).

    >>> poisson_quantile(2.0, 0.1), poisson_quantile(2.0, 0.9), poisson_quantile(0.05, 0.9)
    (0, 4, 0)
    >>> poisson_quantile(10_000.0, 0.9), poisson_quantile(10_000.0, 0.1)
    (10128, 9872)
    """
    if mean >= 100.0:
        return max(0, math.ceil(mean + NormalDist().inv_cdf(q) * math.sqrt(mean) - 0.5))
    term = total = math.exp(-mean)
    count = 0
    while total < q and term > 0.0:
        count += 1
        term *= mean / count
        total += term
    return count


@dataclass
class _Job:
    arrived: float
    start: float
    durations: tuple[float, float, float]  # point, lower, upper (seconds)
    units: float
    queued: bool = False  # a queue holds it: it starts at the earliest moment asked
    key: str | None = None  # the interval's calibration key, for online recalibration
    widened: float = 0.0  # how far the calibration had widened its interval (log1p units)
    bounds: tuple[float, float] | None = None  # the units' own interval (lower, upper), if any

    def held(self, k: int) -> float:
        """The units it holds for the point (0), lower (1) or upper (2) bound."""
        return self.units if k == 0 or self.bounds is None else self.bounds[k - 1]


class InFlight:
    """Per producer, the announced requests not yet seen to finish (thread-safe).

    ``forget_after_s`` drops a request whose finish is never reported (a lost report), once its
    upper end lies that far in the past; ``max_jobs`` bounds each producer's ledger (the oldest
    goes first). Unknown finishes and dropped requests are counted (``late``, ``dropped``).
    """

    def __init__(self, forget_after_s: float = 86_400.0, max_jobs: int = 100_000,
                 rate_span_s: float = 3600.0, calibration: OnlineCalibration | None = None,
                 record_size: int = 1000, min_recorded: int = 20) -> None:
        self.calibration = calibration  # told each finished request's run time, to recalibrate
        self.forget_after_s = forget_after_s
        self.max_jobs = max_jobs
        self.rate_span_s = rate_span_s  # new work's arrival rate: over this span (>= the window)
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, _Job]] = {}
        self._seen: set[str] = set()  # producers with at least one announcement
        self._arrivals: dict[str, deque] = {}  # (at, units, durations): the recent rate
        self._first: dict[str, float] = {}  # per producer, its first announcement
        self._waits: dict[str, deque] = {}  # per producer, the queue waits seen (seconds)
        self._runs: dict[str, deque] = {}  # per producer, run times seen over their prediction
        self._children: dict[str, set[str]] = {}  # per producer, its resources' ledger keys
        self._child_keys: set[str] = set()
        self.record_size, self.min_recorded = record_size, min_recorded
        self._next = 0
        self.late = 0  # finishes or starts reported for a request the ledger does not hold
        self.dropped = 0  # requests forgotten (no finish within forget_after_s) or over max_jobs

    def announce(self, producer: str, at_s: float, duration: tuple[float, float, float],
                 units: float | tuple[float, float, float] = 1.0, start_s: float | None = None,
                 job: str | None = None,
                 queued: bool = False, key: str | None = None, owner: str | None = None) -> str:
        """Record a request announced at ``at_s`` with its predicted run time
        ``(point, lower, upper)``; returns its job id (``job``, or a new one). ``start_s``: when
        it starts, if known; else ``queued`` says a queue holds it (it starts at the earliest
        moment asked, until :meth:`started`), and without either it starts at ``at_s``.
        ``key``: the calibration key of its interval, which its finish updates (``calibration``).
        ``owner``: ``producer`` is a resource's key of that producer (the request's share of one
        resource, in that resource's ``units``): the owner's progress reports move it too.
        ``units`` as ``(point, lower, upper)`` (a resource's predicted share with its interval):
        the bounds hold the bounds' units."""
        point, lower, upper = (max(0.0, float(d)) for d in duration)
        bounds = None
        if isinstance(units, tuple):
            units, low, high = (max(0.0, float(u)) for u in units)
            bounds = (min(low, units), max(high, units))
        with self._lock:
            if job is None:
                self._next += 1
                job = f"#{self._next}"
            jobs = self._jobs.setdefault(producer, {})
            self._seen.add(producer)
            if owner is not None and owner != producer:
                self._children.setdefault(owner, set()).add(producer)
                self._child_keys.add(producer)
            durations = (point, min(lower, point), max(upper, point))
            widened = (self.calibration.delta(key)
                       if self.calibration is not None and key is not None else 0.0)
            jobs[job] = _Job(at_s, at_s if start_s is None else start_s, durations, float(units),
                             queued and start_s is None, key, widened, bounds)
            self._first.setdefault(producer, at_s)
            arrivals = self._arrivals.setdefault(producer, deque(maxlen=self.max_jobs))
            arrivals.append((at_s, float(units), durations))
            while arrivals and arrivals[0][0] < at_s - self.forget_after_s:
                arrivals.popleft()
            while len(jobs) > self.max_jobs:
                jobs.pop(next(iter(jobs)))
                self.dropped += 1
        return job

    def started(self, producer: str, job: str, at_s: float) -> bool:
        """The request has started at ``at_s`` (a queue held it until then)."""
        with self._lock:
            found = self._jobs.get(producer, {}).get(job)
            if found is None:
                self.late += 1
                return False
            for key in (producer, *self._children.get(producer, ())):  # and its resources'
                held = self._jobs.get(key, {}).get(job)
                if held is None:
                    continue
                wait = at_s - held.arrived
                if held.queued and 0.0 <= wait <= self.forget_after_s:  # a start reported
                    # before its announcement, or a day after, says nothing of the queue
                    self._waits.setdefault(key, deque(maxlen=self.record_size)).append(wait)
                held.start, held.queued = at_s, False
            return True

    def finished(self, producer: str, job: str, at_s: float | None = None) -> bool:
        """The request is seen to finish (at ``at_s``, if told): it leaves the ledger. With a
        ``calibration``, its run time (``at_s`` less its start; a queued one's start is unknown)
        is scored against its interval as calibrated (the one announced, less the widening
        the calibration had given it then)."""
        with self._lock:
            found = self._jobs.get(producer, {}).pop(job, None)
            if found is None:
                self.late += 1
                return False
            ran = at_s - found.start if at_s is not None and not found.queued else -1.0
            for key in self._children.get(producer, ()):  # its share of each resource goes too
                if self._jobs.get(key, {}).pop(job, None) is not None and ran >= 0:
                    self._ran(key, ran, found.durations[0])
            if ran >= 0:
                self._ran(producer, ran, found.durations[0])
        if (self.calibration is not None and found.key is not None and at_s is not None
                and not found.queued and at_s >= found.start):
            _, lower, upper = found.durations
            shift = found.widened  # the interval as calibrated, before it was widened
            self.calibration.update(found.key, at_s - found.start,
                                    math.expm1(math.log1p(lower) + shift) if lower > 0 else 0.0,
                                    math.expm1(math.log1p(upper) - shift), served=(lower, upper))
        return True

    def _ran(self, key: str, ran: float, predicted: float) -> None:
        """Record a finished request's run time over its predicted one (under the lock)."""
        if predicted > 0:
            self._runs.setdefault(key, deque(maxlen=self.record_size)).append(ran / predicted)

    def producers(self) -> list[str]:
        """Every key the ledger answers for: producers and their resources' keys."""
        with self._lock:
            return sorted(self._seen)

    def owners(self) -> list[str]:
        """The producers requests were announced to, without their resources' keys (each
        request counted once)."""
        with self._lock:
            return sorted(self._seen - self._child_keys)

    def in_flight(self, producer: str) -> int:
        with self._lock:
            return len(self._jobs.get(producer, {}))

    def queued(self, producer: str) -> int:
        """Requests announced as queued and not yet told to have started."""
        with self._lock:
            return sum(j.queued for j in self._jobs.get(producer, {}).values())

    def runs_recorded(self, producer: str) -> int:
        """Run times recorded for the producer (requests not queued, or told to have started,
        seen to finish at a known moment)."""
        with self._lock:
            return len(self._runs.get(producer, ()))

    def waits_recorded(self, producer: str) -> int:
        """Queue waits recorded for the producer (announced as queued, then told to start)."""
        with self._lock:
            return len(self._waits.get(producer, ()))

    def predict(self, windows_s: Mapping[str, float], scales: Mapping[str, float],
                now: float) -> dict[str, TierPrediction]:
        """Tier 2 for every producer with a scale and an announcement since start: the window
        peak of the units its work holds, times its scale (see the module docstring)."""
        out: dict[str, TierPrediction] = {}
        with self._lock:
            for producer, scale in scales.items():
                if producer not in self._seen:
                    continue
                jobs = self._prune(producer, now)
                window = max(float(windows_s.get(producer, 300.0)), 1.0)
                recent, span = self._recent(producer, now, max(self.rate_span_s, window), window)
                starts = self._starts(producer, jobs, now)
                ends = self._ends(producer, jobs, starts, now)
                bounds = [self._peak(jobs, starts[k], ends[k], recent, now, window, span, k)
                          for k in (1, 0, 2)]  # lower, point, upper
                out[producer] = TierPrediction(bounds[1] * scale, bounds[0] * scale,
                                               bounds[2] * scale)
        return out

    def _recent(self, producer: str, now: float, span: float,
                window: float) -> tuple[list, float]:
        """The arrivals of the last ``span`` (older ones leave the record: they are never read
        again) and the time they were counted over: the span, or less while the producer's first
        announcement is younger (never less than ``window`` then), or while the record is full
        (``max_jobs``) and its oldest arrival is younger."""
        arrivals = self._arrivals.get(producer)
        if not arrivals:
            return [], span
        while arrivals and arrivals[0][0] <= now - span:
            arrivals.popleft()
        span = min(span, max(now - self._first[producer], window))
        if len(arrivals) == arrivals.maxlen:
            span = min(span, max(now - arrivals[0][0], 1.0))
        return [a for a in arrivals if a[0] <= now], span

    def _prune(self, producer: str, now: float) -> list[_Job]:
        jobs = self._jobs.get(producer, {})
        stale = [k for k, j in jobs.items()
                 if j.start + j.durations[2] + self.forget_after_s < now]
        for key in stale:
            del jobs[key]
        if producer not in self._child_keys:  # a request counts once, not once per resource
            self.dropped += len(stale)
        return list(jobs.values())

    def _starts(self, producer: str, jobs: list[_Job], now: float) -> list[np.ndarray]:
        """Each request's start for the point, lower and upper bound: a queued one's from the
        recorded waits longer than it has waited (see the module docstring)."""
        starts = np.array([j.start for j in jobs])
        queued = [i for i, j in enumerate(jobs) if j.queued]
        if not queued:
            return [starts, starts, starts]
        out = [starts.copy(), starts.copy(), starts.copy()]
        waits = self._learnt(self._waits, producer)
        for i in queued:
            waited = now - jobs[i].arrived
            longer = waits[np.searchsorted(waits, waited, side="right"):]
            for k, q in enumerate(WAIT_QUANTILES):
                rest = float(np.quantile(longer, q)) - waited if len(longer) else 0.0
                out[k][i] = now + max(rest, 0.0)
        return out

    def _learnt(self, records: Mapping[str, deque], producer: str) -> np.ndarray:
        """The producer's record (waits or run-time ratios), sorted; empty while it holds fewer
        than ``min_recorded``."""
        record = records.get(producer)
        if record is None or len(record) < self.min_recorded:
            return np.empty(0)
        return np.sort(np.fromiter(record, float))

    def _ends(self, producer: str, jobs: list[_Job], starts: list[np.ndarray],
              now: float) -> list[np.ndarray]:
        """Each request's end for the point, lower and upper bound: its start plus its
        predicted run time, or for one running, its start plus its prediction times the
        recorded ratios (run time over prediction) longer than its own so far, at their 50 %,
        10 % and 90 % quantiles (see the module docstring)."""
        if not jobs:
            return [np.empty(0)] * 3
        durations = np.array([j.durations for j in jobs])  # (jobs, 3)
        ratios = self._learnt(self._runs, producer)
        out = []
        for k, q in enumerate(RUN_QUANTILES):
            ends = starts[k] + durations[:, k]
            over = np.flatnonzero((starts[k] <= now) & (durations[:, 0] > 0))
            if ratios.size and over.size:
                ran = (now - starts[k][over]) / durations[over, 0]
                first = np.searchsorted(ratios, ran, side="right")  # the longer runs
                has = first < ratios.size
                pick = first + np.floor(q * (ratios.size - 1 - first)).astype(int)
                ratio = ratios[np.minimum(pick, ratios.size - 1)]
                ends[over[has]] = starts[k][over[has]] + ratio[has] * durations[over[has], 0]
            running = starts[k] <= now
            out.append(np.where(running, np.maximum(ends, now + 1e-6), ends))  # known running
        return out

    @staticmethod
    def _peak(jobs: list[_Job], starts: np.ndarray, ends: np.ndarray, recent: list,
              now: float, window: float, span: float, k: int) -> float:
        """The most units held at once in ``[now, now + window]`` with run times ``k``
        (0 point, 1 lower, 2 upper) from ``starts``, projected arrivals (``recent``: those of
        the last ``span``) included, their count at Poisson's 10 % (lower) or 90 % (upper) for
        the bounds."""
        rate = sum(a[1] for a in recent) / span
        expected = len(recent) / span * window  # arrivals expected in the window
        if k and expected > 0:
            rate *= poisson_quantile(expected, ARRIVALS_LOW if k == 1 else ARRIVALS_HIGH) / expected
        mean_run = float(np.mean([a[2][k] for a in recent])) if recent else 0.0
        horizon = now + window
        if not jobs:
            return rate * min(window, mean_run)
        units = np.array([j.held(k) for j in jobs])
        moments = np.concatenate([[now, horizon], starts[(starts > now) & (starts <= horizon)],
                                  ends[(ends > now) & (ends <= horizon)] - 1e-6])
        held = ((starts[None, :] <= moments[:, None]) & (moments[:, None] < ends[None, :])
                ) @ units
        projected = rate * np.minimum(moments - now, mean_run)
        return float((held + projected).max())


class AnnouncedWork:
    """Tier 2's one answer from its two records: the in-flight ledger for the producers whose
    requests are tracked by id (announced with a ``request_id``, their start and finish
    reported), the announced demand rate (:class:`models.tier2.announced.AnnouncedDemand`) for
    the others. Both are in demand per second (busy seconds per second for run times), so one
    ``tier2_load_per_demand`` scales either."""

    def __init__(self, demand, inflight: InFlight) -> None:
        self.demand = demand
        self.inflight = inflight

    def add(self, now: float, items) -> int:
        """Record predicted demand ``(producer_id, point, lower, upper)`` announced at ``now``
        (:meth:`models.tier2.announced.AnnouncedDemand.add`)."""
        return self.demand.add(now, items)

    def predict(self, windows_s: Mapping[str, float], scales: Mapping[str, float],
                now: float) -> dict[str, TierPrediction]:
        out = self.demand.predict(windows_s, scales, now)
        tracked = set(self.inflight.producers())
        out.update(self.inflight.predict(
            windows_s, {p: s for p, s in scales.items() if p in tracked}, now))
        return out
