"""Prefect flow ``features-materialize``: validate a request trace, rebuild its Feast feature
tables (apply) and load the latest rows into the online store."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from leadtime.settings import Settings, get_settings


@task(name="validate-requests")
def validate_requests(path: str):
    from models.tier2.train import load

    return load(path)


@task(name="feast-apply")
def apply_features(settings: Settings, trace, feedback_delay_seconds: float | None = None):
    from features.store import ingest

    return ingest(settings, trace, feedback_delay=feedback_delay_seconds)


@task(name="feast-materialize")
def materialize_online(repo: Path) -> str:
    from features.store import materialize

    return str(materialize(repo))


@flow(name="features-materialize")
def features_materialize(requests: str, settings: Settings | None = None,
                         feedback_delay_seconds: float | None = None) -> dict:
    """Validate -> compute feature tables -> feast apply -> materialise to the online store.

    Feature rows are stamped when each request's demand was known (completion for a duration
    target, arrival + ``feedback_delay_seconds``, default 60 s, otherwise), so the online store
    holds only what was known at the materialisation time.
    """
    settings = (settings or get_settings()).prepare()
    trace = validate_requests(requests)
    ingested = apply_features(settings, trace, feedback_delay_seconds)
    until = materialize_online(ingested.repo)
    return {"repo": str(ingested.repo), "rows": ingested.rows, "materialized_until": until}
