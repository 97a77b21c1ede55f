"""MLflow registry helpers: aliases (never stages), one URI builder, one promotion rule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

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
    metric: str, review: Review | None = None,
) -> Promotion:
    """Move ``champion`` to ``version`` if it earns it; otherwise alias and tag it ``challenger``.

    The tags and the version's description (:func:`review_description`, what a reviewer reads in
    the MLflow UI) are written first and the alias last: the alias is the commit point, so a
    failure part-way leaves the aliases as they were and a retry can simply run this again.
    """
    mlflow_client = client()
    promoted = _finite(candidate_score) and should_promote(candidate_score, champion_score)
    reason = promotion_reason(candidate_score, champion_score, metric, promoted)
    previous = champion_version(name)
    previous = None if previous is None or str(previous.version) == str(version) else previous
    mlflow_client.set_model_version_tag(name, version, "role", CHAMPION if promoted else CHALLENGER)
    mlflow_client.set_model_version_tag(name, version, "promotion", reason)
    description = review_description(
        promoted=promoted, reason=reason, metric=metric, candidate_score=candidate_score,
        champion_score=champion_score,
        champion=str(previous.version) if previous is not None else None, review=review)
    mlflow_client.update_model_version(name, version, description=description)
    mlflow_client.set_registered_model_alias(name, CHAMPION if promoted else CHALLENGER, version)
    return Promotion(name, str(version), promoted, candidate_score, champion_score, reason)


# --- what a reviewer reads ---------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    """What a version's description shows beyond the deciding score.

    ``scores``: more rows of the score table, ``label -> (this version, champion)`` (None where
    not measured); ``run_id``: the tracking run that made the version; ``artifacts``: paths of
    that run's plots and tables; ``notes``: one line each (the data, the recipe).
    """

    scores: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    run_id: str | None = None
    experiment_id: str | None = None
    artifacts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _cell(value: float | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def review_description(*, promoted: bool, reason: str, metric: str,
                       candidate_score: float | None, champion_score: float | None,
                       champion: str | None, review: Review | None = None) -> str:
    """The version's description (Markdown, shown on its page in the MLflow UI).

    It says the outcome, why, the scores against the champion's on the same data, the run that
    made the version and where its plots are, so a reviewer need not open anything else to
    judge the promotion.
    """
    review = review or Review()
    champion_label = f"champion (v{champion})" if champion else "champion"
    if promoted:
        outcome = (f"**Promoted to champion** (replaces v{champion})." if champion
                   else "**Promoted to champion** (the first version with a finite score).")
    else:
        outcome = (f"**Kept as challenger**: the champion v{champion} stays." if champion
                   else "**Kept as challenger**.")
    lines = [outcome, "", f"Why: {reason}.", "",
             f"| score (lower is better for the first) | this version | {champion_label} |",
             "|---|---:|---:|",
             f"| **{metric}** (decides) | {_cell(candidate_score)} | {_cell(champion_score)} |"]
    for label, (mine, theirs) in review.scores.items():
        lines.append(f"| {label} | {_cell(mine)} | {_cell(theirs)} |")
    lines.append("")
    for note in review.notes:
        lines.append(f"- {note}")
    if review.run_id:
        where = (f"#/experiments/{review.experiment_id}/runs/{review.run_id}"
                 if review.experiment_id else None)
        run = f"[{review.run_id}]({where})" if where else f"`{review.run_id}`"
        lines.append(f"- Made by run {run}.")
        for path in review.artifacts:
            link = f"[{path}]({where}/artifacts/{path})" if where else f"`{path}`"
            lines.append(f"- Artifact: {link}")
    return "\n".join(lines).rstrip() + "\n"


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
