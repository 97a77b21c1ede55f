"""Feedback: join logged tier predictions with observed load, score each tier, re-weight.

Method (inverse error, documented in the README's feedback section):

1. Join every logged tier prediction with the **peak** load observed over its window
   ``[decided_at, decided_at + lead]`` (:func:`join_window_peaks`): the quantity every tier
   predicts and sizing pays for.
2. Per tier and producer, the mean absolute error of the point prediction, scaled by the
   producer's mean observed load (so a big producer does not dominate); a tier's error is the
   mean over producers of that scaled MAE.
3. New weights: ``w_t ∝ 1 / max(err_t, floor)`` over the tiers with evidence; the weight mass of
   those tiers (under the current weights) is shared that way, tiers without evidence keep their
   current weight, and the result is renormalised to sum to 1.
4. Both the candidate and the current weights are scored on the most recent ``eval_fraction``
   of windows (the candidate is fitted on the windows before it only): the combined prediction
   is recomputed per decision with :func:`leadtime.engine.combine` (missing tiers renormalised,
   exactly as the engine does) and scored by the same scaled MAE. The candidate is promoted only
   if it is no worse (:func:`models.registry.should_promote`).
5. A tier whose error on the last window exceeds ``drift_ratio`` times its error before it is
   flagged for retraining.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadtime.config import DEFAULT_WEIGHTS
from leadtime.window_peak import window_bounds
from monitoring.accuracy import combined_error, drifted, tier_errors


def join_window_peaks(predictions: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """Each decision's tier points with the **peak** load observed over its window.

    ``predictions``: ``decided_at, producer_id, lead_s, tier, point``; ``observed``:
    ``producer_id, at, load`` (load known at ``at``: the end of its metric interval, or the
    moment an allocator reported it). A decision taken at ``s`` is for ``[s, s + lead]``: its
    ``actual`` is the maximum of the loads that cover that window (stamped in ``(s, s + lead]``,
    and the first one stamped after ``s + lead``: :func:`leadtime.window_peak.window_bounds`), what the
    tiers predict and what sizing pays for. Decisions whose window is not yet over (no
    observation after ``s + lead``) are left out.

    >>> predictions = pd.DataFrame({"decided_at": [0.0, 60.0], "producer_id": "p",
    ...                             "lead_s": 120.0, "tier": "tier1", "point": [5.0, 6.0]})
    >>> observed = pd.DataFrame({"producer_id": "p", "at": [0.0, 60.0, 120.0, 180.0],
    ...                          "load": [4.0, 9.0, 5.0, 3.0]})
    >>> join_window_peaks(predictions, observed)["actual"].tolist()
    [9.0, 5.0]
    """
    columns = [*predictions.columns, "actual"]
    if predictions.empty or observed.empty:
        return pd.DataFrame(columns=columns)
    parts = []
    # each producer's observations, split in one pass (a scan of every row per producer is
    # quadratic in the fleet)
    observed_of = dict(iter(observed.groupby("producer_id", sort=False)))
    for producer, rows in predictions.groupby("producer_id", sort=False):
        seen = observed_of.get(producer)
        if seen is None:
            continue
        seen = seen.sort_values("at")
        at = seen["at"].to_numpy(float)
        load = seen["load"].to_numpy(float)
        first, last = window_bounds(at, rows["decided_at"].to_numpy(float),
                                    rows["lead_s"].to_numpy(float))
        parts.append(rows.assign(actual=range_max(load, first, last)))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True).dropna(subset=["actual", "point"])
    if "window_start" not in out:
        out["window_start"] = out["decided_at"] + out["lead_s"]
    if "decision_id" not in out:
        out["decision_id"] = out.groupby(["producer_id", "decided_at"], sort=False).ngroup()
    return out


def range_max(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``nanmax(values[first[i]:last[i]])`` for every ``i`` at once (NaN where the slice is
    empty or all NaN): a sparse table of maxima over power-of-two spans, two reads a slice.

    >>> range_max(np.array([4.0, 9.0, np.nan, 3.0]), np.array([0, 2, 1, 3]),
    ...           np.array([4, 3, 1, 4])).tolist()
    [9.0, nan, nan, 3.0]
    """
    out = np.full(len(first), np.nan)
    span = last - first
    ok = np.flatnonzero(span > 0)
    if not ok.size:
        return out
    levels = [np.asarray(values, dtype=float)]
    while 2 ** len(levels) <= span[ok].max():
        prev, half = levels[-1], 2 ** (len(levels) - 1)
        levels.append(np.fmax(prev[:-half], prev[half:]))  # max over [i, i + 2 * half)
    k = np.floor(np.log2(span[ok])).astype(int)
    lo, hi = first[ok], last[ok] - 2 ** k
    for level in np.unique(k):
        at = k == level
        out[ok[at]] = np.fmax(levels[level][lo[at]], levels[level][hi[at]])
    return out


def joined_from_log(decision_log, window_s: float) -> pd.DataFrame:
    """The last ``window_s`` of a decision log's tier points joined with their window peaks."""
    observed = decision_log.observed()
    if observed.empty:
        return join_window_peaks(pd.DataFrame(), observed)
    until = float(observed["window_start"].max())
    predictions = decision_log.tier_predictions(until - window_s, None)
    predictions = predictions.assign(lead_s=predictions["window_start"] - predictions["decided_at"])
    return join_window_peaks(predictions, observed.rename(columns={"window_start": "at"}))


def inverse_error_weights(errors: Mapping[str, float], current: Mapping[str, float] = DEFAULT_WEIGHTS,
                          floor: float = 1e-3) -> dict[str, float]:
    """Step 3 of the module doc: inverse-error shares of the evidenced tiers' weight mass."""
    evidenced = {t: e for t, e in errors.items() if t in current and math.isfinite(e)}
    if not evidenced:
        total = sum(current.values())
        return {t: w / total for t, w in current.items()}
    mass = sum(current[t] for t in evidenced) or 1.0
    inv = {t: 1.0 / max(e, floor) for t, e in evidenced.items()}
    inv_total = sum(inv.values())
    out = {t: (mass * inv[t] / inv_total if t in inv else w) for t, w in current.items()}
    total = sum(out.values())
    return {t: w / total for t, w in out.items()}


def validate_weights(weights: Mapping[str, float]) -> None:
    """Refuse weights that are not finite, negative, or do not sum to 1."""
    values = np.array(list(weights.values()), dtype=float)
    if values.size == 0 or not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"invalid weights {dict(weights)}")
    if abs(values.sum() - 1) > 1e-6:
        raise ValueError(f"weights must sum to 1, got {values.sum():.6f}")


@dataclass
class Recalibration:
    weights: dict[str, float]
    current: dict[str, float]
    train_errors: dict[str, float]
    eval_errors: dict[str, float]
    candidate_score: float
    current_score: float
    rows: int
    retrain: list[str] = field(default_factory=list)


def recalibrate(joined: pd.DataFrame, current: Mapping[str, float] = DEFAULT_WEIGHTS,
                eval_fraction: float = 0.25, drift_ratio: float = 1.5) -> Recalibration:
    """Fit weights on the earlier windows, score them and ``current`` on the last ones."""
    if joined.empty:
        raise ValueError("no logged prediction could be joined with observed load")
    windows = np.sort(joined["window_start"].unique())
    cut = windows[min(len(windows) - 1, int(len(windows) * (1 - eval_fraction)))]
    train, last = joined[joined["window_start"] < cut], joined[joined["window_start"] >= cut]
    if train.empty:
        train = joined
    train_err, eval_err = tier_errors(train), tier_errors(last)
    weights = inverse_error_weights(train_err, current)
    validate_weights(weights)
    retrain = drifted(train_err, eval_err, drift_ratio)
    return Recalibration(weights, dict(current), train_err, eval_err,
                         combined_error(last, weights), combined_error(last, current),
                         len(joined), retrain)
