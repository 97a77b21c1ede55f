"""``crane_ehpa``: Crane's Effective HPA with its DSP predictor, replayed on the load trace.

Crane (gocrane/crane) predicts a workload's metric from its own periodicity and hands the
prediction to a plain Kubernetes HPA as one more metric, so the HPA scales on whichever of the
current and the predicted load asks for more. It is the closest open-source peer of ``leadtime``
(a forecast in front of the HPA), so it is modelled as Crane does it, from its source:

* ``pkg/prediction/dsp/prediction.go`` (the version with ``queryInterval = 12h``): every 12 h
  query 7 days + 1 h of 1-minute history, pre-process it (``preProcessTimeSeries``: drop
  everything before a gap of more than an hour, fill shorter gaps linearly, keep whole days),
  test for a daily cycle, then for a weekly one; if periodic, pick the estimator with the smallest
  prediction error on the last cycle (``bestEstimator``) and store its estimate of the next cycle.
* ``signal.go`` / ``frequency_spectrum.go``: ``IsPeriodic`` (:func:`is_periodic`).
* ``estimators.go`` / ``config.go``: the FFT and max-value estimators; by default the eight FFT
  estimators of :data:`DEFAULT_ESTIMATORS` (no max-value one: a DSP spec that lists estimators
  replaces the defaults, ``makeInternalConfig``, as ``estimators=`` does here);
  ``pkg/prediction/accuracy/accuracy.go``: the error that chooses between them.
* ``pkg/controller/timeseriesprediction/status.go``: the TimeSeriesPrediction status holds
  ``[now, now + 2 W]`` of the prediction (``W = predictionWindowSeconds``) and is refreshed when it
  no longer reaches ``now + W``; it is ready only when it does.
* ``pkg/metricprovider/external_metric_provider.go``: the ``crane...`` external metric is the
  largest predicted sample in ``[now, now + W]``.
* ``pkg/controller/ehpa/hpa.go``: the EHPA adds that metric to the HPA as an External metric with
  the original metric's per-pod target as ``AverageValue``, only while the prediction is ready;
  Kubernetes' ``GetExternalPerPodMetricReplicas`` turns it into replicas
  (:func:`external_per_pod_replicas`), the HPA takes the largest proposal over its metrics and
  stabilises it as usual (:class:`~simulation.policies.HPA`, reused, not copied).

Simplifications and mapping choices (all against the sources above):

* **Time base**: Crane reads a 1-minute metric. A 1-minute trace is used as is; a coarser one is
  *held* (each minute of an interval carries the interval's load, what a 1-minute Prometheus
  range query returns for a metric that changes once per interval); a finer one is averaged per
  minute. Values stay in the trace's unit (load per trace interval), so the predicted and the
  current metric compare directly. A sample is stamped at the end of its minute (the Prometheus
  rate convention), so the metric window ``[now, now + W]`` reads minutes ``now - 1 .. now + W - 1``.
* **Gaps**: a gap (NaN) is a missing sample, handled as ``preProcessTimeSeries`` does; Prometheus'
  5-minute look-back (which would repeat the last value over short gaps) is not modelled.
* **Periodicity**: :func:`is_periodic` is the closed form of ``IsPeriodic`` (see there); ties,
  which Go's unstable sort leaves arbitrary, count as not periodic. As in Crane, the weekly check
  needs two whole weeks of history, so with the default 7-day history it can never pass; give
  ``history_s=14 * 86400`` (the DSP ``historyLength``) to enable it. White noise passes the daily
  check about one time in seven (the daily line only has to beat the six slower ones; 17 % of
  300 seeds) and, with two weeks of history, the weekly one about one time in two (53 %), as in
  Crane; the estimate of a noise cycle is then used.
* **Version**: newer Crane (``prediction.go`` at dcc7fe4) also tests an hourly cycle first, keeps
  whole hours and takes the refresh interval from the model config; not modelled.
* **Refresh**: the first DSP run is at the policy's first decision (the EHPA is created at the
  hand-over), then every ``refresh_s`` (the 12 h ticker). A run that finds no cycle keeps the
  previous prediction (Crane only overwrites its stored signal), which serves while it still
  covers the window, then the HPA falls back to the current metric only.
* **Controllers**: the EHPA adds or drops the metric as soon as the prediction's readiness changes
  (reconcile delays, and the moment when the HPA still lists a failing metric and so refuses to
  scale down, are not modelled); the TimeSeriesPrediction status is checked at every decision.
* **Metric value**: Crane's adapter truncates the value to an integer of the metric's unit and
  parses it as float32; the trace's unit is arbitrary, so neither is modelled.
* **HPA**: as :class:`~simulation.policies.HPA` (one decision per interval stands for the syncs in
  it); ``statusReplicas`` = ready + starting. The older ``crane_pod_cpu_usage`` Pods metric
  (``custom_metric_provider.go``: predicted peak / available pods, through
  ``calcPlainMetricReplicas``) is available as ``predicted_metric_type="pods"``.
* Not modelled: cron scaling, the Preview strategy (Substitute), several series per query.

Example: a clean daily cycle is periodic, the 7-day history cannot show a weekly one:

>>> minutes = np.arange(7 * 1440)
>>> daily = 100 + 50 * np.sin(2 * np.pi * minutes / 1440)
>>> is_periodic(daily, 1440), is_periodic(daily, 7 * 1440)
(True, False)

The policy on a 9-day daily trace at 02:00 of day 8, with 10 instances ready: the load (145)
is within the HPA's 10 % tolerance of its target (14 per instance), so the HPA keeps 10; the
predicted peak of the next hour (165) asks for 12:

>>> import pandas as pd
>>> from simulation.config import SimConfig
>>> from simulation.policies import HPA, Observation
>>> index = pd.date_range("2024-01-01", periods=9 * 1440, freq="1min")
>>> series = pd.Series(100 + 90 * np.sin(2 * np.pi * np.arange(index.size) / 1440), index)
>>> cfg = SimConfig(interval_s=60.0, capacity_per_instance=20.0)
>>> step = 8 * 1440 + 120
>>> obs = Observation(step, step * 60.0, float(series.iloc[step - 1]), 10, 10, 0)
>>> HPA(cfg).decide(obs), CraneEHPA(cfg, series).decide(obs)
(10, 12)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from simulation.config import SimConfig
from simulation.policies import HPA, Observation, clamp, hpa_replicas

MINUTE_S = 60
HOUR_S = 3600
DAY_S = 86400
WEEK_S = 7 * DAY_S
MAX_GAP_S = 3600  # preProcessTimeSeries: a gap of more than an hour drops the samples before it
FFT_MIN_VALUE = 0.01  # estimators.go defaultFFTMinValue
MAPE_EPSILON = 1e-3  # accuracy.go: MAPE refuses actual values below this


class Estimator(Protocol):
    def estimate(
        self, signal: np.ndarray, per_cycle: int, spectrum: np.ndarray | None = None
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class FFTEstimator:
    """``fftEstimator``: drop weak high-frequency lines, read the filtered last cycle, add a margin.

    The floor is the ``max_items``-th strongest line, raised to ``low_amplitude``, lowered again to
    the ``min_items``-th strongest line; every bin under the floor whose frequency ``k / (N dt)``
    is above ``high_frequency_hz`` is zeroed. As in Go the test runs over all ``N`` bins, so the
    upper (negative-frequency) half is filtered by its aliased frequency and weak low-frequency
    lines lose their mirror: the real part of the inverse keeps half of them. Zero fields take
    Crane's defaults, as in Go (a margin of 0 becomes 0.1).
    """

    min_items: int = 3
    max_items: int = 100
    high_frequency_hz: float = 1.0 / HOUR_S
    low_amplitude: float = 1.0
    margin: float = 0.1

    def estimate(
        self, signal: np.ndarray, per_cycle: int, spectrum: np.ndarray | None = None
    ) -> np.ndarray:
        n = signal.size
        spectrum = np.fft.fft(signal) if spectrum is None else spectrum
        min_items, max_items = self.min_items or 3, self.max_items or 100
        high = self.high_frequency_hz or 1.0 / HOUR_S
        low = self.low_amplitude or 1.0
        margin = self.margin or 0.1
        amplitude = np.abs(spectrum) / n
        ranked = np.sort(amplitude[1 : n // 2])[::-1]
        if ranked.size:
            floor = ranked[max_items - 1] if ranked.size >= max_items else ranked[-1]
            floor = max(floor, low)
            if ranked.size >= min_items and ranked[min_items - 1] < floor:
                floor = ranked[min_items - 1]
            frequency = np.arange(n) / (n * MINUTE_S)
            spectrum = np.where((amplitude < floor) & (frequency > high), 0.0, spectrum)
        last = np.fft.ifft(spectrum).real[n - per_cycle :]
        return np.where(last <= 0.0, FFT_MIN_VALUE, last) * (1.0 + margin)

    def __str__(self) -> str:
        return f"fft(min_items={self.min_items}, low_amplitude={self.low_amplitude}, margin={self.margin})"


@dataclass(frozen=True)
class MaxValueEstimator:
    """``maxValueEstimator``: each minute of the next cycle is the largest of the past cycles."""

    margin: float = 0.0

    def estimate(
        self, signal: np.ndarray, per_cycle: int, spectrum: np.ndarray | None = None
    ) -> np.ndarray:
        cycles = signal.size // per_cycle
        past = signal[signal.size - cycles * per_cycle :].reshape(cycles, per_cycle)
        return past.max(axis=0) * (1.0 + self.margin)

    def __str__(self) -> str:
        return f"max_value(margin={self.margin})"


# config.go defaultEstimators (max_items and high_frequency_hz at their defaults)
DEFAULT_ESTIMATORS: tuple[FFTEstimator, ...] = tuple(
    FFTEstimator(min_items=items, low_amplitude=low, margin=margin)
    for items, low in ((3, 1.0), (50, 0.05))
    for margin in (0.01, 0.10, 0.15, 0.20)
)


def is_periodic(samples: np.ndarray, per_cycle: int) -> bool:
    """``Signal.IsPeriodic``: is the cycle's line stronger than every slower line?

    Crane keeps whole cycles (at least two), sorts the spectrum's lines (DC excluded) by amplitude
    and walks down: a line slower than the cycle means "not periodic", the cycle's own line means
    "periodic", faster lines are skipped. With ``m`` cycles the cycle's line is bin ``m`` and the
    slower ones are bins ``1 .. m-1``, hence the closed form.
    """
    cycles = samples.size // per_cycle
    if cycles < 2:
        return False
    x = samples[samples.size - cycles * per_cycle :]
    amplitude = np.abs(np.fft.rfft(x)) / x.size
    return bool(amplitude[cycles] > amplitude[1:cycles].max())


def prediction_error(actual: np.ndarray, predicted: np.ndarray) -> float:
    """``accuracy.PredictionError``: MAPE with under-prediction amplified, MAE near zero.

    An under-prediction by a fraction ``x`` costs ``-ln(1 - x) / ln(1.25)`` (0.47 for 10 %), an
    over-prediction costs ``x``; if any actual value is below 1e-3, the mean absolute error.
    """
    if actual.size != predicted.size:
        raise ValueError("actual and predicted series are not of the same length")
    if (actual < MAPE_EPSILON).any():
        return float(np.mean(np.abs(actual - predicted)))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (actual - predicted) / actual
        cost = np.where(predicted < actual, -np.log(1.0 - x) / math.log(1.25), -x)
    return float(cost.mean())


def best_estimator(
    estimators: Sequence[Estimator], signal: np.ndarray, cycles: int, per_cycle: int
) -> tuple[int | None, list[float]]:
    """``bestEstimator``: estimate the last cycle from the ones before it, keep the best.

    Returns the index of the estimator with the smallest error (the first on ties, none if no
    error is finite) and every estimator's error.
    """
    history = signal[: (cycles - 1) * per_cycle]
    actual = signal[(cycles - 1) * per_cycle :]
    spectrum = np.fft.fft(history)  # shared: every FFT estimator transforms the same history
    errors = [
        prediction_error(actual, e.estimate(history, per_cycle, spectrum)) for e in estimators
    ]
    best, smallest = None, sys.float_info.max
    for i, error in enumerate(errors):
        if error < smallest:
            best, smallest = i, error
    return best, errors


def preprocess(window: np.ndarray, unit: int = DAY_S // MINUTE_S) -> tuple[np.ndarray, int] | None:
    """``preProcessTimeSeries`` on one query's minutes (NaN = no sample).

    Returns the filled samples (whole ``unit``\\ s, the latest kept) and the index in ``window``
    of the last real sample (the prediction starts one minute after it), or None without samples.
    """
    present = np.flatnonzero(np.isfinite(window))
    if present.size == 0:
        return None
    gaps = np.flatnonzero(np.diff(present) * MINUTE_S > MAX_GAP_S)
    if gaps.size:
        present = present[gaps[-1] + 1 :]
    first, last = int(present[0]), int(present[-1])
    filled = np.interp(np.arange(first, last + 1), present, window[present])
    keep = filled.size // unit * unit
    return filled[filled.size - keep :], last


@dataclass(frozen=True)
class Forecast:
    """One DSP run: the cycle found (0: none), the estimator chosen, the next cycle per minute."""

    cycle_s: int
    estimator: int | None
    start: int  # minute index (from the trace start) of the first predicted minute
    values: np.ndarray
    samples: int = 0  # 1-minute samples after pre-processing
    errors: tuple[float, ...] = ()


def dsp_forecast(
    window: np.ndarray,
    first_minute: int,
    estimators: Sequence[Estimator] = DEFAULT_ESTIMATORS,
    cycles_s: Sequence[int] = (DAY_S, WEEK_S),
) -> Forecast:
    """``updateAggregateSignals`` for one series: the minutes ``window`` start at ``first_minute``."""
    empty = np.empty(0)
    prepared = preprocess(window)
    if prepared is None:
        return Forecast(0, None, first_minute, empty)
    samples, last = prepared
    size = samples.size
    for cycle_s in cycles_s:
        per_cycle = cycle_s // MINUTE_S
        if is_periodic(samples, per_cycle):
            break
    else:
        return Forecast(0, None, first_minute, empty, size)
    cycles = samples.size // per_cycle
    signal = samples[samples.size - cycles * per_cycle :]
    chosen, errors = best_estimator(estimators, signal, cycles, per_cycle)
    if chosen is None:
        return Forecast(cycle_s, None, first_minute, empty, size, tuple(errors))
    values = estimators[chosen].estimate(signal, per_cycle)
    return Forecast(cycle_s, chosen, first_minute + last + 1, values, size, tuple(errors))


def external_per_pod_replicas(
    status_replicas: int, usage: float, target_per_pod: float, tolerance: float = 0.1
) -> int:
    """Kubernetes ``GetExternalPerPodMetricReplicas``: an External metric with an AverageValue.

    >>> external_per_pod_replicas(4, 1000.0, 100.0)  # ceil(1000 / 100)
    10
    >>> external_per_pod_replicas(4, 420.0, 100.0)  # 420 / (100 * 4) = 1.05: within 10 %
    4
    """
    if status_replicas <= 0:
        return status_replicas  # the HPA does not act on a workload scaled to zero
    ratio = usage / (target_per_pod * status_replicas)
    if abs(1.0 - ratio) > tolerance:
        return math.ceil(usage / target_per_pod - 1e-9)
    return status_replicas


def minute_grid(values: np.ndarray, dt_s: float) -> np.ndarray:
    """The trace as Crane's 1-minute metric: as is, held (coarser traces) or averaged (finer)."""
    values = np.asarray(values, dtype=float)
    if math.isclose(dt_s, MINUTE_S):
        return values.copy()
    ratio = dt_s / MINUTE_S
    if dt_s > MINUTE_S and math.isclose(ratio, round(ratio)):
        return np.repeat(values, round(ratio))
    per_minute = MINUTE_S / dt_s
    if dt_s < MINUTE_S and math.isclose(per_minute, round(per_minute)):
        k = round(per_minute)
        blocks = values[: values.size // k * k].reshape(-1, k)
        known = np.isfinite(blocks)
        count = known.sum(axis=1)
        total = np.where(known, blocks, 0.0).sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    raise ValueError(
        f"crane_ehpa needs an interval that divides or is a multiple of 1 minute, not {dt_s}s"
    )


@dataclass(frozen=True)
class Refresh:
    """One DSP run of the policy (what Crane logs): when, the cycle found, the estimator chosen."""

    step: int
    time_s: float
    cycle_s: int  # 0: not periodic
    estimator: str | None
    samples: int  # 1-minute samples after pre-processing


class CraneEHPA:
    """Crane's EHPA: the Kubernetes HPA on the larger of the current and the predicted load.

    ``series`` is the whole trace (load per interval, regular index at ``cfg.interval``); the
    policy reads it only before the current step (the minutes already complete). The frontier knob
    is ``target_utilisation``, the HPA's target (default: ``cfg.target_utilisation``).
    """

    name = "crane_ehpa"

    def __init__(
        self,
        cfg: SimConfig,
        series: pd.Series,
        target_utilisation: float | None = None,
        prediction_window_s: float = 3600.0,
        history_s: float = 7 * DAY_S,
        refresh_s: float = 12 * HOUR_S,
        estimators: Sequence[Estimator] = DEFAULT_ESTIMATORS,
        predicted_metric_type: str = "external",
    ) -> None:
        if predicted_metric_type not in ("external", "pods"):
            raise ValueError("predicted_metric_type is 'external' (Crane today) or 'pods'")
        utilisation = cfg.target_utilisation if target_utilisation is None else target_utilisation
        self.cfg = cfg
        self.hpa = HPA(replace(cfg, target_utilisation=utilisation))
        self.target = self.hpa.target
        self.minutes = minute_grid(series.to_numpy(dtype=float), cfg.dt_s)
        self.window_s = float(prediction_window_s)
        # queryHistoryTimeSeries: [end - historyDuration - 1 h, end]
        self.history_minutes = int(history_s // MINUTE_S) + HOUR_S // MINUTE_S
        self.refresh_s = float(refresh_s)
        self.estimators = tuple(estimators)
        self.metric_type = predicted_metric_type
        self.next_refresh_s: float | None = None
        self.forecast: Forecast | None = None  # the predictor's stored signal
        self.status: tuple[int, np.ndarray] | None = None  # TimeSeriesPrediction status samples
        self.refreshes: list[Refresh] = []
        self.predictive_decisions = 0  # decisions in which the predicted metric took part

    def known_minutes(self, now_s: float) -> int:
        """Minutes complete at ``now_s`` (the history's end, exclusive)."""
        return min(self.minutes.size, math.floor(now_s / MINUTE_S + 1e-9))

    def refresh(self, step: int, now_s: float) -> Forecast:
        """One DSP run on the history before ``now_s``; a periodic result replaces the stored one."""
        end = self.known_minutes(now_s)
        start = max(0, end - self.history_minutes)
        result = dsp_forecast(self.minutes[start:end], start, self.estimators)
        name = None if result.estimator is None else str(self.estimators[result.estimator])
        self.refreshes.append(Refresh(step, now_s, result.cycle_s, name, result.samples))
        if result.values.size:
            self.forecast = result
        return result

    def _status_ready(self, horizon: int) -> bool:
        """``IsWindowInSamples``: the last status sample is stamped at or after ``now + W``."""
        if self.status is None:
            return False
        first, values = self.status
        return first + values.size >= horizon  # last minute m is stamped 60 (m + 1)

    def _query_status(self, now_s: float) -> None:
        """``syncPredictionStatus``: the stored prediction's samples stamped in [now, now + 2W]."""
        self.status = None
        if self.forecast is None:
            return
        f = self.forecast
        lo = max(math.ceil(now_s / MINUTE_S - 1e-9) - 1, f.start)
        hi = min(
            math.floor((now_s + 2 * self.window_s) / MINUTE_S + 1e-9) - 1,
            f.start + f.values.size - 1,
        )
        if hi >= lo:
            self.status = (lo, f.values[lo - f.start : hi - f.start + 1])

    def predicted_metric(self, now_s: float) -> float | None:
        """The ``crane...`` external metric: the largest predicted load stamped in [now, now + W].

        None while the prediction is not ready (the EHPA then leaves the metric out of the HPA).
        """
        horizon = math.floor((now_s + self.window_s) / MINUTE_S + 1e-9)
        if not self._status_ready(horizon):
            self._query_status(now_s)
            if not self._status_ready(horizon):
                return None
        first, values = self.status  # type: ignore[misc]
        lo = max(math.ceil(now_s / MINUTE_S - 1e-9) - 1, first)
        hi = min(horizon - 1, first + values.size - 1)
        if hi < lo:
            return None
        peak = float(values[lo - first : hi - first + 1].max())
        return peak if peak > 0 else None  # the adapter only counts samples above 0

    def predicted_replicas(self, obs: Observation, predicted: float) -> int:
        """The HPA's proposal for the predicted metric."""
        if self.metric_type == "external":
            return external_per_pod_replicas(
                obs.current, predicted, self.target, self.cfg.hpa_tolerance
            )
        if obs.ready <= 0:  # crane_pod_cpu_usage: the peak spread over the available pods
            return obs.current
        return hpa_replicas(
            current_replicas=obs.current,
            ready_with_metric=obs.ready,
            metric_per_pod=predicted / obs.ready,
            target_per_pod=self.target,
            unready=obs.starting,
            tolerance=self.cfg.hpa_tolerance,
        )

    def decide(self, obs: Observation) -> int:
        now = obs.time_s
        if self.next_refresh_s is None:
            self.next_refresh_s = now
        if now + 1e-9 >= self.next_refresh_s:
            self.refresh(obs.step, now)
            while self.next_refresh_s <= now + 1e-9:  # a ticker: ticks missed are dropped
                self.next_refresh_s += self.refresh_s
        recommendation = self.hpa.recommend(obs)
        predicted = self.predicted_metric(now)
        if predicted is not None:
            recommendation = max(recommendation, self.predicted_replicas(obs, predicted))
            self.predictive_decisions += 1
        return clamp(self.hpa.stabilise(now, obs.current, recommendation), self.cfg)
