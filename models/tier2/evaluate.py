"""Time-based holdout evaluation of the intent model side by side with its baselines.

Train on the earlier ``1 - test_share`` of the requests, test on the later part. Every model
sees, for each request, only what Feast's point-in-time join gives it (requests whose demand
was known before it arrived: completed ones, see ``features.profiles.known_at``). Baselines:
global median, per-request-type median, per-consumer median (the consumer's median over its
earlier completed requests; the type's median for a new consumer) and a
plain CatBoost on the request's own fields (no history features), trained, calibrated and
scored the same way as the intent model.

Which model *is* the intent model is decided inside the training period, never on the holdout:
four candidates are scored (MAE) on the rolling-origin calibration windows of
:func:`models.tier2.intent.fit_intent` (each window predicted by a fit on the requests before it; by
default the latest 40% of the training period in two windows): CatBoost on request fields +
Feast history features, CatBoost on the request fields alone, the per-type median by size bucket
(a quantile table per request type and decile of the numeric field most related to demand, by
Spearman on the training part: Resource Central's bucketing) and the per-type median (a quantile
table). The best one is refitted on the whole training period and becomes ``intent``.
On a trace whose request-time information does not predict demand (Azure's generated tokens),
the median wins and the intent model says so instead of adding noise.

Every candidate's interval is calibrated per (seen / new consumer) x request type
(:func:`models.tier2.intent.group_offsets`). "Seen" is ``consumer_known``, the flag the feature
store gives the request (history for its consumer at arrival), as at serving; the holdout's
seen / new split and :func:`coverage_by_group` use the same flag, so the groups the interval
is calibrated for are the groups it is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.profiles import RequestFrame
from models.tier2.intent import IntentConfig, IntentModel, fit_intent

HISTORY_PREFIXES = ("c_", "ct_", "p_", "pop_", "popt_")
GROUP_COLUMN = "consumer_known"  # seen (1) / new (0) consumer, as serving decides it
TYPE_COLUMN = "request_type"
BASELINES = ("global_median", "per_type_median", "per_consumer_median", "catboost_plain")


@dataclass(frozen=True)
class Dataset:
    """Requests with their point-in-time features, split by time."""

    frame: pd.DataFrame  # canonical request columns + feature columns
    y: pd.Series
    train: np.ndarray  # boolean masks
    test: np.ndarray
    requests: RequestFrame
    feature_names: list[str]


def make_dataset(requests: RequestFrame, features: pd.DataFrame, test_share: float = 0.2) -> Dataset:
    """Join requests with their features and mark the later ``test_share`` as the holdout."""
    frame = pd.concat([requests.frame.reset_index(drop=True), features.reset_index(drop=True)],
                      axis=1)
    n_test = round(len(frame) * test_share)
    test = np.zeros(len(frame), dtype=bool)
    test[len(frame) - n_test:] = True
    return Dataset(frame, frame["y"], ~test, test, requests, list(features.columns))


def request_columns(requests: RequestFrame) -> tuple[list[str], list[str]]:
    """The request's own fields a model may use: categoricals (never the consumer id) + numerics."""
    frame = requests.frame
    cats = ["request_type"] + (["producer_id"] if requests.has_producer else [])
    extra = [c for c in frame.columns
             if c not in ("event_timestamp", "consumer_id", "producer_id", "request_type", "y")
             and c not in requests.numeric]
    return cats + extra, list(requests.numeric)


def intent_columns(data: Dataset) -> tuple[list[str], list[str]]:
    """Request fields plus every history feature from Feast."""
    cats, numeric = request_columns(data.requests)
    history = [c for c in data.feature_names if c != "c_profile_class"]
    return [*cats, "c_profile_class"], numeric + history


CANDIDATES = ("history", "request_fields", "per_type_median", "size_bucket_median")  # order on ties


def size_column(frame: pd.DataFrame, y: pd.Series, numeric: list[str]) -> str | None:
    """The request's numeric field most related to demand (|Spearman| on the given rows)."""
    best, best_rho = None, 0.0
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce") if col in frame.columns else None
        if values is None or values.nunique() < 2:
            continue
        rho = values.corr(pd.Series(np.asarray(y, dtype=float), index=frame.index),
                          method="spearman")
        if np.isfinite(rho) and abs(rho) > best_rho:
            best, best_rho = col, abs(rho)
    return best


def fit_models(data: Dataset, config: IntentConfig | None = None, **meta
               ) -> dict[str, IntentModel]:
    """The intent model and the plain CatBoost, trained on the training part only.

    The intent model is the candidate with the lowest validation MAE (see the module doc).
    """
    config = config or IntentConfig()
    train = data.frame[data.train]
    y = data.y[data.train]
    cats, numeric = intent_columns(data)
    pcats, pnumeric = request_columns(data.requests)
    ranges = {c: [float(train[c].min()), float(train[c].max())] for c in pnumeric
              if c in train and train[c].notna().any()}
    meta = {**meta, "request_categorical": pcats, "request_numeric": pnumeric,
            "request_ranges": ranges}  # serving refuses negatives where training had none
    groups = {"group_column": GROUP_COLUMN, "type_column": TYPE_COLUMN}
    history = fit_intent(train, y, cats + numeric, cats, config, **groups, **meta)
    plain = fit_intent(train, y, pcats + pnumeric, pcats, config, **groups, **meta)
    median = fit_intent(train, y, ["request_type"], ["request_type"], config,
                        kind="table", **groups, **meta)
    candidates = {"history": history, "request_fields": plain, "per_type_median": median}
    size = size_column(train, y, pnumeric)
    if size is not None:
        candidates["size_bucket_median"] = fit_intent(
            train, y, ["request_type", size], ["request_type"], config, kind="table",
            **groups, **meta)
    scores = {name: model.meta.get("validation_mae") for name, model in candidates.items()}
    usable = [name for name in CANDIDATES if scores.get(name) is not None]
    chosen = min(usable, key=lambda name: scores[name]) if usable else "history"
    selection = {"selected": chosen, "validation_mae": scores,
                 "validation_rows": int(history.meta.get("n_calibration", 0))}
    intent = replace(candidates[chosen], meta={**candidates[chosen].meta,
                                               "selection": selection})
    return {"intent": intent, "catboost_plain": plain}


def fit_resource_models(data: Dataset, config: IntentConfig | None = None, units=None,
                        **meta) -> dict[str, IntentModel]:
    """Each declared resource's intent model (``data.requests.resources``): chosen, calibrated
    and refitted as :func:`fit_models` does the target's, on the same rows and features, with
    the resource's demand as the target (``units``: each resource's unit)."""
    resources = data.requests.resources
    if resources is None:
        return {}
    units = units or {}
    return {name: fit_models(for_resource(data, name), config,
                             **{**meta, "target": name, "unit": units.get(name, "")})["intent"]
            for name in resources.columns}


def for_resource(data: Dataset, name: str) -> Dataset:
    """``data`` with the resource's demand as its target ``y``."""
    return replace(data, y=pd.Series(data.requests.resources[name].to_numpy(float),
                                     index=data.frame.index, name=name))


def evaluate_resources(data: Dataset, model: IntentModel) -> dict:
    """Per declared resource: its model's holdout metrics beside the global and per-type
    medians', and its 80 % coverage per calibration group, as :func:`evaluate` scores the
    target's. (The per-consumer median is left out: the feature store profiles a consumer's
    target, not its resources.)"""
    out = {}
    for name, resource_model in model.resources.items():
        data_r = for_resource(data, name)
        test = data_r.frame[data_r.test]
        y = data_r.y[data_r.test].to_numpy(float)
        edges = np.quantile(data_r.y[data_r.train], [0.25, 0.5, 0.75])
        pred = resource_model.predict(test)
        point, lower, upper = (pred[c].to_numpy() for c in ("point", "lower", "upper"))
        entry = {base: metrics(y, p, None, None, edges)
                 for base, p in median_baselines(data_r).items()}
        entry["intent"] = metrics(y, point, lower, upper, edges)
        entry["intent"]["coverage_by_group"] = coverage_by_group(test, y, lower, upper)
        entry["intent"]["selection"] = resource_model.meta.get("selection")
        entry["unit"] = resource_model.unit
        out[name] = entry
    return out


def baseline_predictions(data: Dataset) -> dict[str, np.ndarray]:
    """Point predictions of the median baselines on the test part."""
    test = data.frame[data.test]
    medians = median_baselines(data)
    known = test["consumer_known"].to_numpy() > 0
    per_consumer = np.where(known, test["c_demand_p50"].to_numpy(float),
                            medians["per_type_median"])
    return {**medians, "per_consumer_median": per_consumer}


def median_baselines(data: Dataset) -> dict[str, np.ndarray]:
    """The global and the per-request-type median of the training part, on the test part."""
    train, test = data.frame[data.train], data.frame[data.test]
    y_train = data.y[data.train]
    global_median = float(y_train.median())
    type_median = y_train.groupby(train["request_type"]).median()
    per_type = test["request_type"].map(type_median).fillna(global_median).to_numpy(float)
    return {"global_median": np.full(len(test), global_median), "per_type_median": per_type}


def metrics(y: np.ndarray, point: np.ndarray, lower: np.ndarray | None,
            upper: np.ndarray | None, edges: np.ndarray) -> dict[str, float | None]:
    """MAE, median AE, 80% coverage and width (None without bounds), bucket accuracy."""
    if len(y) == 0:
        return {"n": 0, "mae": None, "median_ae": None, "coverage_80": None,
                "interval_width": None, "bucket_accuracy": None}
    err = np.abs(y - point)
    out: dict[str, float | None] = {
        "n": len(y), "mae": float(err.mean()), "median_ae": float(np.median(err)),
        "coverage_80": None, "interval_width": None,
    }
    if lower is not None and upper is not None:
        out["coverage_80"] = float(np.mean((y >= lower) & (y <= upper)))
        out["interval_width"] = float(np.mean(upper - lower))
    out["bucket_accuracy"] = float(np.mean(np.digitize(point, edges) == np.digitize(y, edges)))
    return out


def seen_mask(frame: pd.DataFrame) -> np.ndarray:
    """Seen consumers: ``consumer_known`` (feature-store history at arrival), as at serving."""
    if GROUP_COLUMN not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return pd.to_numeric(frame[GROUP_COLUMN], errors="coerce").fillna(0).to_numpy() > 0


def coverage_by_group(frame: pd.DataFrame, y: np.ndarray, lower: np.ndarray,
                      upper: np.ndarray, in_training: np.ndarray | None = None) -> dict:
    """80% coverage, width and count per calibration group of the holdout: seen / new
    consumers, each request type, and each (seen / new, type) cell. ``in_training`` (consumer
    present in the training period) adds that older, non-serving split for comparison."""
    def entry(mask: np.ndarray) -> dict:
        n = int(mask.sum())
        if not n:
            return {"n": 0, "coverage_80": None, "interval_width": None}
        inside = (y[mask] >= lower[mask]) & (y[mask] <= upper[mask])
        return {"n": n, "coverage_80": float(inside.mean()),
                "interval_width": float(np.mean(upper[mask] - lower[mask]))}

    seen = seen_mask(frame)
    types = frame[TYPE_COLUMN].astype(str).to_numpy()
    out: dict = {"overall": entry(np.ones(len(y), dtype=bool)),
                 "seen_consumers": entry(seen), "new_consumers": entry(~seen),
                 "request_type": {}, "consumer_request_type": {}}
    for kind in sorted(set(types)):
        out["request_type"][kind] = entry(types == kind)
        for label, mask in (("seen", seen), ("new", ~seen)):
            out["consumer_request_type"][f"{label}|{kind}"] = entry(mask & (types == kind))
    if in_training is not None:
        out["consumer_in_training"] = {"seen": entry(in_training), "new": entry(~in_training)}
    return out


def evaluate(data: Dataset, models: dict[str, IntentModel]) -> dict:
    """Every model's metrics on the holdout, overall and for seen / new consumers
    (:func:`seen_mask`); the intent model's coverage per calibration group too."""
    test = data.frame[data.test]
    y = data.y[data.test].to_numpy(float)
    edges = np.quantile(data.y[data.train], [0.25, 0.5, 0.75])
    predictions: dict[str, tuple] = {
        name: (point, None, None) for name, point in baseline_predictions(data).items()
    }
    for name, model in models.items():
        pred = model.predict(test)
        predictions[name] = (pred["point"].to_numpy(), pred["lower"].to_numpy(),
                             pred["upper"].to_numpy())
    static = predictions["intent"]
    predictions["intent"] = recalibrated(test, y, static, models["intent"], data.requests.unit)
    seen = seen_mask(test) if data.requests.has_consumer else None
    report: dict = {}
    for name in (*BASELINES, "intent"):
        point, lower, upper = predictions[name]
        entry = metrics(y, point, lower, upper, edges)
        if seen is not None:
            for label, mask in (("seen_consumers", seen), ("new_consumers", ~seen)):
                entry[label] = metrics(y[mask], point[mask],
                                       None if lower is None else lower[mask],
                                       None if upper is None else upper[mask], edges)
        report[name] = entry
    calibrated = metrics(y, *static, edges)
    report["intent"]["as_calibrated"] = {k: calibrated[k] for k in ("coverage_80",
                                                                    "interval_width")}
    widths = {"recalibrated": predictions["intent"][2] - predictions["intent"][1],
              "as_calibrated": static[2] - static[1]}
    report["intent"]["median_interval_width"] = {k: float(np.median(v)) if v.size else None
                                                 for k, v in widths.items()}
    _, lower, upper = predictions["intent"]
    in_training = (test["consumer_id"].isin(set(data.frame.loc[data.train, "consumer_id"]))
                   .to_numpy() if data.requests.has_consumer else None)
    report["intent"]["coverage_by_group"] = coverage_by_group(test, y, lower, upper,
                                                              in_training)
    intent_err = np.abs(y - predictions["intent"][0])
    report["intent"]["mae_vs_baselines"] = {
        name: paired_mae_difference(intent_err, np.abs(y - predictions[name][0]))
        for name in BASELINES}
    return report


def recalibrated(test: pd.DataFrame, y: np.ndarray, predicted: tuple, model: IntentModel,
                 unit: str) -> tuple:
    """The intent model's holdout intervals as a service recalibrating them online would serve
    them (:mod:`models.tier2.online_calibration`): each request's widened by the outcomes known
    before it arrived, a request's outcome known when the feature store knows it
    (:func:`features.profiles.known_at`)."""
    from features.profiles import known_at
    from models.tier2.online_calibration import recalibrated_intervals

    point, lower, upper = predicted
    arrivals = pd.to_datetime(test["event_timestamp"])
    known = known_at(test.assign(y=y), unit)
    seconds = [(t - arrivals.iloc[0]).dt.total_seconds() for t in (arrivals, known)]
    lo, hi = recalibrated_intervals(seconds[0].tolist(), seconds[1].tolist(),
                                    model.interval_keys(test), y.tolist(), point.tolist(),
                                    lower.tolist(), upper.tolist())
    return point, np.asarray(lo), np.asarray(hi)


def paired_mae_difference(errors: np.ndarray, baseline_errors: np.ndarray,
                          resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """``MAE(model) - MAE(baseline)`` on the same requests, with a paired bootstrap 95% interval
    (requests resampled with replacement): says whether a small gap is more than noise."""
    diff = np.asarray(errors, dtype=float) - np.asarray(baseline_errors, dtype=float)
    if not diff.size:
        return {"diff": float("nan"), "ci95_low": float("nan"), "ci95_high": float("nan")}
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, diff.size, diff.size)].mean()
                      for _ in range(resamples)])
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": float(diff.mean()), "ci95_low": float(low), "ci95_high": float(high)}
