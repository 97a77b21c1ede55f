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


def _finite(score: float | None) -> bool:
    return score is not None and math.isfinite(score)


def promotion_reason(candidate_score: float | None, champion_score: float | None, metric: str,
                     promoted: bool) -> str:
    """Why the candidate was (not) promoted; a missing or NaN score is named, never formatted."""
    if not _finite(candidate_score):
        return f"no finite {metric} for the candidate ({candidate_score}): not promoted"
    if champion_score is None:
        return "first version"
    if not _finite(champion_score):
        return f"the champion has no finite {metric} ({champion_score}) on this backtest"
    sign = "<=" if promoted else ">"
    return (f"{metric} {candidate_score:.4f} {sign} champion's {champion_score:.4f} "
            "on the same backtest")


def decide_alias(
    name: str, version: str, candidate_score: float | None, champion_score: float | None,
    metric: str,
) -> Promotion:
    """Move ``champion`` to ``version`` if it earns it; otherwise alias and tag it ``challenger``.

    The tags are written first and the alias last: the alias is the commit point, so a failure
    part-way leaves the aliases as they were and a retry can simply run this again.
    """
    mlflow_client = client()
    promoted = _finite(candidate_score) and should_promote(candidate_score, champion_score)
    reason = promotion_reason(candidate_score, champion_score, metric, promoted)
    mlflow_client.set_model_version_tag(name, version, "role", CHAMPION if promoted else CHALLENGER)
    mlflow_client.set_model_version_tag(name, version, "promotion", reason)
    mlflow_client.set_registered_model_alias(name, CHAMPION if promoted else CHALLENGER, version)
    return Promotion(name, str(version), promoted, candidate_score, champion_score, reason)


# --- one flow run, at most one version -----------------------------------------------------

FLOW_RUN_TAG = "flow_run_id"


def versions_of_flow_run(name: str, flow_run_id: str) -> list:
    """The versions of ``name`` registered by the flow run ``flow_run_id`` (oldest first)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client().search_model_versions(
            f"name = '{name}' and tags.{FLOW_RUN_TAG} = '{flow_run_id}'"
        )
    except MlflowException:  # no such registered model yet
        return []
    return sorted(found, key=lambda v: int(v.version))


def alias_snapshot(name: str) -> dict[str, str | None]:
    """The versions ``champion`` and ``challenger`` point at now (None: unset)."""
    from mlflow.exceptions import MlflowException

    snapshot: dict[str, str | None] = {}
    for alias in (CHAMPION, CHALLENGER):
        try:
            snapshot[alias] = str(client().get_model_version_by_alias(name, alias).version)
        except MlflowException:
            snapshot[alias] = None
    return snapshot


def discard_flow_run(name: str, flow_run_id: str, aliases: dict[str, str | None]) -> list[str]:
    """Undo a failed flow run's registration: delete its versions, put the aliases back.

    ``aliases`` is the :func:`alias_snapshot` taken before the run registered anything. Returns
    the deleted versions. The tracking run stays (it records what was tried).
    """
    mlflow_client = client()
    deleted = []
    for version in versions_of_flow_run(name, flow_run_id):
        mlflow_client.delete_model_version(name, version.version)  # drops its aliases too
        deleted.append(str(version.version))
    now = alias_snapshot(name) if deleted else aliases
    for alias, version in aliases.items():
        if version is not None and now.get(alias) != version:
            mlflow_client.set_registered_model_alias(name, alias, version)
    return deleted
