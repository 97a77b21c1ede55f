"""Sizing: the window peak to provision for, a calibrated quantile from the tier with skill.

The load score (the tiers' weighted average over current capacity) gates pre-allocation; how
many instances to hold is a different question, with a price on each side (``docs/design.md``,
"Sizing"):

* an instance held and not needed costs one instance-interval; a window whose peak exceeds the
  capacity costs a violation, priced ``engine.violation_cost`` instance-intervals;
* the newsvendor rule: provision the ``q = violation_cost / (1 + violation_cost)`` quantile of
  the window's peak (19 gives the 95th percentile).

No tier answers that quantile exactly, so it is calibrated on the loop's own record. For every
pass and every **candidate** (each tier that answered with weight, their ``combined``
prediction, and ``reactive``: the current load itself), the candidate's upper bound is kept; when
the window ``[t0, t0 + horizon]`` has passed, its observed peak is known. Every ``refit_every_s``,
per candidate over the last ``history_s`` of windows (never fewer than ``history_min_windows``):

* the **factor** ``k`` is the ``q`` quantile of ``peak / upper`` (split-conformal on a ratio);
* the **loss** is the pinball loss at ``q`` of ``k x upper`` against the peaks, over the mean
  peak.

The candidate with the lowest loss sizes, as ``k x`` its upper bound now. ``reactive`` is always a
candidate, so a producer whose tiers have no skill (a flash crowd, a noisy series) is sized like
a reactive autoscaler with its measured headroom: the tiers step aside. Until a candidate's
windows span ``min_history_s`` and number at least ``min_windows`` there is no calibrated sizing,
and the engine uses its uncalibrated rule (point under the target utilisation, upper bound under
the maximum).

**The window peak at any sampling interval.** A load sample is stamped when it is known, at the
end of the interval it covers (from the previous sample's stamp to its own). A decision at
``t0`` answers for ``[t0, t0 + horizon]``, ``horizon`` being the lead time plus the decision
interval: its instances serve from ``t0 + lead``, and the next pass's only from one interval
later, so this pass's capacity must carry the window until then. The window's peak is the
largest sample whose interval overlaps it: those stamped after ``t0`` up to and including the
first stamped at or after ``t0 + horizon``, known when that one arrives. At one sample a minute
and a 5-minute lead that is six samples; at 30 minutes it is the two samples covering the next
hour, so calibration works whether the interval is finer or coarser than the lead
(:func:`window_bounds` is the same rule for batches). Every limit is a duration, floored in
windows so that the statistics have samples to stand on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from leadtime.engine import Sizing
from monitoring.accuracy import pinball

REACTIVE = "reactive"
COMBINED = "combined"


@dataclass(frozen=True)
class SizingConfig:
    quantile: float = 0.95
    history_s: float = 3 * 86400.0  # windows older than this are forgotten ...
    history_min_windows: int = 150  # ... unless fewer than this many would be left
    refit_every_s: float = 3600.0
    min_history_s: float = 7200.0  # a candidate sizes once its windows span this long ...
    min_windows: int = 30  # ... and number at least this many
    buckets: int = 5  # factors per quintile of the candidate's upper bound
    min_per_bucket: int = 30  # a thinner quintile uses the candidate's overall factor


def window_bounds(at: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Per window ``[start, start + length]``, the slice ``at[first:last]`` of the samples whose
    intervals overlap it (sorted stamps ``at``; the rule of the module docstring), and
    ``last == 0`` when the window is not over yet (no sample stamped at or after its end).

    >>> at = np.array([1800.0, 3600.0, 5400.0])  # half-hourly samples, a 5-minute window
    >>> window_bounds(at, np.array([0.0, 3600.0, 5400.0]), np.array([300.0, 300.0, 300.0]))
    (array([0, 2, 3]), array([1, 3, 0]))
    """
    first = np.searchsorted(at, start, side="right")
    covers_end = np.searchsorted(at, start + length, side="left")  # the first at or after it
    last = np.where(covers_end < at.size, covers_end + 1, 0)
    return first, last


def sample_quantile(samples: tuple, q: float, min_size: int = 3) -> float | None:
    """A candidate offered as samples of plausible window peaks (one array per condition, e.g.
    per period: ``models.tier3.phase``), read at ``q``: the highest of the samples' ``q``
    quantiles. None when no sample holds ``min_size`` values.

    >>> round(sample_quantile((np.array([1.0, 1.0, 1.0, 5.0]), np.array([2.0, 2.0, 2.0])), 0.9), 6)
    3.8
    """
    values = [float(np.quantile(s, q)) for s in samples if len(s) >= min_size]
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return max(finite) if finite else None


class WindowPeakCalibrator:
    """One producer's record of candidates' upper bounds against observed window peaks.

    A window of 120 s decided at 0: the peak of the loads that cover it (known at 60 and 120 s)
    is 30, three times Tier 1's upper bound of 10, so Tier 1's factor is 3 (one window,
    ``min_windows=1``, no minimum span):

    >>> c = WindowPeakCalibrator(120.0, SizingConfig(quantile=0.9, min_windows=1, min_history_s=0))
    >>> c.record(0.0, {"tier1": 10.0})
    >>> for t, load in [(60.0, 30.0), (120.0, 20.0), (180.0, 5.0)]:
    ...     c.observe(t, load)
    >>> c.refit(180.0)
    >>> c.factors["tier1"]
    3.0

    The same window sampled every 30 minutes: the one sample that covers it closes it.

    >>> c = WindowPeakCalibrator(120.0, SizingConfig(quantile=0.9, min_windows=1, min_history_s=0))
    >>> c.record(0.0, {"tier1": 10.0})
    >>> c.observe(1800.0, 25.0)
    >>> c.refit(1800.0)
    >>> c.factors["tier1"]
    2.5
    """

    def __init__(self, horizon_s: float, config: SizingConfig) -> None:
        self.horizon_s = float(horizon_s)  # lead time + decision interval
        self.config = config
        self.loads: deque[tuple[float, float]] = deque()  # (at, load) an open window needs
        self.open: deque[tuple[float, dict[str, float]]] = deque()  # (t0, upper per candidate)
        self.closed: deque[tuple[float, dict[str, float], float]] = deque()  # (t0, uppers, peak)
        self.factors: dict[str, float] = {}
        self.edges: dict[str, np.ndarray] = {}
        self.bucket_factors: dict[str, np.ndarray] = {}
        self.losses: dict[str, float] = {}
        self.windows: dict[str, int] = {}
        self.fitted_at = -math.inf

    def record(self, t0: float, uppers: dict[str, float]) -> None:
        """A pass at ``t0`` and its candidates' upper bounds (finite and positive only)."""
        kept = {k: v for k, v in uppers.items() if math.isfinite(v) and v > 0}
        if kept and (not self.open or t0 > self.open[-1][0]):
            self.open.append((t0, kept))

    def observe(self, at: float, load: float) -> None:
        """A load known at ``at``; closes the windows it completes."""
        if not math.isfinite(load) or (self.loads and at <= self.loads[-1][0]):
            return
        self.loads.append((at, float(load)))
        while self.open and self.open[0][0] + self.horizon_s <= at:  # ``at`` covers its end
            t0, uppers = self.open.popleft()
            self.closed.append((t0, uppers, max(v for s, v in self.loads if s > t0)))
        first_open = self.open[0][0] if self.open else at
        while self.loads and self.loads[0][0] <= first_open and len(self.loads) > 1:
            self.loads.popleft()
        horizon = at - self.config.history_s
        floor = self.config.history_min_windows
        while len(self.closed) > floor and self.closed[0][0] < horizon:
            self.closed.popleft()

    def refit(self, now: float) -> None:
        """Each candidate's factor and loss over the windows known at ``now``."""
        self.fitted_at = now
        q = self.config.quantile
        columns: dict[str, tuple[list[float], list[float]]] = {}
        since: dict[str, float] = {}
        for t0, uppers, peak in self.closed:
            for name, upper in uppers.items():
                ups, peaks = columns.setdefault(name, ([], []))
                since.setdefault(name, t0)
                ups.append(upper)
                peaks.append(peak)
        last = self.closed[-1][0] if self.closed else -math.inf
        self.factors, self.losses, self.windows = {}, {}, {}
        self.edges, self.bucket_factors = {}, {}
        for name, (ups, peaks) in columns.items():
            if len(ups) < self.config.min_windows or last - since[name] < self.config.min_history_s:
                continue
            up, pk = np.asarray(ups), np.asarray(peaks)
            ratio = pk / up
            overall = float(np.quantile(ratio, q, method="higher"))
            edges = np.quantile(up, np.linspace(0, 1, self.config.buckets + 1)[1:-1])
            bucket = np.searchsorted(edges, up)
            factors = np.full(self.config.buckets, overall)
            for b in range(self.config.buckets):
                mine = ratio[bucket == b]
                if mine.size >= self.config.min_per_bucket:
                    factors[b] = float(np.quantile(mine, q, method="higher"))
            self.edges[name] = edges
            self.bucket_factors[name] = factors
            self.factors[name] = overall
            self.losses[name] = pinball(pk, factors[bucket] * up, q) / max(float(pk.mean()), 1e-12)
            self.windows[name] = len(ups)

    def sizing(self, now: float, uppers: dict[str, float]) -> Sizing | None:
        """The calibrated window peak for a pass at ``now``, or None while uncalibrated."""
        if now - self.fitted_at >= self.config.refit_every_s:
            self.refit(now)
        usable = [(self.losses[n], n) for n, v in uppers.items()
                  if n in self.losses and math.isfinite(v) and v > 0]
        if not usable:
            return None
        loss, name = min(usable)
        upper = uppers[name]
        factor = float(self.bucket_factors[name][int(np.searchsorted(self.edges[name], upper))])
        return Sizing(value=factor * upper, quantile=self.config.quantile, source=name,
                      factor=factor, loss=loss)
