"""Online interval recalibration: Tier 2's 80 % interval kept at 80 % as requests finish.

The intent model's interval is split-conformal (:mod:`models.tier2.intent`): calibrated on
windows of the training period and then fixed until the next fit. Under drift the requests that
follow a fit are not the ones it was calibrated on, and the interval covers more or less than
it should until the next fit. Each finished request says by how much its interval missed, so
the calibration can follow: per calibration key (the consumer group and request type whose
offset the interval used), the score of each outcome against the interval **as calibrated** is

    s = max(log1p(lower) - log1p(y), log1p(y) - log1p(upper))

(negative inside the interval, the CQR score of the intent module), and once a key has
``min_outcomes`` of them the interval is widened on each side, in log1p space, by the
split-conformal quantile of its last ``window`` scores: the ``ceil((n + 1) x 0.8)``-th smallest
(narrowed where it is negative). This is split-conformal calibration on the most recent
finished requests instead of the training period's windows: valid while the last ``window``
requests resemble the next ones, and it follows a drift within about ``window`` outcomes.

Why a window rather than quantile tracking (Angelopoulos, Candès and Tibshirani 2023: widen by a
step on each miss, narrow on each hit). Tracking feeds each outcome back into the width it then
serves, and outcomes arrive late: a request's outcome is known when it finishes, and every
request served meanwhile was served the old width. On the Azure LLM trace (about 90 requests
within an outcome's delay) tracking with a step of 0.05 log units swung the median width from
26 to 66 tokens for a lower coverage (79.3 % against 80.7 %). Scores against the calibrated
interval do not depend on what was served, so late outcomes cannot make the width oscillate.
``window`` (500: the 80 % quantile of 500 scores has a coverage standard deviation of about
1.8 points) and ``min_outcomes`` (100, the intent module's ``MIN_GROUP``) are fixed a priori.

An outcome counts only once it is known (a run time when the request finishes), so a request is
widened by what finished before it arrived: no outcome from its future.

>>> calibration = OnlineCalibration(min_outcomes=5)
>>> for y in (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 12.0, 30.0):  # two of nine above [2, 10]
...     calibration.update("1|train", y, 2.0, 10.0)
>>> round(calibration.delta("1|train"), 3), calibration.delta("0|train")  # 0: no outcome yet
(0.167, 0.0)
>>> [round(v, 2) for v in widen(4.0, 2.0, 10.0, calibration.delta("1|train"))]
[4.0, 1.54, 12.0]
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Iterable

WINDOW = 500  # the last finished requests of a key that set its width
MIN_OUTCOMES = 100  # a key's width follows its outcomes from this many on


def widen(point: float, lower: float, upper: float, delta: float) -> tuple[float, float, float]:
    """``(point, lower, upper)`` with the interval moved ``delta`` outwards on each side in
    log1p space (inwards when negative, never past the point, never below 0)."""
    if delta == 0.0:
        return float(point), float(lower), float(upper)
    low = min(point, math.expm1(math.log1p(max(lower, 0.0)) - delta))
    high = max(point, math.expm1(math.log1p(max(upper, 0.0)) + delta))
    return float(point), max(float(low), 0.0), float(high)


def score(actual: float, lower: float, upper: float) -> float:
    """How far ``actual`` lies outside ``[lower, upper]`` in log1p space (negative: inside)."""
    value = math.log1p(max(actual, 0.0))
    return max(math.log1p(max(lower, 0.0)) - value, value - math.log1p(max(upper, 0.0)))


class OnlineCalibration:
    """Per calibration key, how far the interval is widened now (see the module docstring).

    Thread-safe: the service updates it as requests finish and reads it as new ones arrive."""

    def __init__(self, coverage: float = 0.8, window: int = WINDOW,
                 min_outcomes: int = MIN_OUTCOMES) -> None:
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage must be in (0, 1), got {coverage}")
        if not 1 <= min_outcomes <= window:
            raise ValueError(f"need 1 <= min_outcomes <= window, got {min_outcomes}, {window}")
        self.coverage = coverage
        self.window = window
        self.min_outcomes = min_outcomes
        self._scores: dict[str, deque[float]] = {}  # per key, the last ``window``, in order
        self._ranked: dict[str, list[float]] = {}
        self._delta: dict[str, float] = {}
        self._outcomes: dict[str, list[int]] = {}  # key -> [inside, missed] as served
        self._lock = threading.Lock()

    def delta(self, key: str) -> float:
        return self._delta.get(key, 0.0)

    def update(self, key: str, actual: float, lower: float, upper: float,
               served: tuple[float, float] | None = None) -> None:
        """One outcome: ``actual`` against the interval as calibrated (``lower``, ``upper``);
        ``served``, the bounds it was served, counts whether it missed (default: the same)."""
        value = score(actual, lower, upper)
        low, high = served if served is not None else (lower, upper)
        missed = not (low <= actual <= high)
        with self._lock:
            scores = self._scores.setdefault(key, deque())
            ranked = self._ranked.setdefault(key, [])  # the same scores, kept sorted
            if len(scores) == self.window:
                del ranked[bisect.bisect_left(ranked, scores.popleft())]
            scores.append(value)
            bisect.insort(ranked, value)
            counts = self._outcomes.setdefault(key, [0, 0])
            counts[int(missed)] += 1
            n = len(ranked)
            if n >= self.min_outcomes:
                k = min(n, math.ceil((n + 1) * self.coverage - 1e-9))
                self._delta[key] = ranked[k - 1]

    def outcomes(self) -> dict[str, dict[str, float]]:
        """Per key: outcomes seen, the share inside the interval served, the widening now."""
        with self._lock:
            return {key: {"outcomes": inside + missed, "coverage": inside / (inside + missed),
                          "delta": self._delta.get(key, 0.0)}
                    for key, (inside, missed) in sorted(self._outcomes.items())}


def recalibrated_intervals(arrivals: Iterable[float], known: Iterable[float],
                           keys: Iterable[str], actual: Iterable[float], point: Iterable[float],
                           lower: Iterable[float], upper: Iterable[float],
                           calibration: OnlineCalibration | None = None
                           ) -> tuple[list[float], list[float]]:
    """The intervals a recalibrating service would have served, requests in arrival order: each
    widened by the outcomes known (``known``, a time on the arrivals' clock) strictly before it
    arrived. Returns the served lower and upper bounds, in the input order.

    With two outcomes needed, the third request (at 12 s) is widened by the first two, known at
    5 and 11 s; the second (at 10 s) is not, as only one was known then:

    >>> lo, hi = recalibrated_intervals([0, 10, 12], [5, 11, 30], ["k"] * 3, [30, 12, 1],
    ...                                 [4, 4, 4], [2, 2, 2], [10, 10, 10],
    ...                                 OnlineCalibration(min_outcomes=2))
    >>> [round(v, 2) for v in hi]
    [10.0, 10.0, 30.0]
    """
    calibration = calibration or OnlineCalibration()
    rows = [(a, max(k, a), *rest) for a, k, *rest in
            zip(arrivals, known, keys, actual, point, lower, upper, strict=True)]
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    reveal = sorted(range(len(rows)), key=lambda i: rows[i][1])
    served_lo, served_hi = [0.0] * len(rows), [0.0] * len(rows)
    told = 0
    for i in order:
        arrival, _, key, _, p, lo, hi = rows[i]
        # known strictly before this arrival, so it arrived before it too: already served
        while told < len(reveal) and rows[reveal[told]][1] < arrival:
            j = reveal[told]
            _, _, key_j, y_j, _, lo_j, hi_j = rows[j]
            calibration.update(key_j, y_j, lo_j, hi_j, (served_lo[j], served_hi[j]))
            told += 1
        _, served_lo[i], served_hi[i] = widen(p, lo, hi, calibration.delta(key))
    return served_lo, served_hi
