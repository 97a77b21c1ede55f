"""Tier 2 intent model: a request's demand with a calibrated 80% interval.

One CatBoost model (categorical features native) learns the 10th, 50th and 90th percentiles of
``log1p(demand)`` with the ``MultiQuantile`` loss; the point prediction is the 50th percentile
(MAE is minimised by the conditional median). The interval is Mondrian split-conformal by group:
``median -/+ q`` in log1p space, ``q`` the group's quantile of ``|log1p(y) - median|`` scored by
models that had not seen the scored requests.

Interval around the median (``IntentConfig.interval="median"``, the default). The earlier scheme
(``"cqr"``, conformalised quantile regression: the booster's own 10-90% band widened by an
additive offset) assumed the band of the served model is the band the offset was measured on.
It is not: the offsets come from the fold fits and are added to the refitted booster's band,
and the raw band's width is a property of each fit more than of the requests. On Alibaba's
latest training window, the same requests got a band of 0.43 (seen) / 0.49 (new) log units
from the fit on the first 60% of the training period, 0.60 / 0.68 from the fit on the first
80%, 0.65 / 0.70 from the refit, while the width the 80% interval needed there stayed about
0.76-0.86. An additive offset measured on a narrow-band fold (+0.13 for new consumers) was
added to a wide-band refit: new consumers over-covered (86% on the holdout, 86% on an unseen HPC
trace), and inside the training period the same transfer gave 87% on the 80% fit's window. The
median's errors transfer across fits (they depend on the requests, not on how a fit spreads its
tail quantiles), so the score ignores the band. Models saved with ``"cqr"`` (before the key
existed: :meth:`IntentModel.load` defaults to it) keep predicting as they were calibrated.

Groups (:func:`group_offsets`): the consumer group (``group_column``, ``consumer_known``: whether
the feature store had history for the consumer when the request arrived, the flag serving
computes in :func:`features.online.fill_population_row`) crossed with the request type
(``type_column``). Seen and new consumers err very differently (one pooled offset left seen
consumers under-covered and new ones over-covered on the Alibaba trace), and so do request types.
A cell with fewer than ``MIN_GROUP`` calibration scores falls back to its consumer group, and a
consumer group with fewer to the pooled offset (key ``"*"``). The flag is the same in the
calibration windows, on the holdout and at serving: every row's ``consumer_known`` comes from
the point-in-time join (``c_n > 0``: a completed request of the consumer known before arrival),
never from the fold's fit set or the whole training period.

Rolling-origin calibration: the scores come from ``calibration_folds`` windows of
``calibration_share`` of the training period each (default 2 x 20%: fit on the first 60%, score
the next 20%; fit on the first 80%, score the last 20%), pooled. Under drift the error a model
makes on the requests that follow its training data changes from one period to the next; one
window measures a single period and its offset swings with it (on the Alibaba trace the single
latest window gave an offset well below what the next period needed), while pooling windows
averages over periods. Each window is at the same distance from its fit as the holdout is from
the served model.

Recency (``refit=True``, the default): after calibration the booster is refitted on the whole
training period with the same settings, and the offsets are kept. The calibration scores
measure the error of a model on the requests that follow its training data; the refitted model
faces the requests that follow *its* training data. Keeping the stale fit instead (plain split
conformal) makes the served model older than the one the offsets describe, and under drift it
under-covers. The same windows are the validation data on which :mod:`models.tier2.evaluate`
chooses the feature set; the holdout is never looked at.

Several resources (``resources:`` in the trace's schema, :class:`leadtime.data.RequestSchema`):
each declared resource (CPU, memory, network...) gets a model of its own, fitted, chosen and
calibrated exactly as the target's, on the same requests and features; they ride in the target's
model (:attr:`IntentModel.resources`, saved in its folder) and answer with it. One model per
target because CatBoost's quantile losses take one target (``MultiQuantile`` is several
quantiles of one target; its multi-target loss, ``MultiRMSE``, has no quantiles and so no
interval), and because each resource then chooses its own feature set: a request's memory may
follow its type where its run time follows the consumer.

Serving uses :meth:`IntentModel.predict_rows` (plain lists into CatBoost, no DataFrame): the
same numbers as :meth:`IntentModel.predict`, a fraction of the cost.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

META_FILE = "intent.json"
MODEL_FILE = "intent.cbm"
TABLE_FILE = "intent_table.json"
RESOURCES_DIR = "resources"  # a declared resource's model: <folder>/resources/<name>/


@dataclass(frozen=True)
class IntentConfig:
    """Training knobs; the defaults are used for every trace (never tuned to one)."""

    iterations: int = 600
    depth: int = 6
    learning_rate: float = 0.06
    alphas: tuple[float, float, float] = (0.1, 0.5, 0.9)
    calibration_share: float = 0.2  # size of each calibration window (share of training)
    calibration_folds: int = 2  # rolling-origin windows pooled for the offsets (see above)
    coverage: float = 0.8
    thread_count: int = 2
    seed: int = 0
    refit: bool = True  # refit on the whole training period once calibrated (see above)
    # the interval's conformity score: "median" (|log1p(y) - median|, the default; see
    # "Interval around the median" above) or "cqr" (the booster's 10-90% band widened by an
    # additive offset: the earlier scheme, kept so models saved with it load unchanged)
    interval: str = "median"
    # when a non-duration demand (tokens...) is known after arrival; durations are known at
    # arrival + demand (features.profiles.known_at). 60 s: see DEFAULT_FEEDBACK_DELAY.
    feedback_delay_seconds: float = 60.0


@dataclass
class IntentModel:
    """A fitted quantile CatBoost plus its conformal offsets (log1p space, per group)."""

    features: list[str]
    categorical: list[str]
    booster: object  # catboost.CatBoostRegressor
    offsets: dict[str, float]
    group_column: str | None = None  # e.g. consumer_known: new and known consumers differ
    type_column: str | None = None  # e.g. request_type: each group split further by type
    target: str = "demand"
    unit: str = ""
    meta: dict = field(default_factory=dict)
    interval: str = "cqr"  # what the offsets widen (see _bounds); saved before: "cqr"
    resources: dict[str, IntentModel] = field(default_factory=dict)  # per declared resource

    def predict_resources(self, rows: list[dict]) -> dict[str, list[tuple[float, float, float]]]:
        """Each declared resource's ``(point, lower, upper)`` per request dict, in its unit."""
        return {name: model.predict_rows(rows) for name, model in self.resources.items()}

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns ``point``, ``lower``, ``upper`` in the target's unit, one row per request."""
        raw = np.asarray(self.booster.predict(prepare(frame, self.features, self.categorical)))
        point, lower, upper = _bounds(raw.reshape(len(frame), -1), self.offset_for(frame),
                                      self.interval)
        out = pd.DataFrame({"point": point, "lower": lower, "upper": upper}, index=frame.index)
        for name, model in self.resources.items():  # a resource's as <name>_point...
            out = out.join(model.predict(frame).add_prefix(f"{name}_"))
        return out

    def predict_rows(self, rows: list[dict]) -> list[tuple[float, float, float]]:
        """``(point, lower, upper)`` per request dict: the serving fast path (no pandas).

        Same conversions as :func:`prepare` (categoricals as strings, missing as "unknown";
        numbers as floats, missing or malformed as NaN) and the same numbers as :meth:`predict`.
        """
        if not rows:
            return []
        cats = set(self.categorical)
        matrix = [[_category(row.get(col)) if col in cats else _float(row.get(col))
                   for col in self.features] for row in rows]
        raw = np.asarray(self.booster.predict(matrix)).reshape(len(rows), -1)
        point, lower, upper = _bounds(raw, self._offsets(*self._row_cells(rows)), self.interval)
        return list(zip(point.tolist(), lower.tolist(), upper.tolist(), strict=True))

    def offset_for(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's conformal offset: its cell's, else its group's, else the pooled one."""
        groups, types = row_groups(frame, self.group_column, self.type_column)
        return self._offsets(groups, types)

    def interval_keys(self, frame: pd.DataFrame) -> list[str]:
        """Each row's calibration key (:func:`lookup_key`): the offset its interval took."""
        return self._keys(*row_groups(frame, self.group_column, self.type_column))

    def row_keys(self, rows: list[dict]) -> list[str]:
        """:meth:`interval_keys` for request dicts (the serving path)."""
        return self._keys(*self._row_cells(rows))

    def _row_cells(self, rows: list[dict]) -> tuple[list[str], list[str | None]]:
        """Each request dict's consumer group and request type keys (:func:`row_groups`)."""
        groups = [_group_key(row.get(self.group_column)) if self.group_column else "*"
                  for row in rows]
        types = ([_category(row.get(self.type_column)) for row in rows] if self.type_column
                 else [None] * len(rows))
        return groups, types

    def _keys(self, groups: list[str], types: list[str | None]) -> list[str]:
        return [lookup_key(self.offsets, g, t) for g, t in zip(groups, types, strict=True)]

    def _offsets(self, groups: list[str], types: list[str | None]) -> np.ndarray:
        """The most specific calibrated offset per row (see :func:`lookup_offset`)."""
        return np.array([lookup_offset(self.offsets, g, t)
                         for g, t in zip(groups, types, strict=True)], dtype=float)

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table = isinstance(self.booster, QuantileTable)
        self.booster.save_model(str(folder / (TABLE_FILE if table else MODEL_FILE)))
        meta = {"booster": "table" if table else "catboost", "features": self.features, "categorical": self.categorical,
                "offsets": self.offsets, "group_column": self.group_column,
                "type_column": self.type_column, "target": self.target, "unit": self.unit,
                "interval": self.interval, **self.meta}
        if self.resources:
            meta["resources"] = sorted(self.resources)
            for name, model in self.resources.items():
                model.save(folder / RESOURCES_DIR / name)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: Path) -> IntentModel:
        from catboost import CatBoostRegressor

        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("booster") == "table":
            booster = QuantileTable.load(folder / TABLE_FILE)
        else:
            booster = CatBoostRegressor()
            booster.load_model(str(folder / MODEL_FILE))
        known = {"booster", "features", "categorical", "offsets", "group_column", "type_column",
                 "target", "unit", "interval", "resources"}
        return cls(meta["features"], meta["categorical"], booster,
                   {k: float(v) for k, v in meta["offsets"].items()}, meta.get("group_column"),
                   meta.get("type_column"), meta.get("target", "demand"), meta.get("unit", ""),
                   {k: v for k, v in meta.items() if k not in known},
                   meta.get("interval", "cqr"),  # saved without the key: the CQR scheme
                   {name: cls.load(folder / RESOURCES_DIR / name)
                    for name in meta.get("resources", [])})


INTERVALS = ("median", "cqr")


def _bounds(raw: np.ndarray, offset: np.ndarray, interval: str = "cqr"
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point, lower, upper in the target's unit from log1p quantiles and conformal offsets.

    ``interval="median"``: ``median -/+ offset`` (log1p space); ``"cqr"``: the booster's
    ``[q10 - offset, q90 + offset]``.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} is not one of {INTERVALS}")
    lo, mid, hi = np.sort(raw, axis=1).T  # quantiles can cross; order them
    if interval == "median":
        lo = hi = mid
    point = np.expm1(mid)
    lower = np.minimum(np.expm1(lo - offset), point)
    upper = np.maximum(np.expm1(hi + offset), point)
    return np.clip(point, 0, None), np.clip(lower, 0, None), np.clip(upper, 0, None)


def _category(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return str(value)


def _float(value) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _group_key(value) -> str:
    try:
        return str(int(float(value)))
    except (TypeError, ValueError, OverflowError):
        return str(value)


def group_keys(values: pd.Series) -> list[str]:
    """Group labels as strings (``1.0`` and ``1`` are the same group)."""
    return [_group_key(value) for value in values]


def prepare(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> pd.DataFrame:
    """The model's columns in order: categoricals as strings, the rest as floats."""
    out = pd.DataFrame(index=frame.index)
    for col in features:
        values = frame[col] if col in frame.columns else np.nan
        if col in categorical:
            out[col] = pd.Series(values, index=frame.index).fillna("unknown").astype(str)
        else:
            out[col] = pd.to_numeric(pd.Series(values, index=frame.index), errors="coerce")
    return out


# Calibration scores a group (or cell) needs for its own offset, fixed a priori: given its n
# calibration scores, a split-conformal interval's coverage is Beta(k, n + 1 - k) with
# k = ceil((n + 1) * 0.8), sd ~ sqrt(0.16 / (n + 2)): 4 pp at n = 100, 5.6 pp at n = 50. Below
# 100 the group's own offset is noisier than the few-point bias of its coarser group's offset.
MIN_GROUP = 100
CELL_SEP = "|"  # offsets key of a (group, type) cell: "1|TXT_2_IMG"


def cell_key(group: str, kind: str) -> str:
    return f"{group}{CELL_SEP}{kind}"


def lookup_offset(offsets: dict[str, float], group: str, kind: str | None) -> float:
    """The offset of the (group, type) cell, else of the group, else the pooled one ("*")."""
    return offsets.get(lookup_key(offsets, group, kind), 0.0)


def lookup_key(offsets: dict[str, float], group: str, kind: str | None) -> str:
    """The key whose offset a request of ``group`` and type ``kind`` takes: its cell's, else its
    group's, else the pooled "*" (the key online recalibration follows,
    :mod:`models.tier2.online_calibration`)."""
    if kind is not None:
        cell = cell_key(group, kind)
        if cell in offsets:
            return cell
    return group if group in offsets else "*"


def row_groups(frame: pd.DataFrame, group_column: str | None, type_column: str | None
               ) -> tuple[list[str], list[str | None]]:
    """Each row's consumer group and request type keys, as :meth:`IntentModel.predict_rows`
    derives them from request dicts (a missing column: one group "*", no type split)."""
    n = len(frame)
    groups = (group_keys(frame[group_column]) if group_column and group_column in frame.columns
              else ["*"] * n)
    types = ([_category(v) for v in frame[type_column]]
             if type_column and type_column in frame.columns else [None] * n)
    return groups, types


def group_offsets(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, groups: np.ndarray,
                  coverage: float, types: np.ndarray | None = None,
                  min_group: int = MIN_GROUP) -> dict[str, float]:
    """Mondrian CQR offsets: "*" pooled, one per group, one per (group, type) cell.

    Only groups and cells with at least ``min_group`` scores get a key; the others fall back
    at prediction time (:func:`lookup_offset`).
    """
    groups = np.asarray(groups).astype(str)
    offsets = {"*": conformal_offset(lo, hi, y, coverage)}
    for group in np.unique(groups):
        mask = groups == group
        if mask.sum() >= min_group:
            offsets[str(group)] = conformal_offset(lo[mask], hi[mask], y[mask], coverage)
    if types is not None:
        cells = np.array([cell_key(g, t) for g, t in zip(groups, np.asarray(types).astype(str),
                                                         strict=True)])
        for cell in np.unique(cells):
            mask = cells == cell
            if mask.sum() >= min_group:
                offsets[str(cell)] = conformal_offset(lo[mask], hi[mask], y[mask], coverage)
    return offsets


def conformal_offset(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, coverage: float) -> float:
    """Split-conformal (CQR) offset: how much to widen [lo, hi] to cover ``coverage``.

    The ceil((n + 1) * coverage)-th smallest of the n scores (the empirical quantile at level
    ceil((n + 1) * coverage) / n: the finite-sample correction), the largest when n is too small.
    """
    scores = np.sort(np.maximum(lo - y, y - hi))
    n = len(scores)
    if n == 0:
        return 0.0
    k = min(n, math.ceil((n + 1) * coverage))
    return float(scores[k - 1])


def calibration_windows(n: int, config: IntentConfig) -> list[tuple[int, int]]:
    """Rolling-origin calibration folds as ``(fit_end, window_end)`` row positions, oldest first.

    Fold ``j`` (``j = K..1``) fits on the first ``n - j * n_cal`` requests and is scored on the
    ``n_cal`` that follow, so the windows tile the latest ``K * calibration_share`` of the
    training period without overlapping. Folds whose fit would have fewer rows than its window
    are dropped (short training sets keep the latest fold only).
    """
    n_cal = round(n * config.calibration_share)
    if n_cal <= 0 or n_cal >= n:
        return []
    folds = []
    for j in range(max(1, config.calibration_folds), 0, -1):
        fit_end = n - j * n_cal
        if fit_end >= n_cal or j == 1:
            folds.append((fit_end, fit_end + n_cal))
    return folds


def fit_intent(
    frame: pd.DataFrame,
    y: pd.Series,
    features: list[str],
    categorical: list[str],
    config: IntentConfig = IntentConfig(),
    group_column: str | None = None,
    kind: str = "catboost",
    type_column: str | None = None,
    **meta,
) -> IntentModel:
    """Calibrate on rolling-origin folds of ``frame`` (time-ordered), then (``config.refit``)
    refit on all of it.

    Each fold (:func:`calibration_windows`) fits on the requests before its window and scores
    the window; the conformity scores of every fold are pooled into Mondrian CQR offsets per
    ``group_column`` value and per (group, ``type_column``) cell (:func:`group_offsets`), from
    the training period only. ``kind="table"`` fits a :class:`QuantileTable` on ``features[0]`` instead of CatBoost.
    ``model.meta["validation_mae"]`` is the MAE (target unit) of the fold fits on their windows
    (the latest ``calibration_folds * calibration_share`` of the training period): the score
    :func:`models.tier2.evaluate.fit_models` chooses feature sets by.
    """
    if config.interval not in INTERVALS:
        raise ValueError(f"interval {config.interval!r} is not one of {INTERVALS}")
    X = prepare(frame, features, categorical)
    y_all = np.asarray(y, dtype=float)
    target = np.log1p(y_all)
    cats = [c for c in categorical if c in features]
    groups_list, types_list = row_groups(frame, group_column, type_column)
    groups_all = np.array(groups_list, dtype=object)
    types_all = np.array(types_list, dtype=object) if type_column in frame.columns else None
    folds = calibration_windows(len(frame), config)
    booster = None
    lo, hi, t_cal, g_cal, k_cal, abs_err = [], [], [], [], [], []
    for fit_end, window_end in folds:
        booster = _booster(config, kind)
        booster.fit(X.iloc[:fit_end], target[:fit_end], cat_features=cats)
        raw = np.asarray(booster.predict(X.iloc[fit_end:window_end])).reshape(
            window_end - fit_end, -1)
        point, _, _ = _bounds(raw, np.zeros(len(raw)))
        abs_err.append(np.abs(y_all[fit_end:window_end] - point))
        raw = np.sort(raw, axis=1)
        if config.interval == "median":  # score |log1p(y) - median| (see the module doc)
            lo.append(raw[:, 1])
            hi.append(raw[:, 1])
        else:
            lo.append(raw[:, 0])
            hi.append(raw[:, -1])
        t_cal.append(target[fit_end:window_end])
        g_cal.append(groups_all[fit_end:window_end])
        if types_all is not None:
            k_cal.append(types_all[fit_end:window_end])
    if booster is None:  # too few rows to calibrate: a plain fit with no offset
        booster = _booster(config, kind)
        booster.fit(X, target, cat_features=cats)
    # no calibration scores: the booster's raw 10-90% band (a zero offset around the median
    # would be a zero-width interval)
    model = IntentModel(features, cats, booster, {"*": 0.0}, group_column,
                        type_column if types_all is not None else None,
                        target=str(meta.get("target", "demand")), unit=str(meta.get("unit", "")),
                        meta=meta, interval=config.interval if folds else "cqr")
    validation_mae = None
    n_cal = int(sum(len(t) for t in t_cal))
    if folds:
        validation_mae = float(np.mean(np.concatenate(abs_err)))
        model.offsets = group_offsets(np.concatenate(lo), np.concatenate(hi),
                                      np.concatenate(t_cal), np.concatenate(g_cal),
                                      config.coverage,
                                      np.concatenate(k_cal) if k_cal else None)
        if config.refit:
            model.booster = _booster(config, kind)
            model.booster.fit(X, target, cat_features=cats)
    model.meta.update({"config": asdict(config),
                       "n_fit": int(folds[-1][0]) if folds else len(frame),
                       "n_calibration": n_cal, "calibration_folds": len(folds),
                       "refit": bool(config.refit and folds),
                       "validation_mae": validation_mae})
    return model


class QuantileTable:
    """A booster stand-in: the training quantiles of log1p(demand) per value of one categorical
    column (the population's for an unseen value), optionally per size bucket too.

    ``fit_intent(kind="table")`` uses it for the median candidates, so a trace whose demand
    nothing predicts still gets calibrated bounds. With a second (numeric) column, each type is
    split further by the decile of that column in the training data (Resource Central's
    bucketing by request size); a cell with fewer than ``MIN_CELL`` training rows, or a missing
    size, uses its type's quantiles.
    """

    MIN_CELL = 50

    def __init__(self, alphas: tuple[float, ...], table: dict[str, list[float]] | None = None,
                 default: list[float] | None = None, edges: list[float] | None = None) -> None:
        self.alphas = tuple(alphas)
        self.table = table or {}
        self.default = default or [0.0] * len(self.alphas)
        self.edges = np.asarray(edges if edges is not None else [], dtype=float)

    def _keys(self, X) -> tuple[list[str], list[str | None]]:
        matrix = np.asarray(X, dtype=object)
        types = [_category(v) for v in matrix[:, 0]]
        if matrix.shape[1] < 2 or not self.edges.size:
            return types, [None] * len(types)
        sizes = pd.to_numeric(pd.Series(matrix[:, 1]), errors="coerce").to_numpy(dtype=float)
        bins = np.searchsorted(self.edges, sizes, side="right")
        return types, [f"{t}|{b}" if math.isfinite(v) else None
                       for t, b, v in zip(types, bins, sizes, strict=True)]

    def fit(self, X, target, cat_features=None) -> QuantileTable:
        target = np.asarray(target, dtype=float)
        self.default = [float(v) for v in np.quantile(target, self.alphas)]
        matrix = np.asarray(X, dtype=object)
        if matrix.shape[1] >= 2:
            sizes = pd.to_numeric(pd.Series(matrix[:, 1]), errors="coerce").dropna()
            self.edges = (np.unique(np.quantile(sizes, np.linspace(0.1, 0.9, 9)))
                          if len(sizes) else np.empty(0))
        types, cells = self._keys(X)
        frame = pd.DataFrame({"type": types, "cell": cells, "t": target})
        self.table = {str(key): [float(v) for v in np.quantile(group["t"], self.alphas)]
                      for key, group in frame.groupby("type", sort=True)}
        for key, group in frame.dropna(subset=["cell"]).groupby("cell", sort=True):
            if len(group) >= self.MIN_CELL:
                self.table[str(key)] = [float(v) for v in np.quantile(group["t"], self.alphas)]
        return self

    def predict(self, X) -> np.ndarray:
        if not len(X):
            return np.empty((0, len(self.alphas)))
        types, cells = self._keys(X)
        return np.array([self.table.get(cell) or self.table.get(t, self.default)
                         for t, cell in zip(types, cells, strict=True)], dtype=float)

    def save_model(self, path: str) -> None:
        Path(path).write_text(json.dumps({"alphas": self.alphas, "table": self.table,
                                          "default": self.default,
                                          "edges": [float(e) for e in self.edges]}))

    @classmethod
    def load(cls, path: Path) -> QuantileTable:
        data = json.loads(Path(path).read_text())
        return cls(tuple(data["alphas"]), data["table"], data["default"], data.get("edges"))


def _booster(config: IntentConfig, kind: str = "catboost"):
    from catboost import CatBoostRegressor

    if kind == "table":
        return QuantileTable(config.alphas)

    alphas = ",".join(str(a) for a in config.alphas)
    return CatBoostRegressor(
        loss_function=f"MultiQuantile:alpha={alphas}", iterations=config.iterations,
        depth=config.depth, learning_rate=config.learning_rate, random_seed=config.seed,
        thread_count=config.thread_count, verbose=False, allow_writing_files=False,
    )
