"""Tier 1 forecasters: shapes, bounds, seasonal naive semantics, conformal widening."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.tier1 import forecasters
from models.tier1.forecasters import LEVELS, FitMemo, conformal_offsets, make_forecaster, widen

COLUMNS = ["point", "lower_80", "upper_80", "lower_95", "upper_95"]


def periodic(days: int = 16, freq: str = "15min", noise: float = 0.0, seed: int = 0) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=int(pd.Timedelta(days=days) / pd.Timedelta(freq)),
                          freq=freq)
    hours = index.hour + index.minute / 60
    weekday = np.where(index.dayofweek >= 5, 0.5, 1.0)
    values = 100 + 60 * np.sin(2 * np.pi * hours / 24) * weekday
    values = values + np.random.default_rng(seed).normal(0, noise, len(index))
    return pd.Series(np.maximum(values, 0), index=index, name="svc")


@pytest.mark.parametrize("name", ["seasonal_naive", "prophet", "mstl"])
def test_each_model_forecasts_ordered_bounds(name):
    series = periodic(noise=5)
    history, future = series.iloc[:-96], series.index[-96:]
    forecast = make_forecaster(name).fit(history).predict(future)
    assert list(forecast.columns) == COLUMNS and len(forecast) == 96
    assert (forecast["lower_95"] <= forecast["lower_80"] + 1e-9).all()
    assert (forecast["lower_80"] <= forecast["point"] + 1e-9).all()
    assert (forecast["point"] <= forecast["upper_80"] + 1e-9).all()
    assert (forecast["upper_80"] <= forecast["upper_95"] + 1e-9).all()
    error = (forecast["point"] - series.iloc[-96:].to_numpy()).abs().mean()
    assert error < 25, f"{name} should learn the daily cycle (MAE {error:.1f})"


def test_seasonal_naive_repeats_last_week_else_yesterday():
    long = periodic(days=15)
    future = long.index[-96:]
    forecast = make_forecaster("seasonal_naive").fit(long.iloc[:-96]).predict(future)
    np.testing.assert_allclose(forecast["point"], long.reindex(future - pd.Timedelta("7D")))
    short = periodic(days=4)
    future = short.index[-96:]
    forecast = make_forecaster("seasonal_naive").fit(short.iloc[:-96]).predict(future)
    np.testing.assert_allclose(forecast["point"], short.reindex(future - pd.Timedelta("1D")))


def test_gaps_in_history_do_not_break_fits():
    series = periodic(noise=3)
    series.iloc[200:260] = np.nan
    for name in ("seasonal_naive", "prophet", "mstl"):
        forecast = make_forecaster(name).fit(series.iloc[:-96]).predict(series.index[-96:])
        assert forecast.notna().all().all(), name


@pytest.mark.parametrize("name", ["prophet", "mstl"])
def test_a_refit_makes_a_fit_it_has_made_once_and_forecasts_as_a_fresh_one(name, monkeypatch):
    """On an expanding history of three weeks or more, a day's holdout (the last week) is fitted
    on the series the fit of a week earlier saw: the memo makes that fit once, and the forecast
    is what a fresh fit gives."""
    series = periodic(days=30, noise=4)
    start, future = series.index[0], series.index[-96:]
    model = type(make_forecaster(name))
    fitted_days: list[float] = []
    fit_coarse = model._fit_coarse

    def counted(self, coarse):
        fitted_days.append(len(coarse) / 96)
        return fit_coarse(self, coarse)

    monkeypatch.setattr(model, "_fit_coarse", counted)
    monkeypatch.setattr(forecasters, "FITS", FitMemo())
    make_forecaster(name).fit(series[series.index < start + pd.Timedelta(days=22)])
    refit = make_forecaster(name).fit(series[series.index < start + pd.Timedelta(days=29)])
    # day 22: its holdout fit (15 days) and its full fit; day 29: its holdout fit is on day 22's
    # 22 days, made already, so only its full fit
    assert fitted_days == [15, 22, 29]
    monkeypatch.setattr(forecasters, "FITS", FitMemo())  # empty: this fit makes both its fits
    fresh = make_forecaster(name).fit(series[series.index < start + pd.Timedelta(days=29)])
    assert fitted_days[3:] == [22, 29]
    pd.testing.assert_frame_equal(refit.predict(future), fresh.predict(future))


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="choose from"):
        make_forecaster("arima")


def test_conformal_offsets_cover_the_calibration_points():
    rng = np.random.default_rng(1)
    actual = rng.normal(100, 2, 2000)
    narrow = pd.DataFrame({"point": 100.0, **{f"lower_{lvl}": 99.0 for lvl in LEVELS},
                           **{f"upper_{lvl}": 101.0 for lvl in LEVELS}}, index=range(2000))
    offsets = conformal_offsets(actual, narrow)
    widened = widen(narrow, offsets)
    for level in LEVELS:
        inside = (actual >= widened[f"lower_{level}"]) & (actual <= widened[f"upper_{level}"])
        assert abs(inside.mean() - level / 100) < 0.02
        assert offsets[level][0] > 0  # too narrow: widened
    wide = narrow.assign(**{f"lower_{lvl}": 80.0 for lvl in LEVELS},
                         **{f"upper_{lvl}": 120.0 for lvl in LEVELS})
    assert all(factor < 0 for factor, _ in conformal_offsets(actual, wide).values())  # shrunk


def test_a_model_pickled_with_durations_in_old_units_still_loads_and_answers():
    """Champions registered before durations were seconds (``model_step`` a Timedelta,
    ``calibration_days``) unpickle with their durations in seconds and forecast the same."""
    import pickle

    series = periodic(noise=5)
    history, future = series.iloc[:-96], series.index[-96:]
    fitted = make_forecaster("mstl").fit(history)
    expected = fitted.predict(future)
    old = pickle.loads(pickle.dumps(fitted))
    # the fields as the older code held them
    old.__dict__["model_step"] = pd.Timedelta(seconds=old.__dict__.pop("model_step_s"))
    for obj in (old, old.calibrator):
        obj.__dict__["calibration_days"] = int(obj.__dict__.pop("calibration_s") / 86400)
    loaded = pickle.loads(pickle.dumps(old))
    assert (loaded.model_step_s, loaded.calibration_s) == (900.0, 7 * 86400.0)
    assert loaded.calibrator.calibration_s == 7 * 86400.0
    assert "model_step" not in loaded.__dict__ and "calibration_days" not in loaded.__dict__
    pd.testing.assert_frame_equal(loaded.predict(future), expected)
    refit = loaded.fit(history).predict(future)  # and it refits as a new one would
    pd.testing.assert_frame_equal(refit, expected)
