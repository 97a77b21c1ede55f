"""Tier 3's load answer: the producer's current level, scaled by what such a level did next.

Tier 3 predicts "the current load adjusted by risk" (``docs/design.md``). The current load alone is a
poor answer for the window one spin-up lead time ahead: single samples are noisy, and the window
holds several of them. :class:`LoadNowcast` learns, online and from the past only, how the
load of the coming window relates to the current level:

* **level** at time ``t``: the mean of the load samples in ``(t - level_window_s, t]``;
* **ratio** of a past decision time ``t0``: ``max(load in [t0, t0 + lead_s]) / level(t0)``, known
  once the window has passed (the window maximum, because instances removed at ``t0`` are gone at
  once and instances requested at ``t0`` serve from ``t0 + lead_s``: the fleet must carry every
  sample in between);
* **answer**: ``level(t) x`` the median and the central ``level`` interval quantiles of the ratios
  of the last ``history_s``, taken from the ratios recorded at a *similar level* (the quintile of
  past levels ``level(t)`` falls in). Relative noise shrinks as load grows (counts are roughly
  Poisson), so one ratio distribution for all levels would over-provision at the peaks, where the
  instance-hours are, and under-provision at night.

The quantile table is refreshed every ``refit_every_s``; until ``min_ratios`` ratios are known
there is no answer (the engine renormalises over the other tiers and says so). A sample is stamped
when its value is known (the end of its metric interval); samples are expected roughly regularly,
the windows are in seconds, so irregular sampling only changes how many samples a window holds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import chain

import numpy as np

from leadtime.engine import TierPrediction


@dataclass(frozen=True)
class NowcastConfig:
    """Knobs of the load nowcast (one set for every producer and trace)."""

    lead_s: float = 300.0  # the spin-up lead time the answer is for
    level_window_s: float = 1800.0  # trailing window of the current level
    history_s: float = 7 * 86400.0  # ratios older than this are forgotten
    refit_every_s: float = 3600.0  # how often the quantile table is recomputed
    level: int = 80  # central interval, in percent
    buckets: int = 5  # level quantiles (quintiles) the ratios are conditioned on
    min_ratios: int = 100  # fewer known ratios: no answer
    min_per_bucket: int = 30  # a thinner bucket uses all ratios

    def __post_init__(self) -> None:
        if not 0 < self.level < 100:
            raise ValueError("level must be in (0, 100)")
        if self.lead_s < 0 or self.level_window_s <= 0 or self.history_s <= 0:
            raise ValueError("lead_s must be >= 0, windows positive")

    @property
    def quantiles(self) -> tuple[float, float, float]:
        tail = (1 - self.level / 100) / 2
        return tail, 0.5, 1 - tail


class LoadNowcast:
    """One producer's online level, ratio history and quantile table."""

    def __init__(self, config: NowcastConfig | None = None) -> None:
        self.config = config or NowcastConfig()
        self.samples: deque[tuple[float, float]] = deque()  # (t, value) within the level window
        self.level_sum = 0.0
        self.recent: deque[tuple[float, float]] = deque()  # (t, value) an open window needs
        self.open: deque[tuple[float, float]] = deque()  # (t0, level(t0)) awaiting their window
        self.ratios: deque[tuple[float, float, float]] = deque()  # (t0, level, ratio)
        self.edges: np.ndarray = np.empty(0)
        self.table: np.ndarray = np.empty((0, 3))  # per bucket: (low, median, high) ratio
        self.fitted_at = -math.inf
        self.last_t = -math.inf

    # ------------------------------------------------------------------ learning
    def update(self, t: float, value: float) -> bool:
        """Add the load sample at ``t`` (seconds); older-than-newest or non-finite: skipped."""
        if not math.isfinite(value) or t <= self.last_t:
            return False
        c = self.config
        self.last_t = t
        value = max(0.0, float(value))
        self.recent.append((t, value))
        # windows [t0, t0 + lead] are complete once a sample beyond them arrives (that sample is
        # the one the instances requested at t0 meet first, so it belongs to the window)
        while self.open and self.open[0][0] + c.lead_s < t:
            t0, level0 = self.open.popleft()
            peak = max(v for s, v in self.recent if s >= t0)
            if level0 > 0:
                self.ratios.append((t0, level0, peak / level0))
        while self.ratios and self.ratios[0][0] < t - c.history_s:
            self.ratios.popleft()
        self.samples.append((t, value))
        self.level_sum += value
        while self.samples and self.samples[0][0] <= t - c.level_window_s:
            self.level_sum -= self.samples.popleft()[1]
        # a decision taken now: its window starts with the next sample
        self.open.append((t + 1e-9, self.level()))
        while self.recent and self.recent[0][0] < self.open[0][0]:
            self.recent.popleft()
        if t - self.fitted_at >= c.refit_every_s:
            self.refit(t)
        return True

    def level(self) -> float:
        return self.level_sum / len(self.samples) if self.samples else math.nan

    def refit(self, now: float) -> None:
        """Recompute the per-bucket ratio quantiles from the ratios known at ``now``."""
        c = self.config
        self.fitted_at = now
        if len(self.ratios) < c.min_ratios:
            self.table = np.empty((0, 3))
            return
        n = len(self.ratios)
        data = np.fromiter(chain.from_iterable(self.ratios), float, count=3 * n).reshape(n, 3)
        levels, ratios = data[:, 1], data[:, 2]
        self.edges = np.quantile(levels, np.linspace(0, 1, c.buckets + 1)[1:-1])
        bucket = np.searchsorted(self.edges, levels)
        overall = np.quantile(ratios, c.quantiles)
        rows = []
        for b in range(c.buckets):
            mine = ratios[bucket == b]
            rows.append(np.quantile(mine, c.quantiles) if mine.size >= c.min_per_bucket else overall)
        self.table = np.array(rows)

    # ------------------------------------------------------------------ answering
    def predict(self) -> TierPrediction | None:
        """The load of the window one lead time ahead, or None while too little is known."""
        level = self.level()
        if not len(self.table) or not math.isfinite(level):
            return None
        low, mid, high = self.table[int(np.searchsorted(self.edges, level))]
        return TierPrediction(point=level * mid, lower=level * low, upper=level * high)

    @property
    def known_ratios(self) -> int:
        return len(self.ratios)
