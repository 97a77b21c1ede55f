"""KNN-CAD: conformal k-nearest-neighbour anomaly detection on lagged windows.

What: Burnaev & Ishimtsev (2016), "Conformalized density- and distance-based anomaly detection
in time-series data" (arXiv:1608.04585), the method behind NAB's ``knncad`` detector, written
from the paper and NAB's description of it, made fully streaming and interval-aware, plus the
"spatial" novelty rule of NAB's HTM detector (a value outside everything seen so far).
Why: its score is a conformal p-value -- the share of recent nonconformity scores the current one
exceeds -- so it is calibrated per series by construction, and one alert threshold transfers from
one family of metrics to another (leave-one-category-out on NAB, see ``docs/tiers.md``).

Each sample is embedded as the window of its last ``dim`` values. Its *nonconformity* is the sum
of the squared Mahalanobis distances (metric ``(X'X)^-1`` of the reference windows ``X``) to its
``k`` nearest reference windows. The score is the share of the last ``P`` nonconformity scores it
exceeds (above all of them, ``1 - (max / s) / P``, so the top keeps resolution). The reference
set slides: a window joins it ``P`` samples after it was scored. The windows overlap, so the
detector keeps the values they are cut from (the last ``2 P + dim``) rather than the windows:
the reference's raw windows are cut again only when the metric is refitted. A window's
squared distance to each reference window ``r`` under the metric ``M = L L'`` is
``|r L|^2 + |x L|^2 - 2 r . (L L' x)``: the first term is kept per reference window (one number
each), the last is one correlation of the reference's values with ``L L' x``, so the detector
holds ``O(P)`` numbers, not the ``P x dim`` images of its windows. After an alert (score >=
``alarm``) the detector rests for a fifth of ``P`` samples (score ``rest_score``), NAB's knncad
rule, so that one incident is one alert. A value beyond the range of everything seen before
scores 1.

Every window is a *duration*, turned into samples with the series' sampling interval:
``reference_s`` (2 days, NAB's probationary period on its 5-minute files) with a floor of
``min_reference`` samples so the statistics are defined on coarse series, ``embed_s`` (95 min,
i.e. NAB's 19 samples at 5 minutes) with a floor of ``min_dim`` samples.

>>> import math
>>> det = KNNCADDetector(interval_s=300)
>>> calm = [det.score_learn(10 + math.sin(i / 5)) for i in range(1200)]
>>> max(calm[-300:]) < det.alarm
True
>>> spike = det.score_learn(40.0)
>>> spike
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def samples_in(duration_s: float, interval_s: float, minimum: int = 1) -> int:
    """How many samples a duration spans at this sampling interval (at least ``minimum``)."""
    if not interval_s or interval_s <= 0 or not math.isfinite(interval_s):
        raise ValueError(f"sampling interval must be a positive number of seconds, not {interval_s!r}")
    return max(round(duration_s / interval_s), minimum)


@dataclass
class KNNCADDetector:
    """Conformal kNN anomaly detector (KNN-CAD) with NAB's rest period and spatial novelty."""

    interval_s: float = 300.0  # sampling interval of the series, seconds
    reference_s: float = 2 * 86400.0  # reference (training) and calibration span
    embed_s: float = 95 * 60.0  # span of the lagged window each sample is embedded in
    k: int = 27  # neighbours summed in the nonconformity measure (NAB's knncad)
    min_reference: int = 200
    min_dim: int = 3
    alarm: float = 0.9965  # NAB's knncad alert level; starts the rest period
    rest_share: float = 0.2  # rest period = this share of the reference span
    rest_score: float = 0.5
    spatial: bool = True  # a value outside the range of all past values scores 1
    name: str = "leadtime"
    dim: int = field(init=False)
    reference: int = field(init=False)
    rest: int = field(init=False)
    _values: np.ndarray = field(default=None, init=False, repr=False)  # ring: the last values
    _count: int = field(default=0, init=False)  # finite values seen; value v sits at (v-1) % len
    _joined: int = field(default=0, init=False)  # the newest window in the reference (0: none)
    _zn: np.ndarray | None = field(default=None, init=False, repr=False)  # |r L|^2 per row
    _chol: np.ndarray | None = field(default=None, init=False, repr=False)
    _scores: np.ndarray | None = field(default=None, init=False, repr=False)
    _pos_score: int = field(default=0, init=False)
    _since: int = field(default=0, init=False)
    _resting: int = field(default=0, init=False)
    _lo: float = field(default=math.inf, init=False)
    _hi: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self.dim = samples_in(self.embed_s, self.interval_s, self.min_dim)
        self.reference = samples_in(self.reference_s, self.interval_s,
                                    max(self.min_reference, 2 * self.k + 2))
        self.rest = int(self.reference * self.rest_share)
        self._values = np.zeros(2 * self.reference + self.dim)

    def __setstate__(self, state: dict) -> None:
        """Detectors pickled when they kept their windows (Tier 3 checkpoints) load into the
        ring of values: the windows overlap, so their values are the first window's and each
        later window's last, in age order."""
        state = dict(state)
        state.pop("_z", None)  # the reference's images, kept before: its norms are enough
        if "_pending" in state:
            state.update(_from_windows(state))
        self.__dict__.update(state)

    @property
    def _started(self) -> bool:
        return self._joined > 0

    def _window(self, g: int) -> np.ndarray:
        """Window ``g`` (1-based): values ``g .. g + dim - 1``."""
        return np.take(self._values, np.arange(g - 1, g - 1 + self.dim), mode="wrap")

    def _reference_windows(self) -> np.ndarray:
        """The reference set: row ``r`` holds the newest joined window ``g`` with
        ``(g - 1) % P == r`` (each window joins over the oldest)."""
        P, J = self.reference, self._joined
        first = J - (J - 1 - np.arange(P)) % P  # per row, its window
        at = first[:, None] - 1 + np.arange(self.dim)[None, :]
        return np.take(self._values, at, mode="wrap")

    @property
    def min_threshold(self) -> float:
        """The a-priori alert floor: the published KNN-CAD alert level."""
        return self.alarm

    def _fit_metric(self) -> np.ndarray:
        """Mahalanobis metric ``(X'X)^-1`` of the reference windows, as a Cholesky factor, and
        each reference window's squared norm under it; returns the windows' images (rows in
        the reference's order), which are not kept."""
        train = self._reference_windows()
        try:
            self._chol = np.linalg.cholesky(np.linalg.inv(train.T @ train))
        except np.linalg.LinAlgError:  # singular (e.g. a flat series): keep the previous metric
            if self._chol is None:
                self._chol = np.eye(self.dim)
        z = train @ self._chol
        self._zn = np.einsum("ij,ij->i", z, z)
        return z

    def _distances(self, item: np.ndarray) -> np.ndarray:
        """Squared distances under the metric from ``item`` to every reference window, in
        the windows' age order (the k nearest do not depend on it)."""
        z = item @ self._chol
        P, J = self.reference, self._joined
        # the reference is windows J - P + 1 .. J: their values, oldest first
        values = np.take(self._values, np.arange(J - P, J + self.dim - 1), mode="wrap")
        dots = np.correlate(values, self._chol @ z, "valid")  # window i . (L L' x)
        r = J % P  # window J - P + 1 + i sits in row (J + i) % P
        norms = np.concatenate((self._zn[r:], self._zn[:r]))
        return np.maximum(norms + z @ z - 2.0 * dots, 0.0)

    def _start(self) -> None:
        self._joined = self.reference  # windows 1 .. P: the first reference
        z = self._fit_metric()
        gram = z @ z.T
        d2 = np.maximum(self._zn[:, None] + self._zn[None, :] - 2.0 * gram, 0.0)
        kk = self.k + 1  # each reference window is its own nearest neighbour
        self._scores = np.partition(d2, kk, axis=1)[:, :kk].sum(axis=1)

    def score_learn(self, value: float) -> float:
        if not math.isfinite(value):
            return 0.0
        value = float(value)
        novel = (self.spatial and self._started
                 and (value > self._hi or value < self._lo))
        self._lo, self._hi = min(self._lo, value), max(self._hi, value)
        self._values[self._count % len(self._values)] = value
        self._count += 1
        if self._count < self.dim:
            return 0.0
        newest = self._count - self.dim + 1  # the window this value completes
        if not self._started:
            if newest >= self.reference:
                self._start()
            return 0.0
        score = self._conformal(self._window(newest))
        if self._resting > 0:
            self._resting -= 1
            return self.rest_score
        if novel:
            score = 1.0
        if score >= self.alarm:
            self._resting = self.rest
        return score

    def _conformal(self, item: np.ndarray) -> float:
        """Score the window against the reference set, then learn it."""
        self._since += 1
        if self._since % max(self.reference // 2, 1) == 0:
            self._fit_metric()
        d = self._distances(item)
        s = float(np.partition(d, self.k)[: self.k].sum())
        n = len(self._scores)
        top = float(self._scores.max())
        # above every calibration score: 1 - (top / s) / n keeps resolution at the very top
        score = 1.0 - top / s / n if s > top else float(np.count_nonzero(self._scores < s)) / n
        self._scores[self._pos_score] = s
        self._pos_score = (self._pos_score + 1) % n
        if self._since >= self.reference:  # the window scored P samples ago joins the reference
            g = self._joined + 1
            row = (g - 1) % self.reference
            z = self._window(g) @ self._chol
            self._zn[row] = z @ z
            self._joined = g
        return score


def _from_windows(state: dict) -> dict:
    """The ring of values and window numbers of a detector pickled with its windows: its
    reference rows (the oldest at ``_pos_train``) and the windows waiting to join, or the
    windows collected before its first reference, or its last few values."""
    P, dim = state["reference"], state["dim"]
    train = state.pop("_train", None)  # unset fields were the class's defaults
    waiting, collected = list(state.pop("_pending")), list(state.pop("_collect", ()))
    last = list(state.pop("_buf", ()))
    oldest = state.pop("_pos_train", 0)
    if train is not None:  # windows g0 .. g0 + P - 1 in the reference, the waiting after them
        windows = [train[(oldest + i) % P] for i in range(P)] + waiting
        g0 = oldest + 1 + P  # so that window g sits in row (g - 1) % P, as the rows were
        joined = g0 + P - 1
    else:
        windows, g0, joined = collected, 1, 0
    values = ([*windows[0], *(w[-1] for w in windows[1:])] if windows else last)
    ring = np.zeros(2 * P + dim)
    for i, v in enumerate(values):
        ring[(g0 - 1 + i) % len(ring)] = v
    return {"_values": ring, "_count": g0 - 1 + len(values), "_joined": joined}
