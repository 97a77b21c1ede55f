"""The intent interval holds per group when the served fit is not the calibrated one.

The offsets are measured on rolling-origin fold fits and served on the refit (``refit=True``).
A booster's tail-quantile band changes from fit to fit; the interval around the median must not
inherit that (``interval="median"``), while models saved with the earlier CQR scheme keep their
bounds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import models.tier2.intent as intent
from features.online import fill_population_row
from features.store import fill_population
from models.tier2.intent import IntentConfig, IntentModel, fit_intent

SMALL = IntentConfig(iterations=60, depth=4, thread_count=1)
SIGMA = {0.0: 0.6, 1.0: 0.15}  # log-space noise: new consumers 4x noisier than seen ones


def _trace(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"kind": rng.choice(["a", "b"], n),
                          "known": rng.choice([0.0, 1.0], n, p=[0.3, 0.7])})
    sigma = frame["known"].map(SIGMA).to_numpy()
    scale = np.where(frame["kind"] == "a", 10.0, 40.0)
    return frame, np.expm1(np.log1p(scale) + rng.normal(0, sigma))


class DriftingBand:
    """A booster stand-in: the true median of the trace above, with a 10-90% band whose width
    depends on the size of the fit (as CatBoost's tail quantiles do from one fit to the next),
    not on the requests: fits on fewer rows give narrower bands."""

    def __init__(self) -> None:
        self.half = 0.0

    def fit(self, X, target, cat_features=None):
        self.half = 0.02 * len(X) / 1000  # 0.14 at 7,200 rows, 0.24 at 12,000
        return self

    def predict(self, X):
        matrix = np.asarray(X, dtype=object)
        mid = np.log1p(np.where(matrix[:, 0] == "a", 10.0, 40.0))
        return np.column_stack([mid - self.half, mid, mid + self.half])


def _coverage(model: IntentModel, frame: pd.DataFrame, y: np.ndarray) -> dict[float, float]:
    pred = model.predict(frame)
    inside = (y >= pred["lower"].to_numpy()) & (y <= pred["upper"].to_numpy())
    return {known: float(inside[(frame["known"] == known).to_numpy()].mean())
            for known in (0.0, 1.0)}


def _drifting_fit(monkeypatch, interval: str) -> IntentModel:
    monkeypatch.setattr(intent, "_booster", lambda config, kind="catboost": DriftingBand())
    frame, y = _trace(12000, seed=0)
    config = IntentConfig(interval=interval)
    return fit_intent(frame, y, ["kind"], ["kind"], config, group_column="known",
                      type_column="kind")


def test_the_median_interval_covers_each_group_when_the_refit_band_differs(monkeypatch):
    model = _drifting_fit(monkeypatch, "median")
    assert model.interval == "median" and model.meta["refit"]
    test, y_test = _trace(20000, seed=1)
    for known, value in _coverage(model, test, y_test).items():
        assert value == pytest.approx(0.8, abs=0.03), known


def test_the_additive_cqr_offset_over_covers_a_wider_refit_band(monkeypatch):
    """The mechanism the median interval removes: offsets measured on the narrower fold bands,
    added to the refit's wider one, widen every group too much."""
    model = _drifting_fit(monkeypatch, "cqr")
    test, y_test = _trace(20000, seed=1)
    coverage = _coverage(model, test, y_test)
    assert coverage[1.0] > 0.86  # the seen group (narrow noise) is hit hardest


def test_groups_with_different_error_scales_each_get_80_percent_with_catboost():
    frame, y = _trace(6000, seed=2)
    frame["size"] = np.random.default_rng(5).uniform(1, 10, len(frame))  # noise feature
    model = fit_intent(frame, y, ["kind", "size", "known"], ["kind"], SMALL,
                       group_column="known", type_column="kind")
    assert model.interval == "median"
    assert model.offsets["0"] > 2 * model.offsets["1"]  # new consumers err more
    test, y_test = _trace(20000, seed=3)
    test["size"] = np.random.default_rng(6).uniform(1, 10, len(test))
    for known, value in _coverage(model, test, y_test).items():
        assert value == pytest.approx(0.8, abs=0.04), known  # groups of ~1,400 / 3,400 scores


def test_a_model_saved_with_the_cqr_scheme_loads_with_its_bounds(tmp_path):
    frame, y = _trace(3000, seed=4)
    model = fit_intent(frame, y, ["kind"], ["kind"], IntentConfig(interval="cqr"),
                       group_column="known", type_column="kind", kind="table")
    expected = model.predict(frame.head(100))
    folder = model.save(tmp_path / "m")
    meta = json.loads((folder / intent.META_FILE).read_text())
    del meta["interval"]  # as saved before the key existed
    (folder / intent.META_FILE).write_text(json.dumps(meta))
    again = IntentModel.load(folder)
    assert again.interval == "cqr"
    pd.testing.assert_frame_equal(again.predict(frame.head(100)), expected)
    fresh = fit_intent(frame, y, ["kind"], ["kind"], IntentConfig(), group_column="known",
                       type_column="kind", kind="table")
    assert IntentModel.load(fresh.save(tmp_path / "n")).interval == "median"
    with pytest.raises(ValueError):
        fit_intent(frame, y, ["kind"], ["kind"], IntentConfig(interval="bogus"), kind="table")


def test_an_uncalibrated_fit_keeps_the_band_instead_of_a_zero_width_interval():
    frame, y = _trace(2, seed=5)
    model = fit_intent(frame, y, ["kind"], ["kind"], IntentConfig(), kind="table")
    assert model.interval == "cqr" and model.meta["calibration_folds"] == 0


def test_new_means_the_same_in_the_training_set_and_at_serving():
    """``consumer_known`` of the calibration windows and the holdout comes from the training
    set's point-in-time features (:func:`features.store.fill_population`); serving computes it
    per request (:func:`features.online.fill_population_row`): the same flag for the same
    feature-store state, and fit_intent groups by the column as given."""
    from features.definitions import feature_refs

    names = [ref.split(":", 1)[1] for ref in feature_refs()]
    rows = []
    for c_n in (None, 0, 1, 7):
        row = {name: None for name in names}
        row.update({"pop_demand_mean": 5.0, "pop_demand_p50": 4.0, "pop_demand_p90": 9.0,
                    "pop_heavy_share": 0.1, "c_n": c_n, "c_profile_class": None})
        if c_n:
            row.update({"c_demand_mean": 3.0, "c_demand_p50": 2.0, "c_demand_p90": 6.0,
                        "c_demand_last": 2.0, "c_heavy_share": 0.0, "c_profile_class": "light"})
        rows.append(row)
    training = fill_population(pd.DataFrame(rows))["consumer_known"].tolist()
    serving = [fill_population_row(row)["consumer_known"] for row in rows]
    assert training == serving == [0.0, 0.0, 1.0, 1.0]
    keys, _ = intent.row_groups(pd.DataFrame({"consumer_known": training}), "consumer_known",
                                None)
    assert keys == ["0", "0", "1", "1"]
