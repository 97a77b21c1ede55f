"""Scale-out of Tier 1 fitting over Dask: the daily fit of many producers, timed per stage.

``baseline-fit`` validates a load trace and fits one model per producer as mapped tasks on
the task runner it is given (a local Dask cluster of N workers, or a remote scheduler), the
stage of ``baseline-daily`` that grows with the number of producers.
"""

from __future__ import annotations

import time

from prefect import flow

from flows.baseline import fit_task, validate_trace
from leadtime.config import TIER1_DEFAULTS


@flow(name="baseline-fit")
def baseline_fit(trace: str, model: str = "prophet",
                 history_s: float = TIER1_DEFAULTS.history_s) -> dict:
    """Fit ``model`` for every producer of ``trace``; return timings (no registration)."""
    loaded = validate_trace(trace)
    series = [loaded.series(p) for p in loaded.producers]
    started = time.perf_counter()
    futures = [fit_task.submit(s, model, {}, history_s) for s in series]
    fitted = [f.result() for f in futures]
    return {"producers": len(fitted), "fit_seconds": time.perf_counter() - started}


def measure(trace: str, workers: int, model: str = "prophet") -> dict:
    """Run ``baseline-fit`` on a fresh local Dask cluster of ``workers`` processes."""
    from flows.baseline import task_runner_for
    from leadtime.settings import get_settings

    runner = task_runner_for(get_settings(), workers=workers)
    began = time.perf_counter()
    result = baseline_fit.with_options(task_runner=runner)(trace, model)
    result |= {"workers": workers, "wall_seconds": time.perf_counter() - began}
    result["seconds_per_producer"] = result["fit_seconds"] * workers / result["producers"]
    return result
