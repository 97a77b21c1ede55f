"""The intent pipeline as plain steps: features from Feast -> train -> evaluate (-> register).

``flows/intent.py`` wraps these steps as Prefect tasks; ``leadtime bench intent``
(``evaluation.intent_bench``) runs the first two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from features.store import Ingested, historical_features, ingest
from leadtime.data import RequestTrace, read_request_trace
from leadtime.settings import Settings
from models.tier2.evaluate import (
    Dataset,
    evaluate,
    evaluate_resources,
    fit_models,
    fit_resource_models,
    make_dataset,
)
from models.tier2.intent import IntentConfig, IntentModel

TEST_SHARE = 0.2


@dataclass(frozen=True)
class Evaluated:
    trace: RequestTrace
    ingested: Ingested
    data: Dataset
    models: dict[str, IntentModel]
    report: dict
    resources: dict = field(default_factory=dict)  # per declared resource: its holdout scores


def load(path: str | Path) -> RequestTrace:
    """Read and validate (Great Expectations) a request trace and its schema."""
    return read_request_trace(path)


def training_set(settings: Settings, trace: RequestTrace,
                 config: IntentConfig | None = None) -> tuple[Ingested, Dataset]:
    """Feast apply + point-in-time correct features for every request, split by time."""
    config = config or IntentConfig()
    ingested = ingest(settings, trace, feedback_delay=config.feedback_delay_seconds)
    features = historical_features(ingested.repo, ingested.requests.frame)
    return ingested, make_dataset(ingested.requests, features, TEST_SHARE)


def train_and_evaluate(settings: Settings, trace: RequestTrace,
                       config: IntentConfig | None = None) -> Evaluated:
    config = config or IntentConfig()
    ingested, data = training_set(settings, trace, config)
    models = fit_models(data, config, trace=trace.path.name, unit=trace.schema.target_unit,
                        target=trace.schema.target)
    resources = fit_resource_models(data, config, trace.schema.resource_units,
                                    trace=trace.path.name)
    if resources:  # the target's model carries each resource's
        models["intent"] = replace(models["intent"], resources=resources)
    return Evaluated(trace, ingested, data, models, evaluate(data, models),
                     evaluate_resources(data, models["intent"]))


def holdout_report(result: Evaluated) -> dict:
    """The holdout scores of an intent fit, as the flow reports them and ``leadtime bench intent
    --json`` prints them."""
    data = result.data
    return {
        "trace": result.trace.path.name,
        "target": result.trace.schema.target,
        "unit": result.trace.schema.target_unit,
        "n_train": int(data.train.sum()),
        "n_test": int(data.test.sum()),
        "test_from": str(data.frame.loc[data.test, "event_timestamp"].min()),
        "intent_selection": result.models["intent"].meta.get("selection"),
        "missing_columns": missing_columns(result.trace.frame.columns),
        "models": result.report,
        **({"resources": result.resources} if result.resources else {}),
    }


#: The input contract's optional request columns, and what the intent model does without each.
OPTIONAL_COLUMNS = {
    "consumer_id": "every request counts as a new consumer's: no consumer profile, and the "
                   "per-consumer baseline is the global median",
    "request_type": "every request is of one type, 'default': the per-type baseline is the "
                    "global median",
    "producer_id": "the trace is one producer's",
}


def missing_columns(columns: Iterable[str]) -> dict[str, str]:
    """The input contract's optional columns (``consumer_id``, ``request_type``,
    ``producer_id``) a trace lacks, each with what the intent model does without it.

    >>> list(missing_columns(["timestamp", "consumer_id", "demand"]))
    ['request_type', 'producer_id']
    """
    present = set(columns)
    return {name: meaning for name, meaning in OPTIONAL_COLUMNS.items() if name not in present}


def register(result: Evaluated, settings: Settings):
    """Register the intent model (trained on the training part) and move the aliases."""
    from models.tier2.registry import log_and_register

    data = result.data
    test = data.frame[data.test]
    y_test = data.y[data.test].to_numpy(float)
    scores = result.report["intent"]
    metrics = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
    for name in ("per_type_median", "catboost_plain"):
        metrics[f"{name}_mae"] = result.report[name]["mae"]
    for name, entry in result.resources.items():  # each resource's own holdout scores
        for key in ("mae", "coverage_80", "interval_width"):
            metrics[f"{name}_{key}"] = entry["intent"][key]
    params = {"trace": result.trace.path.name, "target": result.trace.schema.target,
              "n_train": str(int(data.train.sum())), "n_test": str(int(data.test.sum())),
              "features": ",".join(result.models["intent"].features)}
    return log_and_register(result.models["intent"], test, metrics, params, test, y_test,
                            experiment=settings.experiment)


def retrain(settings: Settings, path: str | Path, config: IntentConfig | None = None) -> dict:
    """The whole ``intent-retrain`` pipeline without Prefect (same steps as the flow)."""
    from features.store import materialize

    result = train_and_evaluate(settings, load(path), config)
    registered = register(result, settings)
    until = materialize(result.ingested.repo)
    return {"version": registered.version, "promoted": registered.promotion.promoted,
            "reason": registered.promotion.reason, "holdout": holdout_report(result),
            "materialized_until": str(until)}
