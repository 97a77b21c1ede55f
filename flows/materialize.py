"""Prefect flow ``features-materialize``: validate a request trace, rebuild its Feast feature
tables (apply) and load the latest rows into the online store."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from leadtime.settings import Settings, get_settings


@task(name="validate-requests")
def validate_requests(path: str):
    from models.intent_train import load

    return load(path)


@task(name="feast-apply")
def apply_features(settings: Settings, trace):
    from features.store import ingest

    return ingest(settings, trace)


@task(name="feast-materialize")
def materialize_online(repo: Path) -> str:
    from features.store import materialize

    return str(materialize(repo))


@flow(name="features-materialize")
def features_materialize(requests: str, settings: Settings | None = None) -> dict:
    """Validate -> compute feature tables -> feast apply -> materialise to the online store."""
    settings = (settings or get_settings()).prepare()
    trace = validate_requests(requests)
    ingested = apply_features(settings, trace)
    until = materialize_online(ingested.repo)
    return {"repo": str(ingested.repo), "rows": ingested.rows, "materialized_until": until}
