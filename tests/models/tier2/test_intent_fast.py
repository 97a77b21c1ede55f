"""The intent model's serving fast path, its median fallback and the feature-set selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.tier2.intent import IntentConfig, IntentModel, fit_intent

SMALL = IntentConfig(iterations=60, depth=4, thread_count=1)


def _frame(n=600, seed=0, signal=True):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"kind": rng.choice(["a", "b"], n), "size": rng.uniform(1, 10, n),
                          "group": rng.choice(["x", "y"], n)})
    scale = frame["size"] * np.where(frame["kind"] == "a", 1.0, 3.0) if signal else 5.0
    return frame, scale * rng.lognormal(0, 0.2, n)


def test_predict_rows_equals_predict():
    frame, y = _frame()
    frame.loc[3, "size"] = np.nan
    model = fit_intent(frame, y, ["kind", "size"], ["kind"], SMALL, group_column="group")
    expected = model.predict(frame.head(50))
    rows = frame.head(50).to_dict("records")
    rows[3]["size"] = None  # JSON null is NaN for the model, as in the frame
    got = np.array(model.predict_rows(rows))
    np.testing.assert_allclose(got, expected[["point", "lower", "upper"]].to_numpy(), rtol=1e-9)
    assert model.predict_rows([]) == []


def test_refit_keeps_offsets_and_records_the_validation_score():
    frame, y = _frame()
    stale = fit_intent(frame, y, ["kind", "size"], ["kind"], IntentConfig(
        iterations=60, depth=4, thread_count=1, refit=False))
    fresh = fit_intent(frame, y, ["kind", "size"], ["kind"], SMALL)
    assert fresh.offsets == stale.offsets  # calibrated on the same early fit
    assert fresh.meta["refit"] and not stale.meta["refit"]
    assert fresh.meta["validation_mae"] == pytest.approx(stale.meta["validation_mae"])


def test_median_table_fallback_predicts_per_type_and_round_trips(tmp_path):
    frame, y = _frame()
    model = fit_intent(frame, y, ["kind"], ["kind"], SMALL, kind="table")
    pred = model.predict(frame.head(20))
    for kind in ("a", "b"):
        mask = (frame["kind"] == kind).to_numpy()
        expected = np.expm1(np.quantile(np.log1p(y[mask]), 0.5))
        assert pred["point"][frame.head(20)["kind"] == kind].iloc[0] == pytest.approx(expected)
    again = IntentModel.load(model.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(again.predict(frame.head(20)), pred)
    assert again.predict_rows([{"kind": "never-seen"}])[0][0] >= 0


def test_selection_prefers_the_median_when_nothing_predicts(tmp_path):
    from features.profiles import RequestFrame
    from models.tier2.evaluate import Dataset, fit_models

    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame({
        "event_timestamp": pd.date_range("2024-01-01", periods=n, freq="min"),
        "consumer_id": "__unknown__", "producer_id": "__all__", "request_type": "code",
        "noise": rng.normal(size=n), "y": np.round(rng.lognormal(2.5, 0.8, n)),
        "c_profile_class": "new", "consumer_known": 0.0,
    })
    requests = RequestFrame(frame[["event_timestamp", "consumer_id", "producer_id",
                                   "request_type", "noise", "y"]], ["noise"], "y", False, False)
    train = np.arange(n) < 400
    data = Dataset(frame, frame["y"], train, ~train, requests, ["c_profile_class",
                                                                 "consumer_known"])
    models = fit_models(data, SMALL)
    selection = models["intent"].meta["selection"]
    assert set(selection["validation_mae"]) == {"history", "request_fields", "per_type_median",
                                                "size_bucket_median"}
    best = min(selection["validation_mae"], key=selection["validation_mae"].get)
    assert selection["selected"] == best


def test_size_bucket_table_splits_each_type_by_size_and_round_trips(tmp_path):
    """Demand proportional to size: each decile bucket gets its own median; a missing size or an
    unseen type falls back to the type's, then the population's, quantiles."""
    from models.tier2.intent import QuantileTable

    frame, y = _frame(n=2000)
    X = frame[["kind", "size"]].astype(object)
    table = QuantileTable((0.1, 0.5, 0.9)).fit(X, np.log1p(y))
    assert len(table.edges) == 9
    small, large = table.predict(pd.DataFrame({"kind": ["a", "a"], "size": [1.5, 9.5]}))
    assert large[1] > small[1] + 1.0  # log1p medians several-fold apart
    by_type = QuantileTable((0.1, 0.5, 0.9)).fit(X[["kind"]], np.log1p(y))
    fallback = table.predict(pd.DataFrame({"kind": ["a", "zzz"], "size": [np.nan, 5.0]}))
    np.testing.assert_allclose(fallback[0], by_type.table["a"])
    np.testing.assert_allclose(fallback[1], by_type.default)
    table.save_model(str(tmp_path / "table.json"))
    again = QuantileTable.load(tmp_path / "table.json")
    np.testing.assert_allclose(again.predict(X.head(20)), table.predict(X.head(20)))


def test_calibration_windows_roll_forward_without_overlap():
    from models.tier2.intent import calibration_windows

    config = IntentConfig(calibration_share=0.2, calibration_folds=2)
    assert calibration_windows(1000, config) == [(600, 800), (800, 1000)]
    # every fit ends where its window starts: no window is scored by a model that saw it
    assert calibration_windows(1000, IntentConfig(calibration_folds=1)) == [(800, 1000)]
    # a fold whose fit would be smaller than its window is dropped
    assert calibration_windows(
        1000, IntentConfig(calibration_share=0.4, calibration_folds=2)) == [(600, 1000)]
    assert calibration_windows(3, IntentConfig(calibration_share=0.1)) == []


def test_offsets_pool_the_scores_of_every_fold():
    frame, y = _frame()
    two = fit_intent(frame, y, ["kind", "size"], ["kind"], SMALL)
    one = fit_intent(frame, y, ["kind", "size"], ["kind"], IntentConfig(
        iterations=60, depth=4, thread_count=1, calibration_folds=1))
    assert two.meta["calibration_folds"] == 2 and one.meta["calibration_folds"] == 1
    assert two.meta["n_calibration"] == 2 * one.meta["n_calibration"] == 240
    assert two.meta["n_fit"] == one.meta["n_fit"] == 480  # the latest fold's fit
    assert two.offsets != one.offsets


def test_paired_mae_difference_separates_a_real_gap_from_noise():
    from models.tier2.evaluate import paired_mae_difference

    rng = np.random.default_rng(1)
    base = rng.exponential(10, 2000)
    better = paired_mae_difference(base * 0.8, base)
    assert better["diff"] == pytest.approx(-0.2 * base.mean())
    assert better["ci95_low"] < better["ci95_high"] < 0
    noise = paired_mae_difference(base + rng.normal(0, 1, base.size), base)
    assert noise["ci95_low"] < 0 < noise["ci95_high"]


def test_each_declared_resource_gets_its_own_calibrated_model(tmp_path):
    """A trace declaring CPU and memory: one model per resource rides in the target's, chosen
    and calibrated like it, saved and loaded with it, and answering on the serving path."""
    from features.profiles import RequestFrame
    from models.tier2.evaluate import Dataset, evaluate_resources, fit_resource_models

    rng = np.random.default_rng(5)
    n = 900
    kind = rng.choice(["query", "extract"], n)
    size = rng.uniform(1, 10, n)
    frame = pd.DataFrame({
        "event_timestamp": pd.date_range("2024-01-01", periods=n, freq="min"),
        "consumer_id": "__unknown__", "producer_id": "__all__", "request_type": kind,
        "size": size, "y": 5.0 * size * rng.lognormal(0, 0.2, n),
        "c_profile_class": "new", "consumer_known": 0.0})
    resources = pd.DataFrame({  # cores follow the size for queries; GiB the type
        "cpu": np.where(kind == "query", size, 1.0) * rng.lognormal(0, 0.1, n),
        "memory": np.where(kind == "query", 0.5, 20.0) * rng.lognormal(0, 0.1, n)})
    requests = RequestFrame(frame[["event_timestamp", "consumer_id", "producer_id",
                                   "request_type", "size", "y"]], ["size"], "y", False, False,
                            resources=resources)
    train = np.arange(n) < 700
    data = Dataset(frame, frame["y"], train, ~train, requests, ["c_profile_class",
                                                                 "consumer_known"])
    models = fit_resource_models(data, SMALL, {"cpu": "cores", "memory": "GiB"}, trace="t")
    assert sorted(models) == ["cpu", "memory"]
    assert models["memory"].unit == "GiB" and models["cpu"].target == "cpu"
    target = fit_intent(frame.head(700), frame["y"].head(700), ["request_type", "size"],
                        ["request_type"], SMALL)
    target.resources = models
    scores = evaluate_resources(data, target)
    for name in ("cpu", "memory"):  # each beats the global median and covers near 80 %
        entry = scores[name]
        assert entry["intent"]["mae"] < 0.5 * entry["global_median"]["mae"]
        assert 0.65 <= entry["intent"]["coverage_80"] <= 0.95
    again = IntentModel.load(target.save(tmp_path / "m"))
    assert sorted(again.resources) == ["cpu", "memory"]
    test = frame.tail(5)
    pd.testing.assert_frame_equal(again.predict(test), target.predict(test))
    assert list(target.predict(test).columns) == [
        "point", "lower", "upper", "cpu_point", "cpu_lower", "cpu_upper", "memory_point",
        "memory_lower", "memory_upper"]
    rows = again.predict_resources(test.to_dict("records"))
    np.testing.assert_allclose(np.array(rows["memory"]), target.predict(test)[
        ["memory_point", "memory_lower", "memory_upper"]].to_numpy(), rtol=1e-9)
