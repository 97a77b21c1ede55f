"""No leakage: a day's forecast only ever sees data from before that day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sim_fixtures import DailyNaive, daily_naive_factory, daily_trace

from simulation.forecast import LeakageError, LeakGuard, daily_tier1, past_only


def test_a_policy_given_future_data_fails_the_leakage_check():
    series = daily_trace(days=4, freq="5min")

    def the_whole_trace(s: pd.Series, day: pd.Timestamp, history_s: float) -> pd.Series:
        return s  # a bug: the model is fitted on data it would not have had

    with pytest.raises(LeakageError, match="only data before the simulated day"):
        daily_tier1(series, 1, 288, factory=daily_naive_factory, history_of=the_whole_trace)


def test_off_by_one_including_the_days_first_interval_is_caught():
    series = daily_trace(days=4, freq="5min")

    def inclusive(s: pd.Series, day: pd.Timestamp, history_s: float) -> pd.Series:
        return s[(s.index >= day - pd.Timedelta(seconds=history_s)) & (s.index <= day)]

    with pytest.raises(LeakageError):
        daily_tier1(series, 1, 288, factory=daily_naive_factory, history_of=inclusive)


def test_guard_accepts_the_past():
    series = daily_trace(days=2, freq="5min")
    day = pd.Timestamp("2024-01-02")
    LeakGuard(DailyNaive(), day).fit(past_only(series, day, 28 * 86400.0))


def test_forecasts_do_not_change_when_the_future_changes():
    series = daily_trace(days=5, freq="1min", seed=4)
    lead = 5
    first = 2 * 1440
    base = daily_tier1(series, lead, first, factory=daily_naive_factory)
    # scramble everything from day 4 on: forecasts used for decisions on days 2-3 must not move
    changed = series.copy()
    cut = pd.Timestamp("2024-01-04")
    changed[changed.index >= cut] = np.random.default_rng(9).poisson(
        500, (changed.index >= cut).sum()
    )
    after = daily_tier1(changed, lead, first, factory=daily_naive_factory)
    before_cut = np.flatnonzero(series.index < cut)
    before_cut = before_cut[before_cut >= first]
    for field in ("point", "lower", "upper", "hourly_point"):
        a, b = getattr(base, field)[before_cut], getattr(after, field)[before_cut]
        assert np.allclose(a, b, equal_nan=True), field
    # ... and they are real forecasts read one lead time ahead, from the same day's fit
    assert np.isfinite(base.upper[first:]).all()
    assert (base.upper[first:] >= base.point[first:]).all()
    assert base.fits == 3


def test_parallel_daily_fits_give_the_same_schedule():
    series = daily_trace(days=5, freq="5min", seed=2)
    serial = daily_tier1(series, 1, 288, factory=daily_naive_factory)
    parallel = daily_tier1(series, 1, 288, factory=daily_naive_factory, workers=2)
    assert serial.fits == parallel.fits == 4
    assert np.allclose(serial.window, parallel.window, equal_nan=True)
    assert np.allclose(serial.hourly_point, parallel.hourly_point, equal_nan=True)


def test_the_dry_run_days_publish_fits_that_see_only_their_past():
    series = daily_trace(days=6, freq="5min", seed=5)
    first = 4 * 288  # decisions from day 5; the loop watches from day 1
    without = daily_tier1(series, 1, first, factory=daily_naive_factory)
    watched = daily_tier1(series, 1, first, factory=daily_naive_factory, watch_step=0)
    days = [str(pd.Timestamp(day).date()) for day, _ in watched.published]
    # fits from two days in (the backtest's first cut-off), each guarded against its own day
    assert days == ["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-06"]
    assert [d for d, _ in without.published] == [d for d, _ in watched.published[2:]]
    # the decisions' forecasts are unchanged, and the dry run's days have none
    assert np.allclose(without.window, watched.window, equal_nan=True)
    assert np.isnan(watched.window[:, :first]).all()
    for day, bundle in watched.published:
        assert pd.Timestamp(bundle.fitted_until[str(series.name)]) < pd.Timestamp(day)
