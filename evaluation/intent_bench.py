"""``leadtime bench intent``: the intent model against its baselines on a request trace.

Trains on the earlier part of the trace and scores on the rest (:func:`models.tier2.train.
train_and_evaluate`, the flow's own steps), then prints MAE, interval coverage and width per
model, for seen and new consumers.
"""

from __future__ import annotations

from pathlib import Path

from leadtime.settings import Settings
from models.tier2.intent import IntentConfig
from models.tier2.train import holdout_report, load, train_and_evaluate


def run_bench(settings: Settings, path: str | Path,
              config: IntentConfig | None = None) -> dict:
    return holdout_report(train_and_evaluate(settings, load(path), config))


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
             *(f"no {name} column: {meaning}"
               for name, meaning in (document.get("missing_columns") or {}).items()),
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
    intent = document["models"]["intent"]
    static = intent.get("as_calibrated")
    if static and static["coverage_80"] is not None:
        median = intent["median_interval_width"]
        lines.append(f"  intent's intervals as calibrated, not recalibrated online: coverage_80 "
                     f"{static['coverage_80']:.3f}, width {static['interval_width']:.3f} (median "
                     f"{median['as_calibrated']:.3f}; recalibrated {median['recalibrated']:.3f}); "
                     "catboost_plain's are not recalibrated")
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
    lines.extend(_resource_lines(document.get("resources") or {}))
    return "\n".join(lines)


def _resource_lines(resources: dict) -> list[str]:
    """Each declared resource's model beside its baselines on the same holdout."""
    lines = []
    for name, entry in resources.items():
        intent = entry["intent"]
        unit = f" ({entry['unit']})" if entry.get("unit") else ""
        chosen = (intent.get("selection") or {}).get("selected", "-")
        lines.append(f"resource {name}{unit}: intent ({chosen}) MAE {intent['mae']:.3f}, "
                     f"coverage_80 {intent['coverage_80']:.3f}, width "
                     f"{intent['interval_width']:.3f}; MAE of " + ", ".join(
                         f"{base} {entry[base]['mae']:.3f}" for base in
                         ("global_median", "per_type_median", "per_consumer_median")
                         if entry.get(base)))
        lines.extend("  " + line for line in _coverage_lines(intent.get("coverage_by_group"))[:2])
    return lines


def _coverage_lines(groups: dict | None) -> list[str]:
    """The intent model's 80% coverage per calibration group, beside the overall one."""
    if not groups:
        return []

    def cell(label: str, entry: dict) -> str:
        if not entry["n"]:
            return f"{label} - (0)"
        return f"{label} {entry['coverage_80']:.3f} ({entry['n']})"

    lines = ["intent coverage_80 by group (requests; intervals recalibrated online as requests "
             "finish): " + "; ".join(
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
