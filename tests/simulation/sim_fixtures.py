"""Helpers for the simulator tests: a tiny test-only forecaster and generated traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


class DailyNaive:
    """Test-only forecaster: yesterday's value at the same time of day, with empirical bounds."""

    def __init__(self) -> None:
        self.history: pd.Series | None = None

    def fit(self, history: pd.Series) -> DailyNaive:
        self.history = history
        return self

    def predict(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        assert self.history is not None
        h = self.history
        per_day = int(pd.Timedelta(days=1) / pd.Timedelta(h.index.freq))
        last_day = h.iloc[-per_day:].to_numpy()
        residual = (h - h.shift(per_day)).dropna().to_numpy()
        spread = {
            q: float(np.quantile(residual, q)) if residual.size else 0.0
            for q in (0.025, 0.1, 0.9, 0.975)
        }
        start = h.index[-1] + h.index.freq
        offset = ((index - start) / pd.Timedelta(h.index.freq)).astype(int) % per_day
        point = np.nan_to_num(last_day[offset], nan=float(np.nanmean(last_day)))
        return pd.DataFrame(
            {
                "point": point,
                "lower_80": point + spread[0.1],
                "upper_80": point + spread[0.9],
                "lower_95": point + spread[0.025],
                "upper_95": point + spread[0.975],
            },
            index=index,
        )


def daily_naive_factory(name: str) -> DailyNaive:
    return DailyNaive()


def daily_trace(
    days: int = 10, freq: str = "5min", seed: int = 0, base: float = 100.0
) -> pd.Series:
    """A Poisson load with a daily cycle (peak mid-afternoon), regular index with a freq."""
    index = pd.date_range(
        "2024-01-01", periods=days * int(pd.Timedelta("1D") / pd.Timedelta(freq)), freq=freq
    )
    hours = index.hour + index.minute / 60
    rate = base * (1.0 + 0.8 * np.sin((hours - 9) / 24 * 2 * np.pi))
    values = np.random.default_rng(seed).poisson(rate).astype(float)
    return pd.Series(values, index=index, name="svc")
