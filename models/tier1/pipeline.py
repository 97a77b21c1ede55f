"""Backtest many producers in parallel (the CLI's path; the flow maps Prefect tasks instead).

Parallelism uses joblib's process pool: workers are reused, so Prophet and statsforecast are
imported once per worker, not once per fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import pandas as pd

from models.tier1.backtest import BacktestConfig, backtest_producer, history_requirement


def parallel_map(fn: Callable, items: list, workers: int, on_done: Callable[[], None] | None = None):
    """``[fn(*item) for item in items]`` over ``workers`` processes, in order, with a callback."""
    if workers <= 1 or len(items) <= 1:
        results = []
        for item in items:
            results.append(fn(*item))
            if on_done:
                on_done()
        return results
    from joblib import Parallel, delayed

    results = []
    runner = Parallel(n_jobs=workers, return_as="generator", backend="loky")
    for result in runner(delayed(fn)(*item) for item in items):
        results.append(result)
        if on_done:
            on_done()
    return results


def backtest_all(
    series: Iterable[pd.Series],
    config: BacktestConfig,
    workers: int = 1,
    on_done: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Backtest every producer's series; one frame of all (producer, model, cut-off) rows."""
    items = [(s, config) for s in series]
    frames = [f for f in parallel_map(backtest_producer, items, workers, on_done) if not f.empty]
    if not frames:
        raise ValueError(f"no producer has enough history; {history_requirement(config)}")
    return pd.concat(frames, ignore_index=True)


def read_training_trace(path, config=None, **options):
    """A load trace to train Tier 1 on (:func:`leadtime.data.read_load_trace`), its resource
    series held to ``config`` (``leadtime.yaml``) when there is one
    (:func:`leadtime.data.check_resources`)."""
    from leadtime.data import check_resources, read_load_trace

    trace = read_load_trace(path, **options)
    if config is not None:
        check_resources(trace, config.resource_keys())
    return trace


def config_from_settings(settings, **overrides) -> BacktestConfig:
    """The backtest configuration of the settings' ``tier1`` section (``leadtime.yaml``;
    flags may override fields)."""
    tier1 = settings.tier1
    config = BacktestConfig(horizon_s=tier1.horizon_s, cutoffs=tier1.backtest_cutoffs,
                            history_s=tier1.history_s)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
