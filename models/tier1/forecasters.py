"""Tier 1: per-producer baseline forecasters with one interface.

Every forecaster is fitted on a producer's history (a regular series, NaN for gaps) and predicts,
for any timestamps after it, a point value and 80% / 95% bounds in the producer's own load unit.

Two ideas keep this fast enough for hundreds of producers on two cores:

* **A modelling step.** Models are fitted on the series averaged to ``model_step_s`` (default
  900 s, or the native interval when it is coarser): a day is then 96 steps, not 1,440, which
  makes Prophet and MSTL fits take a second instead of minutes. The point forecast is read back
  at native timestamps by interpolating between step centres.
* **Analytic (empirical) intervals.** No uncertainty sampling: the bounds are quantiles of the
  model's residuals *at native resolution* over the last ``calibration_s`` of history, binned
  by hour of day so that busy hours get wider intervals than quiet ones. They are the errors of
  a fit made before that span (in-sample only when the history is too short for it): the span
  is ``calibration_s``, or a third of a shorter history. Once the history is three times that
  span and still shorter than the fits' ``history_s``, a daily refit's holdout fit is the fit
  made ``calibration_s`` earlier, on the same series; it is found in :data:`FITS` instead of
  being made again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd
from cachetools import LRUCache

LEVELS = (80, 95)
DAY = pd.Timedelta("1D")
WEEK = pd.Timedelta("7D")


def _durations_in_seconds(state: dict) -> dict:
    """A pickled forecaster's or calibrator's state with its durations renamed to seconds (a
    champion registered before then still loads and answers).

    >>> _durations_in_seconds({"model_step": pd.Timedelta("15min"), "calibration_days": 7})
    {'model_step_s': 900.0, 'calibration_s': 604800.0}
    """
    if "model_step" in state:
        state["model_step_s"] = pd.Timedelta(state.pop("model_step")).total_seconds()
    if "calibration_days" in state:
        state["calibration_s"] = 86400.0 * state.pop("calibration_days")
    return state


class FitMemo:
    """The last ``size`` fits a process made, by model and by the exact series they were
    fitted on, so that a fit repeated on the same data is made once (cachetools' LRU, under a
    lock: the flows fit from threads).

    A daily refit on an expanding history fits, for its calibration holdout, the very series
    the fit of ``calibration_s`` earlier was made on (once the history spans three times
    ``calibration_s``): the replay and the backtest refit day after day on an expanding history
    until it reaches ``history_s``. The models are deterministic, so the memo changes no
    forecast; it saves one of the two fits on those days.

    >>> memo = FitMemo(size=1)
    >>> memo.put(("a",), {"model": 1}); memo.put(("b",), {"model": 2})
    >>> memo.get(("a",)), memo.get(("b",))
    (None, {'model': 2})
    """

    def __init__(self, size: int = 64) -> None:
        self._fits: LRUCache[tuple, dict] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            return self._fits.get(key)

    def put(self, key: tuple, fitted: dict) -> None:
        with self._lock:
            self._fits[key] = fitted


FITS = FitMemo()  # shared by every forecaster of the process; fitted models are never mutated


def series_key(coarse: pd.Series) -> str:
    """A series' identity for :class:`FitMemo`: its timestamps and values, digested."""
    digest = hashlib.blake2b(coarse.index.asi8.tobytes(), digest_size=16)
    digest.update(np.ascontiguousarray(coarse.to_numpy(dtype=float)).tobytes())
    return digest.hexdigest()


class Forecaster(Protocol):
    """What every Tier 1 model offers: fit on history, predict bounds at any later timestamps."""

    name: str

    def fit(self, history: pd.Series) -> Forecaster: ...

    def predict(self, index: pd.DatetimeIndex) -> pd.DataFrame: ...


@dataclass
class IntervalCalibrator:
    """Empirical residual quantiles per hour of day (or overall when data is thin)."""

    calibration_s: float = 7 * 86400.0
    min_per_bin: int = 30
    table: dict[int, dict[str, float]] = field(default_factory=dict)
    # conformal widening per level, learned from out-of-sample backtest errors (see conformal_offsets)
    offsets: dict[int, tuple[float, float]] = field(default_factory=dict)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(_durations_in_seconds(state))

    def fit(self, actual: pd.Series, fitted: pd.Series) -> IntervalCalibrator:
        since = actual.index[-1] - pd.Timedelta(seconds=self.calibration_s)
        residual = (actual - fitted)[actual.index > since].dropna()
        if residual.empty:
            residual = (actual - fitted).dropna()
        overall = self._quantiles(residual.to_numpy())
        self.table = {-1: overall}
        hours = residual.index.hour
        for hour in range(24):
            values = residual.to_numpy()[hours == hour]
            self.table[hour] = self._quantiles(values) if len(values) >= self.min_per_bin else overall
        return self

    @staticmethod
    def _quantiles(values: np.ndarray) -> dict[str, float]:
        if len(values) == 0:
            return {f"{side}_{level}": 0.0 for level in LEVELS for side in ("lower", "upper")}
        out = {}
        for level in LEVELS:
            tail = (100 - level) / 200
            out[f"lower_{level}"] = float(np.quantile(values, tail))
            out[f"upper_{level}"] = float(np.quantile(values, 1 - tail))
        return out

    def bounds(self, index: pd.DatetimeIndex, point: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame({"point": point}, index=index)
        # each timestamp's residual quantiles, looked up by its hour (a table of 24 rows)
        names = [f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")]
        by_hour = np.array([[self.table.get(h, self.table[-1])[n] for n in names]
                            for h in range(24)])
        offsets = dict(zip(names, by_hour[index.hour.to_numpy()].T))
        for level in LEVELS:
            lower = point + offsets[f"lower_{level}"]
            upper = point + offsets[f"upper_{level}"]
            frame[f"lower_{level}"] = np.maximum(np.minimum(lower, point), 0.0)
            frame[f"upper_{level}"] = np.maximum(upper, point)
        frame["point"] = np.maximum(frame["point"], 0.0)
        return widen(frame[["point", "lower_80", "upper_80", "lower_95", "upper_95"]], self.offsets)


@dataclass
class BaseForecaster:
    """Shared plumbing: modelling step, native read-back and interval calibration."""

    model_step_s: float = 900.0  # the modelling step (the native interval when coarser)
    calibration_s: float = 7 * 86400.0  # the residuals the bounds are calibrated on
    name: ClassVar[str] = "base"
    # what ``_fit_coarse`` sets: kept in FITS for a fit repeated on the same series (empty:
    # the fit is too cheap to keep)
    fitted_fields: ClassVar[tuple[str, ...]] = ()

    native: pd.Timedelta = field(init=False, default=pd.Timedelta("1min"))
    step: pd.Timedelta = field(init=False, default=pd.Timedelta("15min"))
    last_timestamp: pd.Timestamp = field(init=False, default=None)
    calibrator: IntervalCalibrator = field(init=False, default_factory=IntervalCalibrator)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(_durations_in_seconds(state))

    def fit(self, history: pd.Series) -> BaseForecaster:
        history = history.astype(float)
        if history.dropna().shape[0] < 2:
            raise ValueError(f"{history.name}: too little history to fit ({history.notna().sum()} values)")
        self.native = _interval_of(history)
        self.step = max(self.native, pd.Timedelta(seconds=self.model_step_s))
        span = history.index[-1] - history.index[0]
        holdout_start = history.index[-1] - min(pd.Timedelta(seconds=self.calibration_s), span / 3)
        train = history[history.index <= holdout_start]
        if train.notna().sum() >= 2 and (train.index[-1] - history.index[0]) >= 2 * DAY:
            # pseudo out-of-sample: residuals of forecasts for the last days, from a fit before them
            self._fit_series(train)
            holdout = history[history.index > holdout_start]
            forecast = self._read_native(holdout.index, self._coarse_forecast(holdout.index))
            self._fit_series(history)
            self.calibrator = IntervalCalibrator(self.calibration_s).fit(holdout, forecast)
        else:  # too short for a holdout: in-sample residuals
            coarse = self._fit_series(history)
            fitted = self._read_native(history.index, self._fitted_coarse(coarse))
            self.calibrator = IntervalCalibrator(self.calibration_s).fit(history, fitted)
        return self

    def predict(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        index = pd.DatetimeIndex(index)
        if self.last_timestamp is None:
            raise RuntimeError(f"{self.name}: predict() before fit()")
        point = self._read_native(index, self._coarse_forecast(index)).to_numpy()
        return self.calibrator.bounds(index, point)

    def _fit_series(self, history: pd.Series) -> pd.Series:
        self.last_timestamp = history.index[-1]
        coarse = history.resample(self.step, origin="epoch").mean()
        if not self.fitted_fields:
            self._fit_coarse(coarse)
            return coarse
        key = (self.name, self.step, series_key(coarse))
        fitted = FITS.get(key)
        if fitted is None:
            self._fit_coarse(coarse)
            FITS.put(key, {name: getattr(self, name) for name in self.fitted_fields})
        else:
            self.__dict__.update(fitted)
        return coarse

    def _coarse_forecast(self, index: pd.DatetimeIndex) -> pd.Series:
        start = self.last_timestamp.floor(self.step)
        end = max(index.max(), start).floor(self.step) + 2 * self.step
        coarse_index = pd.date_range(start, end, freq=self.step)
        return pd.Series(self._predict_coarse(coarse_index), index=coarse_index)

    def _read_native(self, index: pd.DatetimeIndex, coarse: pd.Series) -> pd.Series:
        """Interpolate step averages (placed at step centres) onto native timestamps."""
        centres = coarse.index + self.step / 2 - self.native / 2
        x_coarse = centres.asi8.astype(float)
        valid = np.isfinite(coarse.to_numpy())
        values = np.interp(index.asi8.astype(float), x_coarse[valid], coarse.to_numpy()[valid])
        return pd.Series(values, index=index)

    # subclasses implement these on the coarse (modelling-step) series
    def _fit_coarse(self, coarse: pd.Series) -> None:
        raise NotImplementedError

    def _fitted_coarse(self, coarse: pd.Series) -> pd.Series:
        raise NotImplementedError

    def _predict_coarse(self, index: pd.DatetimeIndex) -> np.ndarray:
        raise NotImplementedError


@dataclass
class SeasonalNaive(BaseForecaster):
    """Same time last week where the history allows it, else same time yesterday."""

    name: ClassVar[str] = "seasonal_naive"
    model_step_s: float = 0.0  # the textbook benchmark: native resolution
    season: pd.Timedelta = field(init=False, default=WEEK)
    memory: pd.Series = field(init=False, default=None)

    def _fit_coarse(self, coarse: pd.Series) -> None:
        span = coarse.index[-1] - coarse.index[0]
        self.season = WEEK if span >= WEEK + DAY else DAY
        # gaps fall back to the same step one season earlier, then to the step's daily profile
        self.memory = coarse.copy()

    def _value_at(self, index: pd.DatetimeIndex) -> np.ndarray:
        out = np.full(len(index), np.nan)
        for k in range(1, 6):
            missing = np.isnan(out)
            if not missing.any():
                break
            lookup = self.memory.reindex(index[missing] - k * self.season).to_numpy()
            out[missing] = lookup
        missing = np.isnan(out)
        if missing.any():  # fall back to the time-of-day mean
            profile = self.memory.groupby(self.memory.index.time).mean()
            out[missing] = profile.reindex(index[missing].time).to_numpy()
        return np.nan_to_num(out, nan=float(np.nanmean(self.memory.to_numpy())))

    def _fitted_coarse(self, coarse: pd.Series) -> pd.Series:
        return pd.Series(self._value_at(coarse.index), index=coarse.index)

    def _predict_coarse(self, index: pd.DatetimeIndex) -> np.ndarray:
        return self._value_at(index)


@dataclass
class ProphetForecaster(BaseForecaster):
    """Prophet with daily and weekly seasonality; no uncertainty sampling (intervals are empirical)."""

    name: ClassVar[str] = "prophet"
    fitted_fields: ClassVar[tuple[str, ...]] = ("model",)
    model: object = field(init=False, default=None)

    def _fit_coarse(self, coarse: pd.Series) -> None:
        from prophet import Prophet

        quiet_stan()
        span_days = (coarse.index[-1] - coarse.index[0]) / DAY
        self.model = Prophet(
            daily_seasonality=True,
            weekly_seasonality=span_days >= 14,
            yearly_seasonality=False,
            uncertainty_samples=0,
        )
        frame = pd.DataFrame({"ds": coarse.index, "y": coarse.to_numpy()}).dropna()
        self.model.fit(frame)

    def _yhat(self, index: pd.DatetimeIndex) -> np.ndarray:
        return self.model.predict(pd.DataFrame({"ds": index}))["yhat"].to_numpy()

    def _fitted_coarse(self, coarse: pd.Series) -> pd.Series:
        return pd.Series(self._yhat(coarse.index), index=coarse.index)

    def _predict_coarse(self, index: pd.DatetimeIndex) -> np.ndarray:
        return self._yhat(index)


@dataclass
class MSTLForecaster(BaseForecaster):
    """MSTL (daily + weekly STL decomposition, ETS on the trend), from statsforecast."""

    name: ClassVar[str] = "mstl"
    fitted_fields: ClassVar[tuple[str, ...]] = ("model", "fitted_end")
    model: object = field(init=False, default=None)
    fitted_end: pd.Timestamp = field(init=False, default=None)
    last_fitted: float = field(init=False, default=np.nan)

    def _fit_coarse(self, coarse: pd.Series) -> None:
        from statsforecast.models import MSTL, AutoETS

        per_day = int(DAY / self.step)
        seasons = [per_day]
        if len(coarse) >= 2 * 7 * per_day:
            seasons.append(7 * per_day)
        filled = coarse.interpolate(limit_direction="both").to_numpy()
        self.model = MSTL(season_length=seasons, trend_forecaster=AutoETS(model="ZZN"),
                          stl_kwargs=stl_jumps(per_day))
        self.model.fit(filled)
        self.fitted_end = coarse.index[-1]

    def _fitted_coarse(self, coarse: pd.Series) -> pd.Series:
        components = self.model.model_
        fitted = components.drop(columns=["data", "remainder"]).sum(axis=1).to_numpy()
        self.last_fitted = float(fitted[-1])
        return pd.Series(fitted, index=coarse.index)

    def _predict_coarse(self, index: pd.DatetimeIndex) -> np.ndarray:
        steps = ((index - self.fitted_end) / self.step).round().astype(int)
        horizon = max(int(steps.max()), 1)
        mean = self.model.predict(h=horizon)["mean"]
        values = np.full(len(index), np.nan)
        ahead = steps >= 1
        values[ahead] = mean[steps[ahead] - 1]
        values[steps == 0] = self.last_fitted
        return values


def stl_jumps(period: int, seasonal_window: int = 11) -> dict[str, int]:
    """R's ``stl`` defaults for the LOESS jumps (``forecast::mstl``'s engine): each smoother is
    evaluated every tenth of its window and interpolated in between. statsmodels evaluates at
    every point (jump 1), which is 7x slower on a weekly season of 15-minute means for the same
    forecast. The jumps of the shortest season are used for every season (statsforecast passes
    one set to each STL), finer than R would use on the longer ones.

    >>> stl_jumps(96)
    {'seasonal_jump': 2, 'trend_jump': 17, 'low_pass_jump': 10}
    """

    def odd(x: float) -> int:
        n = math.ceil(x)
        return n if n % 2 else n + 1

    trend = odd(1.5 * period / (1 - 1.5 / seasonal_window))
    return {"seasonal_jump": math.ceil(seasonal_window / 10), "trend_jump": math.ceil(trend / 10),
            "low_pass_jump": math.ceil(odd(period) / 10)}


FORECASTERS: dict[str, Callable[..., BaseForecaster]] = {
    SeasonalNaive.name: SeasonalNaive,
    ProphetForecaster.name: ProphetForecaster,
    MSTLForecaster.name: MSTLForecaster,
}


def conformal_offsets(
    actual: np.ndarray, forecast: pd.DataFrame, targets: dict[int, float] | None = None
) -> dict[int, tuple[float, float]]:
    """Split-conformal widening (CQR, Romano et al. 2019) from out-of-sample forecasts.

    The conformity score is how far an actual value falls outside the interval (negative inside),
    in units of the interval's width, so that what is learned on a quiet day transfers to a busy
    one (normalised conformal prediction). Widths are floored at a tenth of their median so a
    flat stretch cannot blow the ratio up. Per level the result is ``(factor, floor)``: the
    score's finite-sample-corrected quantile and that floor; widening both bounds by
    ``factor x max(width, floor)`` would have covered that share of the calibration points.
    ``targets`` may ask for another share than the nominal level (adaptive conformal inference).
    """
    mask = np.isfinite(actual)
    y = actual[mask]
    out: dict[int, tuple[float, float]] = {}
    if len(y) == 0:
        return out
    for level in LEVELS:
        lower = forecast[f"lower_{level}"].to_numpy()[mask]
        upper = forecast[f"upper_{level}"].to_numpy()[mask]
        floor = _width_floor(upper - lower, y)
        conformity = np.maximum(lower - y, y - upper) / np.maximum(upper - lower, floor)
        target = (targets or {}).get(level, level)
        rank = min(1.0, np.ceil((len(y) + 1) * target / 100) / len(y))
        out[level] = (float(np.quantile(conformity, rank)), floor)
    return out


def widen(forecast: pd.DataFrame, offsets: dict[int, tuple[float, float]]) -> pd.DataFrame:
    """Apply conformal offsets to a forecast's bounds (lower kept at or below the point, >= 0)."""
    out = forecast.copy()
    point = out["point"].to_numpy()
    for level, (factor, floor) in offsets.items():
        lower, upper = out[f"lower_{level}"].to_numpy(), out[f"upper_{level}"].to_numpy()
        extra = factor * np.maximum(upper - lower, floor)
        out[f"lower_{level}"] = np.maximum(np.minimum(lower - extra, point), 0.0)
        out[f"upper_{level}"] = np.maximum(upper + extra, point)
    return out


def _width_floor(width: np.ndarray, actual: np.ndarray) -> float:
    floor = 0.1 * float(np.median(width)) if len(width) else 0.0
    if floor <= 0:
        floor = 0.01 * float(np.mean(np.abs(actual))) if len(actual) else 0.0
    return max(floor, 1e-9)


def make_forecaster(name: str, **options) -> BaseForecaster:
    """A fresh, unfitted forecaster by name (``seasonal_naive``, ``prophet`` or ``mstl``)."""
    try:
        return FORECASTERS[name](**options)
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(FORECASTERS)}") from None


def quiet_stan() -> None:
    """Keep cmdstanpy's per-fit INFO lines off the console (warnings still show).

    cmdstanpy installs its own INFO handler on first use unless its logger already has one.
    """
    for name in ("cmdstanpy", "prophet"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.WARNING)


def _interval_of(series: pd.Series) -> pd.Timedelta:
    if series.index.freq is not None:
        return pd.Timedelta(series.index.freq)
    steps = series.index.to_series().diff().dropna()
    return pd.Timedelta(steps.mode().iloc[0])
