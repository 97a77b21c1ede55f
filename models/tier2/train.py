"""The intent pipeline as plain steps: features from Feast -> train -> evaluate (-> register).

``flows/intent.py`` wraps these steps as Prefect tasks; ``leadtime bench intent`` calls
:func:`run_bench` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from features.store import Ingested, historical_features, ingest
from leadtime.data import RequestTrace, read_request_trace
from leadtime.settings import Settings
from models.tier2.evaluate import Dataset, evaluate, fit_models, make_dataset
from models.tier2.intent import IntentConfig, IntentModel

TEST_SHARE = 0.2


@dataclass(frozen=True)
class Evaluated:
    trace: RequestTrace
    ingested: Ingested
    data: Dataset
    models: dict[str, IntentModel]
    report: dict


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
    meta = {"trace": trace.path.name, "unit": trace.schema.target_unit,
            "target": trace.schema.target}
    models = fit_models(data, config, **meta)
    return Evaluated(trace, ingested, data, models, evaluate(data, models))


def bench_json(result: Evaluated) -> dict:
    """The ``leadtime bench intent --json`` document."""
    data = result.data
    return {
        "trace": result.trace.path.name,
        "target": result.trace.schema.target,
        "unit": result.trace.schema.target_unit,
        "n_train": int(data.train.sum()),
        "n_test": int(data.test.sum()),
        "test_from": str(data.frame.loc[data.test, "event_timestamp"].min()),
        "intent_selection": result.models["intent"].meta.get("selection"),
        "models": result.report,
    }


def run_bench(settings: Settings, path: str | Path,
              config: IntentConfig | None = None) -> dict:
    return bench_json(train_and_evaluate(settings, load(path), config))


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
    params = {"trace": result.trace.path.name, "target": result.trace.schema.target,
              "n_train": str(int(data.train.sum())), "n_test": str(int(data.test.sum())),
              "features": ",".join(result.models["intent"].features)}
    return log_and_register(result.models["intent"], test, metrics, params, test, y_test,
                            experiment=settings.experiment)


def format_table(document: dict) -> str:
    """The evaluation table as text (one row per model, seen / new consumers below)."""
    cols = ("mae", "median_ae", "coverage_80", "interval_width", "bucket_accuracy")

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [(f"{document['trace']}: target {document['target']} ({document['unit']}), "
              f"train {document['n_train']} / test {document['n_test']} requests "
              f"(test from {document['test_from']})"),
             f"{'model':<22}" + "".join(f"{c:>16}" for c in cols)]
    for segment in (None, "seen_consumers", "new_consumers"):
        rows = []
        for name, entry in document["models"].items():
            values = entry if segment is None else entry.get(segment)
            if values is None:
                continue
            rows.append(f"{name:<22}" + "".join(f"{cell(values.get(c)):>16}" for c in cols))
        if rows:
            if segment:
                n = next(iter(document["models"].values()))[segment]["n"]
                lines.append(f"-- {segment.replace('_', ' ')} ({n} requests)")
            lines.extend(rows)
    lines.extend(_coverage_lines(document["models"]["intent"].get("coverage_by_group")))
    selection = document.get("intent_selection")
    if selection:
        scores = ", ".join(f"{name} {value:.3f}" for name, value in
                           selection["validation_mae"].items() if value is not None)
        lines.append(f"intent = {selection['selected']} (validation MAE on the latest "
                     f"{selection['validation_rows']} training requests, rolling-origin "
                     f"folds: {scores})")
    intent, per_type = document["models"]["intent"], document["models"]["per_type_median"]
    if intent["mae"] is not None and per_type["mae"]:
        lines.append(f"intent MAE / per-type median MAE = {intent['mae'] / per_type['mae']:.3f}")
    gaps = intent.get("mae_vs_baselines") or {}
    if gaps:
        lines.append("intent MAE - baseline MAE (paired bootstrap 95% CI): " + "; ".join(
            f"{name} {g['diff']:+.3f} [{g['ci95_low']:+.3f}, {g['ci95_high']:+.3f}]"
            for name, g in gaps.items()))
    return "\n".join(lines)


def _coverage_lines(groups: dict | None) -> list[str]:
    """The intent model's 80% coverage per calibration group, beside the overall one."""
    if not groups:
        return []

    def cell(label: str, entry: dict) -> str:
        if not entry["n"]:
            return f"{label} - (0)"
        return f"{label} {entry['coverage_80']:.3f} ({entry['n']})"

    lines = ["intent coverage_80 by group (requests): " + "; ".join(
        cell(label, groups[key]) for key, label in (("overall", "overall"),
                                                    ("seen_consumers", "seen"),
                                                    ("new_consumers", "new")))]
    lines.append("  by request type: " + "; ".join(
        cell(kind, entry) for kind, entry in groups["request_type"].items()))
    lines.append("  by seen/new x type: " + "; ".join(
        cell(key, entry) for key, entry in groups["consumer_request_type"].items()
        if entry["n"]))
    if "consumer_in_training" in groups:
        split = groups["consumer_in_training"]
        lines.append("  by consumer in the training period: " + "; ".join(
            cell(label, split[label]) for label in ("seen", "new")))
    return lines


def retrain(settings: Settings, path: str | Path, config: IntentConfig | None = None) -> dict:
    """The whole ``intent-retrain`` pipeline without Prefect (same steps as the flow)."""
    from features.store import materialize

    result = train_and_evaluate(settings, load(path), config)
    registered = register(result, settings)
    until = materialize(result.ingested.repo)
    return {"version": registered.version, "promoted": registered.promotion.promoted,
            "reason": registered.promotion.reason, "holdout": bench_json(result),
            "materialized_until": str(until)}
