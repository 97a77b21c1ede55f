"""MLflow registry helpers: aliases (never stages), one URI builder, one promotion rule."""

from __future__ import annotations

import math
from dataclasses import dataclass

CHAMPION = "champion"
CHALLENGER = "challenger"


def model_uri(name: str, alias: str = CHAMPION) -> str:
    """The one place that builds ``models:/<name>@<alias>``."""
    return f"models:/{name}@{alias}"


def artifact_location(experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store, inside the state folder.

    ``LEADTIME_MLFLOW_ARTIFACT_ROOT`` overrides it; with a tracking server (http/postgresql)
    the server decides (``None``). MLflow's own default would be ``./mlruns`` in the current
    directory, outside the state folder.
    """
    import mlflow

    from leadtime.settings import get_settings

    override = get_settings().mlflow_artifact_root
    if override:
        return f"{override.rstrip('/')}/{experiment}"
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / experiment).as_uri()
    return None


def use_experiment(name: str) -> None:
    """Make ``name`` the active experiment, creating it with :func:`artifact_location`."""
    import mlflow

    if client().get_experiment_by_name(name) is None:
        client().create_experiment(name, artifact_location=artifact_location(name))
    mlflow.set_experiment(name)


def client():
    from mlflow import MlflowClient

    return MlflowClient()


def champion_version(name: str):
    """The registry's champion ``ModelVersion`` for ``name``, or None if there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    promoted: bool
    candidate_score: float
    champion_score: float | None
    reason: str


def should_promote(candidate_score: float, champion_score: float | None) -> bool:
    """Lower is better. A candidate replaces the champion when it is no worse on the same backtest.

    Both scores must come from the same backtest (same data, same cut-offs): an equal score then
    means the same recipe, and the fresher fit wins. A non-finite candidate never wins.
    """
    if not math.isfinite(candidate_score):
        return False
    if champion_score is None or not math.isfinite(champion_score):
        return True
    return candidate_score <= champion_score


def decide_alias(
    name: str, version: str, candidate_score: float, champion_score: float | None, metric: str
) -> Promotion:
    """Move ``champion`` to ``version`` if it earns it; otherwise alias and tag it ``challenger``."""
    mlflow_client = client()
    promoted = should_promote(candidate_score, champion_score)
    if promoted:
        mlflow_client.set_registered_model_alias(name, CHAMPION, version)
        reason = (
            "first version" if champion_score is None
            else f"{metric} {candidate_score:.4f} <= champion's {champion_score:.4f} on the same backtest"
        )
    else:
        mlflow_client.set_registered_model_alias(name, CHALLENGER, version)
        reason = f"{metric} {candidate_score:.4f} > champion's {champion_score:.4f} on the same backtest"
    mlflow_client.set_model_version_tag(name, version, "role", CHAMPION if promoted else CHALLENGER)
    mlflow_client.set_model_version_tag(name, version, "promotion", reason)
    return Promotion(name, str(version), promoted, candidate_score, champion_score, reason)
