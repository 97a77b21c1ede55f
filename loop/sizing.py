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
the window ``(t0, t0 + lead]`` has passed, its observed peak is known. Every ``refit_every_s``,
per candidate over the last ``history_s`` of windows:

* the **factor** ``k`` is the ``q`` quantile of ``peak / upper`` (split-conformal on a ratio);
* the **loss** is the pinball loss at ``q`` of ``k x upper`` against the peaks, over the mean
  peak.

The candidate with the lowest loss sizes, as ``k x`` its upper bound now. ``reactive`` is always a
candidate, so a producer whose tiers have no skill (a flash crowd, a noisy series) is sized like
a reactive autoscaler with its measured headroom: the tiers step aside. Until a candidate has
``min_windows`` windows there is no calibrated sizing, and the engine uses its uncalibrated rule
(point under the target utilisation, upper bound under the maximum).
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
    history_s: float = 3 * 86400.0  # windows older than this are forgotten
    refit_every_s: float = 3600.0
    min_windows: int = 120
    buckets: int = 5  # factors per quintile of the candidate's upper bound
    min_per_bucket: int = 30  # a thinner quintile uses the candidate's overall factor


class WindowPeakCalibrator:
    """One producer's record of candidates' upper bounds against observed window peaks.

    A window of lead 120 s decided at 0: the peak of the loads known in (0, 120] is 30, three
    times Tier 1's upper bound of 10, so Tier 1's factor is 3 (one window, ``min_windows=1``):

    >>> c = WindowPeakCalibrator(120.0, SizingConfig(quantile=0.9, min_windows=1))
    >>> c.record(0.0, {"tier1": 10.0})
    >>> for t, load in [(60.0, 30.0), (120.0, 20.0), (180.0, 5.0)]:
    ...     c.observe(t, load)
    >>> c.refit(180.0)
    >>> c.factors["tier1"]
    3.0
    """

    def __init__(self, lead_s: float, config: SizingConfig) -> None:
        self.lead_s = float(lead_s)
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
        while self.open and self.open[0][0] + self.lead_s <= at:
            t0, uppers = self.open.popleft()
            inside = [v for s, v in self.loads if t0 < s <= t0 + self.lead_s]
            if inside:
                self.closed.append((t0, uppers, max(inside)))
        first_open = self.open[0][0] if self.open else at
        while self.loads and self.loads[0][0] <= first_open - 1e-9 and len(self.loads) > 1:
            self.loads.popleft()
        horizon = at - self.config.history_s
        while self.closed and self.closed[0][0] < horizon:
            self.closed.popleft()

    def refit(self, now: float) -> None:
        """Each candidate's factor and loss over the windows known at ``now``."""
        self.fitted_at = now
        q = self.config.quantile
        columns: dict[str, tuple[list[float], list[float]]] = {}
        for _, uppers, peak in self.closed:
            for name, upper in uppers.items():
                ups, peaks = columns.setdefault(name, ([], []))
                ups.append(upper)
                peaks.append(peak)
        self.factors, self.losses, self.windows = {}, {}, {}
        self.edges, self.bucket_factors = {}, {}
        for name, (ups, peaks) in columns.items():
            if len(ups) < self.config.min_windows:
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
