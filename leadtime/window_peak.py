"""The window peak: the question every sizing answer is calibrated against, and its calibration.

A decision at ``t0`` must carry the load of the window ``[t0, t0 + window]``, the window being
the spin-up lead time plus one decision interval (:attr:`leadtime.engine.ProducerConfig.window_s`):
instances it removes go at once, those it requests serve from one lead time on, and the next
decision's only from one interval later. A load sample is stamped when it is known, at the end
of the interval it covers (from the previous sample's stamp to its own), so the window's **peak**
is the largest sample whose interval overlaps it: those stamped after ``t0`` up to and including
the first stamped at or after ``t0 + window``, known when that one arrives. At one sample a
minute and a 6-minute window that is six samples; at 30 minutes it is the two samples covering
the next hour, so the peak is defined whether the interval is finer or coarser than the lead.

Two answers are calibrated against that peak, with the same pieces: the sizing's candidates
(:mod:`loop.sizing`) and Tier 3's nowcast bases (:mod:`models.tier3.nowcast`).

* :class:`OpenWindows` closes windows as samples arrive, one at a time;
* :func:`window_bounds` is the same rule for a batch of windows (recalibration from the log);
* :func:`ratio_table` calibrates a base value (a candidate, a level) against the peaks: per
  quintile of the base, the ``q`` quantiles of ``peak / base`` (split-conformal on a ratio).
  Relative noise shrinks as load grows (counts are roughly Poisson), so one ratio distribution
  for every level would over-provision at the peaks and under-provision at night. A quintile
  with too few windows takes the overall quantile.
"""

from __future__ import annotations

import operator
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from leadtime.quantiles import linear_quantiles

T = TypeVar("T")


class OpenWindows(Generic[T]):
    """Windows ``[t0, t0 + length_s]`` opened at decision times, each carrying an item, and
    closed by the samples that cover them (the module's rule). With ``past_end``, a window
    runs on to the first sample stamped strictly after its end, the first load that instances
    ready at the end serve (Tier 3's window of the lead time).

    Windows of 120 s decided at 0 and 60 s, samples a minute apart:

    >>> windows = OpenWindows(120.0)
    >>> windows.open(0.0, "a"), windows.open(60.0, "b"), windows.open(60.0, "again")
    (True, True, False)
    >>> windows.observe(60.0, 30.0), windows.observe(120.0, 20.0), windows.observe(180.0, 5.0)
    ([], [('a', 30.0)], [('b', 20.0)])

    Sampled every 30 minutes, the one sample covering a window closes it:

    >>> windows = OpenWindows(120.0)
    >>> _ = windows.open(0.0, "a")
    >>> windows.observe(1800.0, 25.0)
    [('a', 25.0)]

    Past the end, the sample stamped at 120 s does not close the 120-s window; the next does:

    >>> windows = OpenWindows(120.0, past_end=True)
    >>> _ = windows.open(0.0, "a")
    >>> windows.observe(60.0, 30.0), windows.observe(120.0, 20.0), windows.observe(180.0, 5.0)
    ([], [], [('a', 30.0)])
    """

    def __init__(self, length_s: float, past_end: bool = False) -> None:
        self.length_s = float(length_s)
        self._closes = operator.lt if past_end else operator.le  # (window end, sample stamp)
        self.loads: deque[tuple[float, float]] = deque()  # (at, load) an open window needs
        self.pending: deque[tuple[float, T]] = deque()  # (t0, item), oldest first

    def __len__(self) -> int:
        return len(self.pending)

    def newest(self) -> tuple[float, T] | None:
        """The window opened last, ``(t0, item)``; None when none is open."""
        return self.pending[-1] if self.pending else None

    def open(self, t0: float, item: T) -> bool:
        """Open the window of a decision at ``t0``; refused (False) unless later than the
        newest open one."""
        if self.pending and t0 <= self.pending[-1][0]:
            return False
        self.pending.append((t0, item))
        return True

    def observe(self, at: float, load: float) -> list[tuple[T, float]]:
        """A finite load sample stamped ``at``: the windows it closes, with their peaks, oldest
        first. A sample not newer than the last is ignored."""
        loads = self.loads
        if loads and at <= loads[-1][0]:
            return []
        loads.append((at, load))
        closed = []
        pending = self.pending
        while pending and self._closes(pending[0][0] + self.length_s, at):  # ``at`` covers it
            t0, item = pending.popleft()
            closed.append((item, max(v for s, v in loads if s > t0)))
        first_open = pending[0][0] if pending else at
        while len(loads) > 1 and loads[0][0] <= first_open:  # no open window needs them
            loads.popleft()
        return closed


def window_bounds(at: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Per window ``[start, start + length]``, the slice ``at[first:last]`` of the samples whose
    intervals overlap it (sorted stamps ``at``; the module's rule), and ``last == 0`` when the
    window is not over yet (no sample stamped at or after its end).

    >>> at = np.array([1800.0, 3600.0, 5400.0])  # half-hourly samples, a 5-minute window
    >>> window_bounds(at, np.array([0.0, 3600.0, 5400.0]), np.array([300.0, 300.0, 300.0]))
    (array([0, 2, 3]), array([1, 3, 0]))
    """
    first = np.searchsorted(at, start, side="right")
    covers_end = np.searchsorted(at, start + length, side="left")  # the first at or after it
    last = np.where(covers_end < at.size, covers_end + 1, 0)
    return first, last


@dataclass(frozen=True)
class RatioTable:
    """A base's calibration against window peaks, at each of its quantiles ``q``.

    ``edges`` holds the quintile edges of the base, one row for every ``q`` or one row per
    ``q`` (a base whose value differs by quantile, such as a sample read at each); ``factors``
    the ``q`` quantile of ``peak / base`` in each quintile; ``overall`` the same over every
    window.
    """

    edges: np.ndarray  # (1 or len(q), buckets - 1)
    overall: np.ndarray  # (len(q),)
    factors: np.ndarray  # (len(q), buckets)

    def factor(self, base: float | np.ndarray) -> np.ndarray:
        """The factor at each quantile for a base value (one for all, or one per quantile):
        ``base x factor`` is the window peak's calibrated quantile."""
        if np.ndim(base) == 0 and self.edges.shape[0] == 1:  # one value, one row of edges
            return self.factors[:, int(np.searchsorted(self.edges[0], base))]
        value = base if isinstance(base, np.ndarray) and base.shape == self.overall.shape \
            else np.broadcast_to(np.asarray(base, dtype=float), self.overall.shape)
        bucket = (self.edges < value[:, None]).sum(axis=1)  # per quantile, searchsorted left
        return self.factors[np.arange(len(bucket)), bucket]


def ratio_table(base: np.ndarray, peaks: np.ndarray, q: np.ndarray, buckets: int = 5,
                min_per_bucket: int = 30) -> tuple[RatioTable, np.ndarray]:
    """Calibrate a base against the peaks of the same windows: per quintile of the base (its
    own edges, numpy's linear quantiles), the ``q`` quantiles of ``peak / base`` (numpy's
    "higher" method: an observed ratio, never one between two); a quintile of fewer than
    ``min_per_bucket`` windows takes the overall quantile. ``base`` is one value a window
    (``(n,)`` or ``(n, 1)``) or one per quantile (``(n, len(q))``), positive and finite.

    Returns the table and the calibrated peaks of the windows themselves (``(n, len(q))``, base
    x factor), what an in-sample loss is scored on.

    Ten windows, their base 10 or 100, their peaks 1 to 3 times it; the high quintiles' ratios
    are narrower:

    >>> base = np.array([10.0] * 5 + [100.0] * 5)
    >>> peaks = base * np.array([1.0, 1.5, 2.0, 2.5, 3.0, 1.0, 1.1, 1.2, 1.3, 1.4])
    >>> table, calibrated = ratio_table(base, peaks, np.array([0.5, 0.9]), min_per_bucket=2)
    >>> table.factor(10.0).tolist(), table.factor(100.0).tolist()
    ([2.0, 3.0], [1.2, 1.4])
    """
    q = np.asarray(q, dtype=float)
    base = np.asarray(base, dtype=float)
    if base.ndim == 1:
        base = base[:, None]
    edges = linear_quantiles(base, np.linspace(0, 1, buckets + 1)[1:-1]).T  # (width, b - 1)
    bucket = np.zeros(base.shape, dtype=np.intp)  # (n, width): edges under it, searchsorted left
    for edge in edges.T:
        bucket += edge < base
    overall, factors = _bucket_quantiles(peaks[:, None] / base, bucket, q, buckets,
                                         min_per_bucket)
    calibrated = factors[np.arange(len(q))[None, :], bucket] * base  # a one-column base broadcasts
    return RatioTable(edges, overall, factors), calibrated


def _bucket_quantiles(ratio: np.ndarray, bucket: np.ndarray, q: np.ndarray, buckets: int,
                      min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column ``g`` of ``ratio`` (windows, grid): its ``q[g]`` quantile overall, and per
    bucket ``0 .. buckets - 1`` of ``bucket`` (same shape) over the bucket's members, numpy's
    "higher" method; a bucket with fewer than ``min_size`` members takes the overall one. Two
    sorts for all columns (the second a radix sort of small bucket numbers), no loop over
    windows. One column answers every ``q`` (a base whose value is the same at every
    quantile: a tier's upper bound), sorted once.

    >>> ratio = np.array([[1.0], [5.0], [2.0], [9.0], [3.0]])
    >>> _bucket_quantiles(ratio, np.array([[0], [1], [0], [1], [0]]), np.array([0.5]), 3, 2)
    (array([3.]), array([[2., 9., 3.]]))
    """
    n, width = ratio.shape
    rows = np.arange(width)
    read = rows if width == len(q) else np.zeros(len(q), dtype=np.intp)  # the row of each q
    by_row, bucket = np.ascontiguousarray(ratio.T), np.ascontiguousarray(bucket.T)  # row sorts
    order = np.argsort(by_row, axis=1)
    ranked = np.take_along_axis(by_row, order, axis=1)
    overall = ranked[read, np.ceil(q * (n - 1) - 1e-12).astype(int)]
    # within each row, grouped by bucket, ascending within a bucket (a stable sort keeps it)
    small = np.take_along_axis(bucket, order, axis=1).astype(np.int8 if buckets <= 127 else np.intp)
    grouped = np.take_along_axis(ranked, np.argsort(small, axis=1, kind="stable"), axis=1)
    counts = np.bincount((bucket + rows[:, None] * buckets).ravel(),
                         minlength=width * buckets).reshape(width, buckets)[read]  # (grid, buckets)
    starts = np.cumsum(counts, axis=1) - counts
    at = starts + np.ceil(q[:, None] * np.maximum(counts - 1, 0) - 1e-12).astype(int)
    picked = grouped[read[:, None], np.minimum(at, n - 1)]
    return overall, np.where(counts >= min_size, picked, overall[:, None])
