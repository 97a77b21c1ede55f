"""Streaming anomaly detectors for producer metrics (load, latency, CPU).

Every detector sees one sample at a time and returns, *before* learning from it, an anomaly score
in ``[0, 1]`` (higher = more surprising); alert thresholds are calibrated on past scores
(:func:`calibrate_threshold`), never on labels. Every window is a duration turned into samples
with the series' sampling interval (``interval_s``), never a sample count fixed for 5 minutes.

* :class:`~monitoring.knncad.KNNCADDetector` (``leadtime``): conformal k-nearest-neighbour
  detector on lagged windows (KNN-CAD, Burnaev & Ishimtsev 2016; NAB's ``knncad``) with NAB's
  rest period and HTM's "spatial" novelty rule; see :mod:`monitoring.knncad`.
* :class:`ResidualDetector` (``residual``, leadtime's previous detector): forecast-residual
  detector. An online forecaster (an exponentially weighted level plus, once enough history
  exists, a seasonal-naive term) predicts each sample; the absolute residual is scaled by its own
  running mean, and the *anomaly likelihood* of Numenta's NAB detectors turns the recent average
  of those scaled residuals into a tail probability against their longer history.
* :class:`RiverDetector` (``hst``): River's ``HalfSpaceTrees`` behind a ``MinMaxScaler`` (the
  River documentation's recipe), its window one day of samples.
* :class:`ZScoreDetector` (``zscore``): the rolling z-score baseline over one day of samples.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from monitoring.knncad import KNNCADDetector, samples_in

DAY_S = 86400.0


class Detector(Protocol):
    """Score a sample against the past, then learn it."""

    name: str

    def score_learn(self, value: float) -> float: ...


def _tail_score(z: float) -> float:
    """Two-sided normal mass within |z|: 0 for z=0, towards 1 for large |z|."""
    return math.erf(abs(z) / math.sqrt(2.0))


def _log_likelihood(z: float, decades: float = 10.0) -> float:
    """NAB's log-scaled likelihood: ``-log10(upper tail of z) / 10``, clipped to [0, 1].

    It keeps resolution where plain probabilities saturate at 1 (0.5 at a 1e-5 tail, 1 at 1e-10).
    """
    if z <= 0:
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return min(1.0, -math.log10(max(tail, 1e-300)) / decades)


@dataclass
class ZScoreDetector:
    """Rolling z-score of the sample against the samples of the last ``window_s`` seconds."""

    interval_s: float = 300.0  # sampling interval of the series, seconds
    window_s: float = DAY_S
    min_periods: int = 12
    name: str = "zscore"
    window: int = field(init=False)
    _buffer: deque = field(default_factory=deque, init=False, repr=False)
    _sum: float = field(default=0.0, init=False)
    _sumsq: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.window = samples_in(self.window_s, self.interval_s, self.min_periods)

    def score_learn(self, value: float) -> float:
        if not math.isfinite(value):
            return 0.0
        n = len(self._buffer)
        score = 0.0
        if n >= self.min_periods:
            mean = self._sum / n
            var = max(self._sumsq / n - mean * mean, 0.0)
            std = math.sqrt(var)
            score = _tail_score((value - mean) / std) if std > 1e-12 else (
                0.0 if abs(value - mean) < 1e-12 else 1.0)
        self._buffer.append(value)
        self._sum += value
        self._sumsq += value * value
        if len(self._buffer) > self.window:
            old = self._buffer.popleft()
            self._sum -= old
            self._sumsq -= old * old
        return score


@dataclass
class RiverDetector:
    """River's ``HalfSpaceTrees`` on the min-max scaled value, its window ``window_s`` seconds.

    ``window_s=None`` keeps River's default window of 250 samples.
    """

    interval_s: float = 300.0  # sampling interval of the series, seconds
    window_s: float | None = DAY_S
    seed: int = 42
    name: str = "hst"
    _model: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from river import anomaly, compose, preprocessing

        kwargs = {} if self.window_s is None else {
            "window_size": samples_in(self.window_s, self.interval_s, 2)}
        self._model = compose.Pipeline(
            preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=self.seed, **kwargs)
        )

    def score_learn(self, value: float) -> float:
        if not math.isfinite(value):
            return 0.0
        x = {"value": float(value)}
        score = float(self._model.score_one(x))
        self._model.learn_one(x)
        return min(max(score, 0.0), 1.0)


@dataclass
class ResidualDetector:
    """Forecast-residual detector with NAB's anomaly likelihood on the residuals.

    ``season`` is the seasonal period in samples (0 turns the seasonal term off; ``None``, the
    default: one day at the sampling interval ``interval_s``). The forecast is ``level`` until a season of history exists, then the
    average of ``level`` and the value one season ago (shifted by the level change since then).
    """

    season: int | None = None
    interval_s: float = 300.0
    alpha: float = 0.3  # level smoothing
    scale_alpha: float = 0.01  # smoothing of the mean absolute residual
    short: int = 6  # samples averaged for the "recent" surprise
    history: int = 2000  # samples of surprise history the likelihood compares against
    warmup: int = 30
    log_surprise: bool = False  # log1p of the scaled residual instead of the ratio
    tail_decades: float = 10.0
    # alert floor fixed a priori: NAB's published anomaly-likelihood threshold 1 - 1e-5 (tail 1e-5)
    min_threshold: float = 0.5
    name: str = "residual"
    _level: float | None = field(default=None, init=False)
    _scale: float | None = field(default=None, init=False)
    _past: deque = field(default_factory=deque, init=False, repr=False)
    _levels: deque = field(default_factory=deque, init=False, repr=False)
    _raw: deque = field(default_factory=deque, init=False, repr=False)
    _recent: deque = field(default_factory=deque, init=False, repr=False)
    _n: int = field(default=0, init=False)
    _sum: float = field(default=0.0, init=False)
    _sumsq: float = field(default=0.0, init=False)
    last_forecast: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.season is None:
            self.season = season_for(self.interval_s)

    def forecast(self) -> float | None:
        """The prediction for the next sample (None before the first one)."""
        if self._level is None:
            return None
        if self.season and len(self._past) >= self.season:
            seasonal = self._past[0] + (self._level - self._levels[0])
            return 0.5 * (self._level + seasonal)
        return self._level

    def score_learn(self, value: float) -> float:
        if not math.isfinite(value):
            return 0.0
        predicted = self.forecast()
        self.last_forecast = predicted
        score = 0.0
        if predicted is not None:
            residual = abs(value - predicted)
            if self._scale is None:
                self._scale = residual
            ratio = residual / max(self._scale, 1e-9, 1e-6 * abs(value))
            raw = math.log1p(ratio) if self.log_surprise else ratio
            self._scale += self.scale_alpha * (min(residual, 10 * self._scale + 1e-9) - self._scale)
            score = self._likelihood(raw)
        self._learn(value)
        return score

    def _likelihood(self, raw: float) -> float:
        """Tail probability of the recent mean surprise against the surprise history."""
        self._recent.append(raw)
        if len(self._recent) > self.short:
            self._recent.popleft()
        score = 0.0
        n = len(self._raw)
        if n >= self.warmup:
            mean = self._sum / n
            std = math.sqrt(max(self._sumsq / n - mean * mean, 0.0))
            recent = sum(self._recent) / len(self._recent)
            std = max(std, 1e-3 * max(mean, 1e-9))
            z = (recent - mean) / std
            score = _log_likelihood(z, self.tail_decades)
        self._raw.append(raw)
        self._sum += raw
        self._sumsq += raw * raw
        if len(self._raw) > self.history:
            old = self._raw.popleft()
            self._sum -= old
            self._sumsq -= old * old
        return score

    def _learn(self, value: float) -> None:
        self._n += 1
        self._level = value if self._level is None else self._level + self.alpha * (value - self._level)
        if self.season:
            self._past.append(value)
            self._levels.append(self._level)
            if len(self._past) > self.season:
                self._past.popleft()
                self._levels.popleft()


DETECTORS = {"leadtime": KNNCADDetector, "zscore": ZScoreDetector, "hst": RiverDetector,
             "residual": ResidualDetector}


def make_detector(name: str, **kwargs) -> Detector:
    """A fresh detector by name: ``leadtime`` (KNN-CAD), ``zscore``, ``hst`` or ``residual``.

    Every detector takes ``interval_s``, the series' sampling interval in seconds, from which it
    derives its windows.
    """
    try:
        return DETECTORS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}") from None


def season_for(step_seconds: float, period_s: float = DAY_S) -> int:
    """Samples in one seasonal period (a day) at this sampling step (0 when under 4 samples)."""
    per_period = round(period_s / step_seconds) if step_seconds > 0 else 0
    return per_period if per_period >= 4 else 0


def interval_of(index, head: int = 20) -> float:
    """The sampling interval in seconds: the median step of the series' first ``head`` rows.

    Only the start of the stream is read (what a live detector knows when it starts).
    """
    steps = np.diff(np.asarray(index[: head + 1], dtype="datetime64[ns]").astype(np.int64))
    steps = steps[steps > 0]
    if not len(steps):
        raise ValueError("the sampling interval needs at least two increasing timestamps")
    return float(np.median(steps)) / 1e9


def calibrate_threshold(scores: np.ndarray, margin: float = 0.0) -> float:
    """Alert threshold from scores of a calibration stretch: its maximum (plus ``margin``).

    The calibration stretch is past data believed normal (e.g. NAB's probationary period); an
    alert then means "more surprising than anything seen while calibrating".
    """
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return 1.0
    return float(min(1.0, finite.max() + margin))
