"""The rolling-origin backtest: no leakage, honest champion, correct metrics."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import models.tier1.backtest as backtest
import models.tier1.forecasters as baseline
from models.tier1.backtest import BacktestConfig, backtest_producer, score, summarise


class Spy(baseline.SeasonalNaive):
    """A seasonal naive that records the last timestamp of every history it is fitted on."""

    seen: ClassVar[list[pd.Timestamp]] = []

    def fit(self, history):
        Spy.seen.append(history.index[-1])
        return super().fit(history)


def series(days: int = 14) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=days * 96, freq="15min")
    values = 50 + 20 * np.sin(2 * np.pi * index.hour / 24)
    return pd.Series(values + np.random.default_rng(0).normal(0, 2, len(index)), index=index,
                     name="svc")


def test_fits_never_see_the_day_they_are_scored_on(monkeypatch):
    monkeypatch.setitem(baseline.FORECASTERS, "spy", Spy)
    Spy.seen = []
    config = BacktestConfig(models=("spy",), cutoffs=3, warmup_cutoffs=1)
    frame = backtest_producer(series(), config)
    cutoffs = sorted(frame["cutoff"].unique())
    assert len(cutoffs) == 4 and len(Spy.seen) >= 4
    # each backtest fit (two per cut-off: calibration holdout, then full) ends before its cut-off
    for cutoff in cutoffs:
        fits = [t for t in Spy.seen if cutoff - pd.Timedelta("1D") <= t < cutoff]
        assert fits, f"no fit for {cutoff}"
    assert all(t < cutoffs[-1] for t in Spy.seen)


def test_a_forecaster_that_peeks_is_rewarded_so_the_check_has_teeth(monkeypatch):
    """Sanity: a model handed the future scores far better, so the no-leakage test matters."""
    full = series()

    class Peek(baseline.SeasonalNaive):
        def predict(self, index):
            forecast = super().predict(index)
            return forecast.assign(point=full.reindex(index).to_numpy())

    monkeypatch.setitem(baseline.FORECASTERS, "peek", Peek)
    config = BacktestConfig(models=("seasonal_naive", "peek"), cutoffs=2, warmup_cutoffs=1)
    summary = summarise(backtest_producer(full, config))
    assert summary["peek"]["mase"] < 0.01 < summary["seasonal_naive"]["mase"]


def test_champion_at_each_cutoff_is_chosen_on_earlier_cutoffs_only():
    rows = []
    for day, (good, bad) in enumerate([("a", "b"), ("a", "b"), ("b", "a")]):
        cutoff = pd.Timestamp("2024-01-10") + pd.Timedelta(days=day)
        rows += [{"producer_id": "p", "model": good, "cutoff": cutoff, "wis": 1.0, "mase": 1.0},
                 {"producer_id": "p", "model": bad, "cutoff": cutoff, "wis": 2.0, "mase": 2.0}]
    champions = backtest.champion_rows(pd.DataFrame(rows))
    # day 2 is won by "b", but the champion that day was chosen on days 0-1, where "a" won
    assert champions["chosen"].tolist() == ["a", "a"]
    assert champions["wis"].tolist() == [1.0, 2.0]


def test_score_metrics_on_a_hand_checked_case():
    actual = pd.Series([10.0, 20.0, 0.0, 40.0])
    forecast = pd.DataFrame({"point": [12.0, 18.0, 0.0, 30.0],
                             "lower_80": [9, 15, 0, 35], "upper_80": [15, 25, 1, 45],
                             "lower_95": [5, 10, 0, 30], "upper_95": [20, 30, 2, 50]}, dtype=float)
    metrics = score(actual, forecast, scale=2.0)
    assert metrics["mase"] == pytest.approx((2 + 2 + 0 + 10) / 4 / 2.0)
    assert metrics["smape"] == pytest.approx(np.mean([200 * 2 / 22, 200 * 2 / 38, 200 * 10 / 70]))
    assert metrics["coverage_80"] == 1.0 and metrics["coverage_95"] == 1.0
    assert metrics["width_80"] == pytest.approx(np.mean([6, 10, 1, 10]) / 17.5)


def test_backtest_on_the_real_nasa_trace_beats_seasonal_naive(shared_data):
    from leadtime.data import read_load_trace

    trace = read_load_trace(shared_data / "load" / "nasa_http_1995.csv")
    config = BacktestConfig(models=("seasonal_naive", "prophet"), cutoffs=2, warmup_cutoffs=1)
    summary = summarise(backtest_producer(trace.series("nasa-www"), config))
    assert summary["champion"]["mase"] < summary["seasonal_naive"]["mase"]
