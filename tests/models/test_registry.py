"""Champion/challenger promotion against a real (temporary, SQLite) MLflow registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.registry import CHAMPION, model_uri, should_promote


def test_model_uri_uses_aliases():
    assert model_uri("leadtime-baseline") == "models:/leadtime-baseline@champion"
    assert model_uri("x", "challenger") == "models:/x@challenger"


@pytest.mark.parametrize(("candidate", "champion", "promote"), [
    (1.0, None, True),           # first version
    (0.9, 1.0, True),            # better
    (1.0, 1.0, True),            # equal on the same backtest: the fresher fit wins
    (1.1, 1.0, False),           # worse
    (float("nan"), 1.0, False),  # a broken candidate never wins
    (1.0, float("nan"), True),
])
def test_promotion_rule(candidate, champion, promote):
    assert should_promote(candidate, champion) is promote


def _backtest(wis_a: float, wis_b: float) -> pd.DataFrame:
    """Hand-made backtest: models a and b on two scored cut-offs; the champion row follows a."""
    rows = []
    for day in range(3):
        cutoff = pd.Timestamp("2024-01-10") + pd.Timedelta(days=day)
        for model, wis in (("seasonal_naive", wis_a), ("prophet", wis_b)):
            rows.append({"producer_id": "svc", "model": model, "cutoff": cutoff, "scored": day > 0,
                         "wis": wis, "mase": wis, "smape": 1.0, "coverage_80": 0.8,
                         "coverage_95": 0.95, "width_80": 1.0, "width_95": 2.0, "fit_seconds": 0.1})
        if day > 0:
            rows.append(rows[-2] | {"model": "champion", "chosen": "seasonal_naive"})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_register_then_promote_only_when_not_worse(state):
    from mlflow import MlflowClient, pyfunc

    from models.tier1.forecasters import make_forecaster
    from models.tier1.registry import BaselineBundle, log_and_register

    index = pd.date_range("2024-01-01", periods=6 * 96, freq="15min")
    series = pd.Series(50 + 10 * np.sin(2 * np.pi * index.hour / 24), index=index, name="svc")
    bundle = BaselineBundle({"svc": make_forecaster("seasonal_naive").fit(series)},
                            {"svc": "seasonal_naive"})
    name = state.baseline_model_name

    def register(frame: pd.DataFrame, recipe: str):
        bundle.choices = {"svc": recipe}
        return log_and_register(bundle, frame, name=name, experiment="test", params={},
                                plot_path=None)

    first = register(_backtest(1.0, 2.0), "seasonal_naive")
    assert first.promoted and first.version == "1"
    # v2's honest champion follows seasonal_naive (WIS 1.0); the champion's recipe is scored on
    # the same backtest (also 1.0): equal, so the fresher fit is promoted.
    second = register(_backtest(1.0, 2.0), "prophet")
    assert second.promoted and second.champion_score == pytest.approx(1.0)
    # now the champion's recipe is prophet: on a backtest where prophet is better (0.5) than the
    # candidate's choice (1.0), the candidate is only a challenger
    third = register(_backtest(1.0, 0.5), "seasonal_naive")
    assert not third.promoted and third.champion_score == pytest.approx(0.5)

    client = MlflowClient()
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "2"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "3"
    assert json.loads(client.get_model_version(name, "3").tags["recipe"]) == {"svc": "seasonal_naive"}
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert len(runs) == 3 and "champion.wis" in runs[0].data.metrics

    model = pyfunc.load_model(model_uri(name))
    future = pd.DataFrame({"producer_id": ["svc", "svc", "unknown"],
                           "timestamp": [index[-1] + pd.Timedelta("1h")] * 2 + [index[-1]]})
    out = model.predict(future, params={"level": 95})
    assert out.loc[:1, "point"].notna().all() and (out.loc[:1, "upper"] >= out.loc[:1, "point"]).all()
    assert np.isnan(out.loc[2, "point"]) and out.loc[2, "model"] == ""


def test_a_stale_baseline_answers_nothing_rather_than_extrapolating():
    from models.tier1.forecasters import make_forecaster
    from models.tier1.registry import BaselineBundle

    index = pd.date_range("2024-01-01", periods=4 * 96, freq="15min")
    series = pd.Series(50 + 10 * np.sin(2 * np.pi * index.hour / 24), index=index, name="svc")
    bundle = BaselineBundle({"svc": make_forecaster("seasonal_naive").fit(series)},
                            {"svc": "seasonal_naive"}, {"svc": str(index[-1])})
    soon, years_later = index[-1] + pd.Timedelta("6h"), index[-1] + pd.Timedelta(days=3000)
    out = bundle.predict(pd.Series(["svc", "svc"]), pd.Series([soon, years_later]))
    assert np.isfinite(out.loc[0, "point"]) and out.loc[0, "model"] == "seasonal_naive"
    assert np.isnan(out.loc[1, "point"]) and out.loc[1, "model"] == "stale"


@pytest.mark.parametrize(("start", "window_s", "hours"), [
    ("05:00", 300.0, [5]),  # a 5-minute lead inside the hour that opens at the start
    ("05:00", 3900.0, [5, 6]),  # ... plus an hourly decision interval: the next hour too
    ("05:30", 360.0, [5]),  # one-minute decisions: the hour under way is carried
    ("05:58", 360.0, [5, 6]),  # ... and the next one once the window reaches it
])
def test_the_window_peak_covers_every_interval_the_window_overlaps(start, window_s, hours):
    """At an hourly grid a 5-minute lead alone would see only the hour under way, though the
    instances it requests serve the next; the window (lead plus decision interval) reads
    every interval it overlaps, each grid point standing for the interval it opens."""
    from models.tier1.forecasters import make_forecaster
    from models.tier1.registry import BaselineBundle

    index = pd.date_range("2024-01-01", periods=3 * 24, freq="h")
    series = pd.Series(index.hour.to_numpy(float) * 10, index=index, name="svc")
    forecaster = make_forecaster("seasonal_naive").fit(series)
    bundle = BaselineBundle({"svc": forecaster}, {"svc": "seasonal_naive"},
                            {"svc": str(index[-1])}, {"svc": "1h"})
    at = pd.Timestamp(f"2024-01-04 {start}")
    point, _, upper = bundle.window_peak("svc", at, window_s)
    table = forecaster.predict(pd.DatetimeIndex([pd.Timestamp(f"2024-01-04 {h:02d}:00")
                                                 for h in hours]))
    assert point == pytest.approx(table["point"].max())
    assert upper == pytest.approx(table["upper_80"].max())
    assert point == pytest.approx(10.0 * hours[-1], abs=1e-6)  # the day before, hour by hour

