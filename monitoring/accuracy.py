"""Accuracy and drift of the tiers: how far each tier's point was from the window's peak.

The decision loop's recalibration (``loop/recalibrate.py``) and the ``recalibrate`` flow score
the tiers with these; the flow also flags a tier whose error drifts for retraining. Errors are
scaled per producer by its mean observed peak, so a big producer does not dominate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def tier_errors(joined: pd.DataFrame) -> dict[str, float]:
    """Per tier: mean over producers of MAE / mean observed load."""
    if joined.empty:
        return {}
    scale = joined.groupby("producer_id")["actual"].mean().abs().clip(lower=1e-9)
    frame = joined.assign(err=(joined["point"] - joined["actual"]).abs())
    per = frame.groupby(["tier", "producer_id"])["err"].mean()
    per = per / scale.reindex(per.index.get_level_values("producer_id")).to_numpy()
    return {str(t): float(v) for t, v in per.groupby(level="tier").mean().items()}


def combined_error(joined: pd.DataFrame, weights: Mapping[str, float]) -> float:
    """Scaled MAE of the engine's combination under ``weights`` (missing tiers renormalised).

    Vectorised form of :func:`leadtime.engine.combine` on the points: per decision, the weighted
    mean of the tiers that answered, over the weights of those tiers.
    """
    if joined.empty:
        return math.nan
    keys = ["producer_id", "decision_id"]
    # one row per decision, one column per tier (a groupby and unstack: pivot_table's result,
    # without its overhead, which recalibration pays every day)
    points = joined.groupby([*keys, "tier"])["point"].first().unstack("tier")
    actual = joined.groupby(keys)["actual"].first().reindex(points.index)
    w = pd.Series({t: max(0.0, float(weights.get(t, 0.0))) for t in points.columns})
    answered = points.notna() & (w > 0)
    mass = answered.mul(w, axis=1).sum(axis=1)
    combined = points.fillna(0.0).mul(w, axis=1).where(answered, 0.0).sum(axis=1) / mass
    ok = mass > 0
    if not ok.any():
        return math.nan
    frame = pd.DataFrame({"err": (combined - actual).abs()[ok], "actual": actual[ok]})
    g = frame.groupby(level="producer_id")
    return float((g["err"].mean() / g["actual"].mean().abs().clip(lower=1e-9)).mean())


def drifted(before: Mapping[str, float], last: Mapping[str, float],
            ratio: float = 1.5) -> list[str]:
    """Tiers whose error on the last window exceeds ``ratio`` times their error before it.

    >>> drifted({"tier1": 0.1, "tier3": 0.2}, {"tier1": 0.2, "tier3": 0.25})
    ['tier1']
    """
    return sorted(t for t in last if t in before and last[t] > ratio * max(before[t], 1e-9))


def pinball(actual: np.ndarray, predicted: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of ``predicted`` as the ``q`` quantile of ``actual``: what
    Tier 3 chooses its base by and sizing chooses its candidate by.

    >>> round(pinball(np.array([10.0, 10.0]), np.array([8.0, 12.0]), 0.9), 3)
    1.0
    """
    diff = np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float)
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))
