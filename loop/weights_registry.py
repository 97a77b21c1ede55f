"""The engine's tier weights in MLflow: validated (Great Expectations), versioned, aliased.

Kept apart from :mod:`loop.recalibrate` so the method (used by the simulator on every
simulated day) does not import MLflow or Great Expectations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import mlflow.pyfunc
import pandas as pd

from loop.recalibrate import Recalibration


def weights_checks():
    """The Great Expectations rules a weights candidate must pass before it is logged."""
    from leadtime.validation import Check

    return [
        Check.regex("tier", r"^tier[123]$", "is not one of tier1, tier2, tier3"),
        Check.at_least("weight", 0.0, "is negative or not a number"),
        Check.is_true("finite", "weight", "is not a finite number"),
        Check.is_true("sums_to_one", "weight", "does not sum to 1 with the other weights"),
    ]


def validate_weights_gx(weights: Mapping[str, float], source: str = "weights candidate") -> None:
    """Refuse (``TraceError``, naming the tier) weights that are unknown, negative, not finite
    or do not sum to 1, with one Great Expectations suite."""
    from leadtime.validation import validate

    frame = pd.DataFrame({"tier": list(weights), "weight": [float(v) for v in weights.values()]})
    total = float(frame["weight"].sum())
    frame["finite"] = frame["weight"].map(math.isfinite)
    frame["sums_to_one"] = abs(total - 1.0) <= 1e-6
    validate(source, frame, weights_checks())




class WeightsPyfunc(mlflow.pyfunc.PythonModel):
    """The engine's tier weights as a registered model (predict returns them as one row)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)

    def predict(self, context, model_input=None, params=None):
        return pd.DataFrame([self.weights])


def log_and_register(result: Recalibration, name: str, experiment: str, params: dict) -> dict:
    """Log the run (errors, weights.json, a plot, the pyfunc), register a version, alias it by
    merit; the version's description shows both weight sets and their errors side by side."""
    import tempfile
    from pathlib import Path

    import mlflow

    from models.registry import Review, decide_alias, use_experiment

    use_experiment(experiment)
    with mlflow.start_run(run_name="recalibrate") as run:
        mlflow.log_params({**params, "method": "inverse_error", "rows": result.rows})
        mlflow.log_metrics({f"train_error.{t}": v for t, v in result.train_errors.items()})
        mlflow.log_metrics({f"eval_error.{t}": v for t, v in result.eval_errors.items()})
        mlflow.log_metrics({"candidate_error": result.candidate_score,
                            "current_error": result.current_score})
        mlflow.log_dict(result.weights, "weights.json")
        mlflow.set_tag("retrain", ",".join(result.retrain) or "none")
        with tempfile.TemporaryDirectory() as tmp:
            plot = plot_weights(result, Path(tmp) / "weights.png")
            mlflow.log_artifact(str(plot), artifact_path="plots")
        info = mlflow.pyfunc.log_model(name="weights", python_model=WeightsPyfunc(result.weights),
                                       pip_requirements=["mlflow", "pandas"])
        version = mlflow.register_model(info.model_uri, name)
        # the registered version's run must carry weights.json (the engine reads it on reload)
        assert version.run_id == run.info.run_id
    tiers = sorted(set(result.weights) | set(result.current))
    review = Review(
        scores={f"weight of {t}": (result.weights.get(t), result.current.get(t)) for t in tiers},
        run_id=run.info.run_id, experiment_id=run.info.experiment_id,
        artifacts=("weights.json", "plots/weights.png"),
        notes=(f"Both weight sets are scored on the same last windows ({result.rows} joined "
               "predictions in all); the champion column is the weights in use.",
               "Scaled MAE per tier on those windows: "
               + ", ".join(f"{t} {v:.3f}" for t, v in sorted(result.eval_errors.items())) + ".",
               f"Tiers to retrain (error drifted): {', '.join(result.retrain) or 'none'}."))
    promotion = decide_alias(name, str(version.version), result.candidate_score,
                             result.current_score if math.isfinite(result.current_score) else None,
                             "scaled_mae_last_window", review=review)
    return {"version": str(version.version), "promoted": promotion.promoted,
            "reason": promotion.reason, "run_id": run.info.run_id}


def plot_weights(result: Recalibration, path):
    """Candidate and current weights per tier, beside each tier's error: one PNG a reviewer reads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tiers = sorted(set(result.weights) | set(result.current))
    x = np.arange(len(tiers))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.bar(x - 0.2, [result.current.get(t, 0.0) for t in tiers], 0.4, label="current")
    left.bar(x + 0.2, [result.weights.get(t, 0.0) for t in tiers], 0.4, label="candidate")
    left.set_xticks(x, tiers)
    left.set_title("tier weights")
    left.legend(fontsize=8)
    right.bar(x - 0.2, [result.train_errors.get(t, np.nan) for t in tiers], 0.4, label="fit windows")
    right.bar(x + 0.2, [result.eval_errors.get(t, np.nan) for t in tiers], 0.4, label="last windows")
    right.set_xticks(x, tiers)
    right.set_title("scaled MAE per tier (lower is better)")
    right.legend(fontsize=8)
    fig.suptitle(f"candidate {result.candidate_score:.3f} vs current {result.current_score:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def load_weights(name: str) -> tuple[dict[str, float], str]:
    """Tier weights of the ``leadtime-weights`` champion (its run's ``weights.json``)."""
    import json

    import mlflow

    from models.registry import champion_version

    version = champion_version(name)
    if version is None:
        raise LookupError(f"no champion of {name!r} yet (recalibrate has not promoted weights)")
    path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="weights.json")
    with open(path) as handle:
        weights = {k: float(v) for k, v in json.load(handle).items()}
    return weights, str(version.version)
