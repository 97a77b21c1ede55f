"""Prefect flow ``intent-retrain``: validate -> training set from Feast -> train -> evaluate ->
register / promote -> materialise the online features the served model reads."""

from __future__ import annotations

from prefect import flow, task

from leadtime.settings import Settings, get_settings
from models.tier2.intent import IntentConfig


@task(name="validate-requests")
def validate_requests(path: str):
    from models.tier2.train import load

    return load(path)


@task(name="train-evaluate")
def train_evaluate(settings: Settings, trace, config: IntentConfig):
    from models.tier2.train import train_and_evaluate

    return train_and_evaluate(settings, trace, config)


@task(name="register-promote")
def register_promote(result, settings: Settings):
    from models.tier2.train import register

    return register(result, settings)


@task(name="feast-materialize")
def materialize_online(repo) -> str:
    from features.store import materialize

    return str(materialize(repo))


@flow(name="intent-retrain")
def intent_retrain(requests: str, settings: Settings | None = None,
                   config: IntentConfig | None = None) -> dict:
    settings = (settings or get_settings()).prepare()
    trace = validate_requests(requests)
    result = train_evaluate(settings, trace, config or IntentConfig())
    registered = register_promote(result, settings)
    until = materialize_online(result.ingested.repo)
    from models.tier2.train import holdout_report

    return {
        "version": registered.version,
        "promoted": registered.promotion.promoted,
        "reason": registered.promotion.reason,
        "holdout": holdout_report(result),
        "materialized_until": until,
    }
