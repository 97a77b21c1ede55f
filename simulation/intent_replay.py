"""Tier 2 in the replay: every request's predicted run time, as the served champion of its day
would have predicted it at the request's arrival.

The trace's requests get their point-in-time features from Feast (each consumer's profile as of
the request's arrival, outcomes counted only once known: ``features.profiles.known_at``), as
``/v1/requests/predict`` reads them online. Then, day by day as the ``intent-retrain`` flow runs,
the intent model (:func:`models.tier2.evaluate.fit_models`, the same candidates and choice) is
fitted on the requests that had *finished* before that day began, and predicts the run time of
the requests arriving that day. Requests before the first day with enough finished history get
no prediction (Tier 2 says nothing for them). Each interval is then widened as the service's
online recalibration would have served it (:mod:`models.tier2.online_calibration`): by the run
times of the requests that had finished before it arrived.

This needs a run time per request, i.e. a trace whose target is in seconds or whose schema
names a ``duration`` column (:class:`leadtime.data.RequestSchema`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

#: Finished requests needed before a day's fit (fewer: no Tier 2 prediction that day).
MIN_TRAINING_REQUESTS = 500


@dataclass(frozen=True)
class RequestPredictions:
    """One row per request: ``producer_id``, ``arrival_s``, ``start_s``, ``end_s`` (what
    happened) and ``point``, ``lower``, ``upper`` (the predicted run time; NaN when no fit yet);
    ``units`` held while running. For a trace that declares resources, per resource
    ``units_<r>`` (held) and ``<r>_point``, ``<r>_lower``, ``<r>_upper`` (predicted by the
    resource's own model, fitted with the run time's)."""

    frame: pd.DataFrame
    fits: int  # daily fits made
    seconds: float  # wall time


def predict_requests(path: str | Path, settings=None, every_s: float = 86400.0,
                     config=None, progress: Callable[[str], None] | None = None,
                     track: bool = True) -> RequestPredictions:
    """Each request's run time predicted by the intent model fitted, every ``every_s`` seconds
    (default: daily), on the requests finished before (see the module docstring); ``track``:
    the intervals recalibrated online as the service recalibrates them."""
    import time

    from leadtime.data import read_request_trace
    from leadtime.settings import get_settings
    from leadtime.validation import TraceError
    from models.tier2.evaluate import fit_models, fit_resource_models
    from models.tier2.intent import IntentConfig
    from models.tier2.train import training_set
    from simulation.traces import request_runs

    began = time.perf_counter()
    trace = read_request_trace(path)
    if trace.schema.duration_column is None:
        raise TraceError(f"{Path(path).name}: Tier 2's replay needs each request's run time "
                         "(a target in seconds, or a `duration` column in the schema)")
    config = config or IntentConfig()
    settings = (settings or get_settings()).prepare()
    if progress:
        progress("point-in-time features from Feast")
    _, data = training_set(settings, trace, config)
    out = request_runs(trace).assign(point=np.nan, lower=np.nan, upper=np.nan)
    resources = list(trace.schema.resources)
    for name in resources:
        out[[f"{name}_point", f"{name}_lower", f"{name}_upper"]] = np.nan
    arrival, end = out["arrival_s"].to_numpy(), out["end_s"].to_numpy()
    if not np.allclose(data.frame["event_timestamp"].astype("int64") / 1e9, arrival):
        raise RuntimeError("the feature rows do not follow the trace's order")
    step = float(every_s)
    fits = 0
    keys = np.full(len(out), "*", dtype=object)
    for day in np.arange(np.floor(arrival.min() / step) * step, arrival.max() + step, step):
        today = (arrival >= day) & (arrival < day + step)
        finished = end < day
        if not today.any() or finished.sum() < MIN_TRAINING_REQUESTS:
            continue
        models = fit_models(replace(data, train=finished, test=today), config)
        predicted = models["intent"].predict(data.frame[today])
        out.loc[today, ["point", "lower", "upper"]] = predicted[["point", "lower",
                                                                "upper"]].to_numpy()
        keys[today] = models["intent"].interval_keys(data.frame[today])
        if resources:  # each resource's own model, fitted on the same finished requests
            for name, model in fit_resource_models(replace(data, train=finished, test=today),
                                                   config).items():
                out.loc[today, [f"{name}_point", f"{name}_lower", f"{name}_upper"]] = (
                    model.predict(data.frame[today])[["point", "lower", "upper"]].to_numpy())
        fits += 1
        if progress:
            progress(f"Tier 2 fit {fits}: {pd.Timestamp(day, unit='s').date()}")
    if track:
        _track(out, keys)
    return RequestPredictions(out, fits, time.perf_counter() - began)


def _track(out: pd.DataFrame, keys: np.ndarray) -> None:
    """Widen the predicted intervals as the service's online recalibration would have served
    them (:mod:`models.tier2.online_calibration`): each by the run times of the requests that
    had finished before it arrived, one tracker across the daily fits."""
    from models.tier2.online_calibration import recalibrated_intervals

    have = out["point"].notna().to_numpy()
    if not have.any():
        return
    rows = out[have]
    lower, upper = recalibrated_intervals(
        rows["arrival_s"].tolist(), rows["end_s"].tolist(), keys[have].tolist(),
        (rows["end_s"] - rows["start_s"]).tolist(), rows["point"].tolist(),
        rows["lower"].tolist(), rows["upper"].tolist())
    out.loc[have, "lower"] = lower
    out.loc[have, "upper"] = upper
