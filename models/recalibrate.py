"""Feedback: join logged tier predictions with observed load, score each tier, re-weight.

Method (inverse error, documented in the README's feedback section):

1. Join every logged tier prediction with the load observed for its window (same producer,
   nearest ``window_start`` within ``tolerance_s``).
2. Per tier and producer, the mean absolute error of the point prediction, scaled by the
   producer's mean observed load (so a big producer does not dominate); a tier's error is the
   mean over producers of that scaled MAE.
3. New weights: ``w_t ∝ 1 / max(err_t, floor)`` over the tiers with evidence; the weight mass of
   those tiers (under the current weights) is shared that way, tiers without evidence keep their
   current weight, and the result is renormalised to sum to 1.
4. Both the candidate and the current weights are scored on the most recent ``eval_fraction``
   of windows (the candidate is fitted on the windows before it only): the combined prediction
   is recomputed per decision with :func:`leadtime.engine.combine` (missing tiers renormalised,
   exactly as the engine does) and scored by the same scaled MAE. The candidate is promoted only
   if it is no worse (:func:`leadtime.registry.should_promote`).
5. A tier whose error on the last window exceeds ``drift_ratio`` times its error before it is
   flagged for retraining.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadtime.engine import DEFAULT_WEIGHTS, TierPrediction, combine


def join_observed(predictions: pd.DataFrame, observed: pd.DataFrame,
                  tolerance_s: float = 60.0) -> pd.DataFrame:
    """Predictions (decision_id, producer_id, window_start, tier, point) + ``actual``."""
    if predictions.empty or observed.empty:
        return predictions.assign(actual=pd.Series(dtype=float)).iloc[0:0]
    left = predictions.sort_values("window_start").reset_index(drop=True)
    right = observed.rename(columns={"load": "actual"}).sort_values("window_start")
    joined = pd.merge_asof(left, right[["producer_id", "window_start", "actual"]],
                           on="window_start", by="producer_id", direction="nearest",
                           tolerance=tolerance_s)
    return joined.dropna(subset=["actual", "point"])


def tier_errors(joined: pd.DataFrame) -> dict[str, float]:
    """Per tier: mean over producers of MAE / mean observed load."""
    if joined.empty:
        return {}
    scale = joined.groupby("producer_id")["actual"].mean().abs().clip(lower=1e-9)
    frame = joined.assign(err=(joined["point"] - joined["actual"]).abs())
    per = frame.groupby(["tier", "producer_id"])["err"].mean()
    per = per / scale.reindex(per.index.get_level_values("producer_id")).to_numpy()
    return {str(t): float(v) for t, v in per.groupby(level="tier").mean().items()}


def inverse_error_weights(errors: Mapping[str, float], current: Mapping[str, float] = DEFAULT_WEIGHTS,
                          floor: float = 1e-3) -> dict[str, float]:
    """Step 3 of the module doc: inverse-error shares of the evidenced tiers' weight mass."""
    evidenced = {t: e for t, e in errors.items() if t in current and math.isfinite(e)}
    if not evidenced:
        total = sum(current.values())
        return {t: w / total for t, w in current.items()}
    mass = sum(current[t] for t in evidenced) or 1.0
    inv = {t: 1.0 / max(e, floor) for t, e in evidenced.items()}
    inv_total = sum(inv.values())
    out = {t: (mass * inv[t] / inv_total if t in inv else w) for t, w in current.items()}
    total = sum(out.values())
    return {t: w / total for t, w in out.items()}


def combined_error(joined: pd.DataFrame, weights: Mapping[str, float]) -> float:
    """Scaled MAE of the engine's combination under ``weights`` (missing tiers renormalised)."""
    if joined.empty:
        return math.nan
    rows = []
    for (pid, _), group in joined.groupby(["producer_id", "decision_id"], sort=False):
        tiers = {r.tier: TierPrediction(r.point, r.point, r.point) for r in group.itertuples()}
        c = combine(tiers, weights)
        if c is not None:
            rows.append((pid, abs(c.point - group["actual"].iloc[0]), group["actual"].iloc[0]))
    if not rows:
        return math.nan
    frame = pd.DataFrame(rows, columns=["producer_id", "err", "actual"])
    g = frame.groupby("producer_id")
    return float((g["err"].mean() / g["actual"].mean().abs().clip(lower=1e-9)).mean())


def validate_weights(weights: Mapping[str, float]) -> None:
    """Refuse weights that are not finite, negative, or do not sum to 1."""
    values = np.array(list(weights.values()), dtype=float)
    if values.size == 0 or not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"invalid weights {dict(weights)}")
    if abs(values.sum() - 1) > 1e-6:
        raise ValueError(f"weights must sum to 1, got {values.sum():.6f}")


@dataclass
class Recalibration:
    weights: dict[str, float]
    current: dict[str, float]
    train_errors: dict[str, float]
    eval_errors: dict[str, float]
    candidate_score: float
    current_score: float
    rows: int
    retrain: list[str] = field(default_factory=list)


def recalibrate(joined: pd.DataFrame, current: Mapping[str, float] = DEFAULT_WEIGHTS,
                eval_fraction: float = 0.25, drift_ratio: float = 1.5) -> Recalibration:
    """Fit weights on the earlier windows, score them and ``current`` on the last ones."""
    if joined.empty:
        raise ValueError("no logged prediction could be joined with observed load")
    windows = np.sort(joined["window_start"].unique())
    cut = windows[min(len(windows) - 1, int(len(windows) * (1 - eval_fraction)))]
    train, last = joined[joined["window_start"] < cut], joined[joined["window_start"] >= cut]
    if train.empty:
        train = joined
    train_err, eval_err = tier_errors(train), tier_errors(last)
    weights = inverse_error_weights(train_err, current)
    validate_weights(weights)
    retrain = sorted(t for t in eval_err
                     if t in train_err and eval_err[t] > drift_ratio * max(train_err[t], 1e-9))
    return Recalibration(weights, dict(current), train_err, eval_err,
                         combined_error(last, weights), combined_error(last, current),
                         len(joined), retrain)


# --- MLflow: the weights as a versioned, aliased artefact ---------------------------------

import mlflow.pyfunc  # noqa: E402


class WeightsPyfunc(mlflow.pyfunc.PythonModel):
    """The engine's tier weights as a registered model (predict returns them as one row)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)

    def predict(self, context, model_input=None, params=None):
        return pd.DataFrame([self.weights])


def log_and_register(result: Recalibration, name: str, experiment: str, params: dict) -> dict:
    """Log the run (errors, weights.json, pyfunc), register a version, alias it by merit."""
    import mlflow

    from leadtime.registry import decide_alias, use_experiment

    use_experiment(experiment)
    with mlflow.start_run(run_name="recalibrate") as run:
        mlflow.log_params({**params, "method": "inverse_error", "rows": result.rows})
        mlflow.log_metrics({f"train_error.{t}": v for t, v in result.train_errors.items()})
        mlflow.log_metrics({f"eval_error.{t}": v for t, v in result.eval_errors.items()})
        mlflow.log_metrics({"candidate_error": result.candidate_score,
                            "current_error": result.current_score})
        mlflow.log_dict(result.weights, "weights.json")
        mlflow.set_tag("retrain", ",".join(result.retrain) or "none")
        info = mlflow.pyfunc.log_model(name="weights", python_model=WeightsPyfunc(result.weights),
                                       pip_requirements=["mlflow", "pandas"])
        version = mlflow.register_model(info.model_uri, name)
        # the registered version's run must carry weights.json (the engine reads it on reload)
        assert version.run_id == run.info.run_id
    promotion = decide_alias(name, str(version.version), result.candidate_score,
                             result.current_score if math.isfinite(result.current_score) else None,
                             "scaled_mae_last_window")
    return {"version": str(version.version), "promoted": promotion.promoted,
            "reason": promotion.reason, "run_id": run.info.run_id}
