"""Mondrian calibration of the intent interval: per (seen / new) x request type, with fallbacks,
and the same intervals from the served pyfunc as from the evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.tier2.intent import (
    MIN_GROUP,
    IntentConfig,
    IntentModel,
    fit_intent,
    group_offsets,
    lookup_offset,
)

SMALL = IntentConfig(iterations=60, depth=4, thread_count=1)


def _trace(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two request types; new consumers (known=0) are 8x noisier than seen ones."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"kind": rng.choice(["a", "b"], n),
                          "known": rng.choice([0.0, 1.0], n, p=[0.3, 0.7])})
    sigma = np.where(frame["known"] > 0, 0.1, 0.8)
    scale = np.where(frame["kind"] == "a", 10.0, 40.0)
    return frame, scale * rng.lognormal(0, sigma)


def _coverage(model: IntentModel, frame: pd.DataFrame, y: np.ndarray) -> dict[float, float]:
    pred = model.predict(frame)
    inside = (y >= pred["lower"].to_numpy()) & (y <= pred["upper"].to_numpy())
    return {known: float(inside[(frame["known"] == known).to_numpy()].mean())
            for known in (0.0, 1.0)}


def test_per_group_calibration_covers_each_group_where_pooled_does_not():
    frame, y = _trace(12000, seed=0)
    test, y_test = _trace(20000, seed=1)
    # the per-type median table knows nothing of the noise groups: its raw band is the mixture's
    pooled = fit_intent(frame, y, ["kind"], ["kind"], SMALL, kind="table")
    mondrian = fit_intent(frame, y, ["kind"], ["kind"], SMALL, kind="table",
                          group_column="known", type_column="kind")
    assert set(mondrian.offsets) >= {"*", "0", "1", "0|a", "0|b", "1|a", "1|b"}
    before, after = _coverage(pooled, test, y_test), _coverage(mondrian, test, y_test)
    assert before[1.0] > 0.9 and before[0.0] < 0.7  # seen far too wide, new far too narrow
    for known in (0.0, 1.0):
        assert after[known] == pytest.approx(0.8, abs=0.04)  # cells of ~800 scores: sd 1.4


def test_small_cells_fall_back_to_their_group_then_to_the_pooled_offset():
    rng = np.random.default_rng(2)
    n_big, n_tiny = 400, MIN_GROUP - 1
    y = np.concatenate([rng.normal(0, 1, n_big), rng.normal(0, 5, n_tiny)])
    lo, hi = np.full(len(y), -0.1), np.full(len(y), 0.1)
    groups = np.array(["1"] * n_big + ["0"] * n_tiny)
    types = np.array(["a"] * (n_big - 20) + ["b"] * 20 + ["a"] * n_tiny)
    offsets = group_offsets(lo, hi, y, groups, 0.8, types)
    assert "1" in offsets and "1|a" in offsets
    assert "1|b" not in offsets and "0" not in offsets and "0|a" not in offsets
    assert lookup_offset(offsets, "1", "b") == offsets["1"]  # tiny cell: its group's offset
    assert lookup_offset(offsets, "0", "a") == offsets["*"]  # tiny group: the pooled one
    assert lookup_offset(offsets, "9", None) == offsets["*"]  # never seen at calibration
    # the pooled quantile keeps the finite-sample correction ceil((n + 1) 0.8) / n
    scores = np.sort(np.maximum(lo - y, y - hi))
    assert offsets["*"] == scores[int(np.ceil((len(y) + 1) * 0.8)) - 1]


def test_served_pyfunc_gives_the_evaluation_intervals(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.models import infer_signature

    from models.tier2.intent import prepare
    from models.tier2.registry import ARTIFACT, IntentPyfunc

    frame, y = _trace(1500, seed=3)
    frame["size"] = np.random.default_rng(4).uniform(1, 10, len(frame))
    model = fit_intent(frame, y, ["kind", "size"], ["kind"], SMALL, group_column="known",
                       type_column="kind")
    rows = frame.tail(200)
    expected = model.predict(rows)  # what models.tier2.evaluate.evaluate scores
    assert len(np.unique(model.offset_for(rows))) >= 3  # the cells do differ

    example = prepare(rows.head(5), model.features, model.categorical)
    example[model.group_column] = rows.head(5)[model.group_column]
    folder = model.save(tmp_path / ARTIFACT)
    mlflow.pyfunc.save_model(str(tmp_path / "pyfunc"), python_model=IntentPyfunc(),
                             artifacts={ARTIFACT: str(folder)},
                             signature=infer_signature(example, model.predict(example)))
    served = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    model_input = rows[[*model.features, model.group_column]]
    got = served.predict(model_input)
    np.testing.assert_allclose(got[["point", "lower", "upper"]].to_numpy(),
                               expected[["point", "lower", "upper"]].to_numpy(), rtol=1e-9)
    # and the in-process serving fast path on request dicts
    fast = np.array(served.unwrap_python_model().model.predict_rows(
        model_input.to_dict("records")))
    np.testing.assert_allclose(fast, expected[["point", "lower", "upper"]].to_numpy(), rtol=1e-9)
