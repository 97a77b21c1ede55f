"""Tier 1 answers the window the loop sizes: the spin-up lead time plus one decision interval."""

from __future__ import annotations

import pandas as pd
import pytest


def test_the_loop_asks_tier1_for_the_lead_time_plus_one_decision_interval():
    """An hourly trace decided hourly: Tier 1's answer at 05:00 is the peak of 05:00 and 06:00,
    since the instances requested now serve the next hour and the next decision's only after."""
    from leadtime.config import producer_config
    from loop.sources import Tier1Bundles
    from models.tier1.forecasters import make_forecaster
    from models.tier1.registry import BaselineBundle

    index = pd.date_range("2024-01-01", periods=3 * 24, freq="h")
    series = pd.Series(index.hour.to_numpy(float) * 10, index=index, name="svc")
    bundles = Tier1Bundles()
    bundles.publish(index[-1].timestamp(), BaselineBundle(
        {"svc": make_forecaster("seasonal_naive").fit(series)}, {"svc": "seasonal_naive"},
        {"svc": str(index[-1])}, {"svc": "1h"}))
    at = pd.Timestamp("2024-01-04 05:00").timestamp()
    for interval, peak in ((3600.0, 60.0), (60.0, 50.0)):
        config = producer_config("svc", 10.0, decision_interval_s=interval)
        assert config.window_s == 300.0 + interval
        answer = bundles.answer({"svc": config}, at, 80).predictions["svc"]
        assert answer.point == pytest.approx(peak, abs=1e-6)
