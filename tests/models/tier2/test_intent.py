"""Intent model: conformal calibration, save/load, and the champion/challenger rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.tier2.intent import IntentConfig, IntentModel, conformal_offset, fit_intent

SMALL = IntentConfig(iterations=60, depth=4, thread_count=1)


def test_conformal_offset_reaches_the_coverage():
    rng = np.random.default_rng(1)
    y = rng.normal(size=2000)
    lo, hi = np.full(2000, -0.5), np.full(2000, 0.5)  # far too narrow
    q = conformal_offset(lo, hi, y, 0.8)
    fresh = rng.normal(size=5000)
    assert np.mean((fresh >= lo[0] - q) & (fresh <= hi[0] + q)) == pytest.approx(0.8, abs=0.03)


def _frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"kind": rng.choice(["a", "b"], n), "size": rng.uniform(1, 10, n)})
    y = frame["size"] * np.where(frame["kind"] == "a", 1.0, 3.0) * rng.lognormal(0, 0.2, n)
    return frame, y


def test_fit_predict_save_load(tmp_path):
    frame, y = _frame()
    model = fit_intent(frame, y, ["kind", "size"], ["kind"], SMALL, target="demand")
    pred = model.predict(frame.tail(100))
    assert (pred["lower"] <= pred["point"]).all() and (pred["point"] <= pred["upper"]).all()
    coverage = np.mean((y.tail(100) >= pred["lower"]) & (y.tail(100) <= pred["upper"]))
    assert 0.6 <= coverage <= 0.95
    again = IntentModel.load(model.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(again.predict(frame.tail(5)), model.predict(frame.tail(5)))


@pytest.mark.slow
def test_promotion_champion_then_challenger(tmp_path, monkeypatch):
    from leadtime.settings import Settings
    from models.registry import CHAMPION, client
    from models.tier2.registry import MODEL_NAME, log_and_register

    Settings(home=tmp_path).prepare()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    frame, y = _frame()
    good = fit_intent(frame, y, ["kind", "size"], ["kind"], SMALL, trace="t.csv")
    bad = fit_intent(frame.assign(size=0.0), y, ["kind", "size"], ["kind"], SMALL, trace="t.csv")
    test, y_test = frame.tail(100), y.tail(100).to_numpy()

    def mae(model):
        return float(np.mean(np.abs(y_test - model.predict(test)["point"].to_numpy())))

    first = log_and_register(good, test, {"mae": mae(good)}, {}, test, y_test)
    assert first.promotion.promoted  # the first version becomes champion
    second = log_and_register(bad, test, {"mae": mae(bad)}, {}, test, y_test)
    assert not second.promotion.promoted  # worse on the same holdout: challenger
    assert second.promotion.champion_score == pytest.approx(mae(good))
    champion = client().get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert str(champion.version) == first.version
    third = log_and_register(good, test, {"mae": mae(good)}, {}, test, y_test)
    assert third.promotion.promoted  # no worse than the champion: the fresher fit wins
