"""The intent model in MLflow: a pyfunc with a signature, registered as ``leadtime-intent``.

Promotion uses the registry helpers (aliases, never stages): the champion is re-scored on the
candidate's holdout when both were trained on the same trace, so the two MAEs come from the
same data; a model of another trace has no comparable score and the candidate wins.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from models.registry import (
    Promotion,
    Review,
    champion_version,
    decide_alias,
    model_uri,
    use_experiment,
)
from models.tier2.intent import IntentModel, prepare

MODEL_NAME = "leadtime-intent"
ARTIFACT = "intent"


class IntentPyfunc(mlflow.pyfunc.PythonModel):
    """Input: the model's feature columns; output: point, lower, upper demand per row."""

    def load_context(self, context) -> None:
        self.model = IntentModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input)


@dataclass(frozen=True)
class Registered:
    run_id: str
    version: str
    promotion: Promotion


def load_pyfunc_model(uri: str) -> IntentModel:
    """The ``IntentModel`` inside a registered pyfunc (for fast in-process serving)."""
    pyfunc = mlflow.pyfunc.load_model(uri)
    return pyfunc.unwrap_python_model().model


def log_and_register(
    model: IntentModel,
    example: pd.DataFrame,
    metrics: dict[str, float],
    params: dict[str, str],
    holdout: pd.DataFrame,
    y_holdout: np.ndarray,
    name: str = MODEL_NAME,
    experiment: str = "leadtime",
) -> Registered:
    """Log the model as a pyfunc run, register a new version, move champion/challenger aliases."""
    from mlflow.models import infer_signature

    trace = str(model.meta.get("trace", ""))
    champion = champion_scores(name, trace, holdout, y_holdout)
    champion_score = champion.get("mae")
    use_experiment(experiment)
    example = prepare(example.head(5), model.features, model.categorical)
    if model.group_column and model.group_column not in example.columns:
        example[model.group_column] = "x"
    signature = infer_signature(example, model.predict(example))
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"intent-{trace}") as run:
        folder = model.save(Path(tmp) / ARTIFACT)
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v is not None})
        info = mlflow.pyfunc.log_model(
            name="model", python_model=IntentPyfunc(), artifacts={ARTIFACT: str(folder)},
            signature=signature, input_example=example, registered_model_name=name,
        )
        version = str(info.registered_model_version)
    from models.registry import client

    mlflow_client = client()
    mlflow_client.set_model_version_tag(name, version, "trace", trace)
    mlflow_client.set_model_version_tag(name, version, "holdout_mae", str(metrics["mae"]))
    review = Review(
        scores={"80 % coverage (target 0.80)": (metrics.get("coverage_80"),
                                                champion.get("coverage_80")),
                "80 % interval width": (metrics.get("interval_width"),
                                        champion.get("interval_width"))},
        run_id=run.info.run_id, experiment_id=run.info.experiment_id,
        notes=(f"Both columns are scored on this version's holdout of {trace or 'its trace'} "
               f"({len(y_holdout):,} requests); a champion of another trace has no column.",
               "Baselines on the same holdout, MAE: " + ", ".join(
                   f"{k.removesuffix('_mae')} {v:.4g}" for k, v in sorted(metrics.items())
                   if k.endswith("_mae") and v is not None) + "."))
    promotion = decide_alias(name, version, float(metrics["mae"]), champion_score, "holdout MAE",
                             review=review)
    return Registered(run.info.run_id, version, promotion)


def champion_scores(name: str, trace: str, holdout: pd.DataFrame, y: np.ndarray) -> dict:
    """The champion's MAE, 80 % coverage and width on this holdout; empty when there is no
    champion, or one of another trace (its scores are not comparable)."""
    champion = champion_version(name)
    if champion is None or champion.tags.get("trace") != trace:
        return {}
    try:
        model = load_pyfunc_model(model_uri(name))
        predicted = model.predict(holdout)
    except (KeyError, ValueError) as exc:  # features changed: the scores are not comparable
        print(f"champion cannot score this holdout ({exc}); promoting the candidate")
        return {}
    point, lower, upper = (predicted[c].to_numpy(float) for c in ("point", "lower", "upper"))
    return {"mae": float(np.mean(np.abs(y - point))),
            "coverage_80": float(np.mean((y >= lower) & (y <= upper))),
            "interval_width": float(np.mean(upper - lower))}
