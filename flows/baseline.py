"""Prefect flow ``baseline-daily``: validate → backtest per producer → fit → register/promote.

Only wiring lives here (tasks, retries, mapping); the work is in ``leadtime.data`` and
``models.baseline_*``. Runs on Prefect's ephemeral API when no server is configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from leadtime.data import LoadTrace
from leadtime.settings import get_settings
from models.registry import alias_snapshot, discard_flow_run
from models.tier1.backtest import (
    CHAMPION,
    BacktestConfig,
    backtest_producer,
    choice_basis,
    final_choice,
    history_requirement,
    history_shortfall,
    summarise,
)
from models.tier1.pipeline import config_from_settings, read_training_trace
from models.tier1.registry import (
    BaselineBundle,
    Registration,
    final_offsets,
    fit_champion,
    log_and_register,
    plot_forecast,
)

THREADS = max(2, os.cpu_count() or 1)  # Prophet fits run in cmdstan subprocesses: threads overlap

#: Optional callback the CLI sets to drive a progress bar: ``hook(stage, done, total)``.
progress_hook: Callable[[str, int, int], None] | None = None


def _progress(stage: str, done: int, total: int) -> None:
    get_run_logger().info("%s: %d/%d producers", stage, done, total)
    if progress_hook is not None:
        progress_hook(stage, done, total)


@task(name="validate-load-trace", cache_policy=NO_CACHE)
def validate_trace(path: str) -> LoadTrace:
    """Read and validate the trace with Great Expectations; refuse it whole on any defect."""
    trace = read_training_trace(path, get_settings().leadtime)
    for note in trace.repairs:
        get_run_logger().warning(note)
    return trace


@task(name="backtest-producer", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def backtest_task(series: pd.Series, config: BacktestConfig) -> pd.DataFrame:
    return backtest_producer(series, config)


@task(name="fit-champion", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def fit_task(series: pd.Series, model_name: str, offsets: dict, history_s: float):
    return fit_champion(series, model_name, offsets, history_s)


@task(name="register-baseline", retries=1, cache_policy=NO_CACHE)
def register_task(bundle: BaselineBundle, backtest: pd.DataFrame, params: dict,
                  plot_path: str | None, flow_run_id: str | None = None) -> Registration:
    """Register and promote; keyed by ``flow_run_id`` so a retry reuses its version."""
    settings = get_settings()
    return log_and_register(bundle, backtest, name=settings.baseline_model_name,
                            experiment=settings.experiment, params=params,
                            plot_path=Path(plot_path) if plot_path else None,
                            flow_run_id=flow_run_id)


def long_enough(trace: str, series: dict[str, pd.Series], config: BacktestConfig,
                ) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """The producers with history enough for every cut-off, and why the others are left out.

    Runs in the flow, before any task fits anything: when no producer is long enough the trace
    is refused (a ValueError naming the minimum), so nothing is fitted or registered.
    """
    short = {p: why for p, s in series.items() if (why := history_shortfall(s, config))}
    if len(short) == len(series):
        shown = "; ".join(list(short.values())[:3]) + ("; …" if len(short) > 3 else "")
        raise ValueError(f"{Path(trace).name}: too short: {shown}; {history_requirement(config)}")
    return {p: s for p, s in series.items() if p not in short}, short


def register_or_undo(bundle: BaselineBundle, backtest: pd.DataFrame, params: dict,
                     plot_path: str | None, name: str) -> Registration:
    """Register under this flow run; if it fails for good, leave the registry as it was.

    The flow owns the failure: the versions it registered are deleted and the aliases put
    back, so a failed run leaves no orphan version and the champion unmoved.
    """
    from prefect.runtime import flow_run

    run_id = str(flow_run.id) if flow_run.id else None
    before = alias_snapshot(name)
    try:
        return register_task(bundle, backtest, params, plot_path, run_id)
    except BaseException:
        if run_id:
            deleted = discard_flow_run(name, run_id, before)
            if deleted:
                get_run_logger().warning("registration failed: deleted %s version(s) %s",
                                         name, ", ".join(deleted))
        raise


def task_runner_for(settings, workers: int | None = None):
    """The task runner the settings ask for: threads, a local Dask cluster, or a remote one."""
    if settings.task_runner == "dask" or settings.dask_address or workers:
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers or settings.dask_workers,
                                              "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=THREADS)


def baseline_flow(settings):
    """``baseline-daily`` on the task runner the settings choose (threads by default)."""
    return baseline_daily.with_options(task_runner=task_runner_for(settings))


def _collect(futures: list, stage: str) -> list:
    for done, _ in enumerate(as_completed(futures), start=1):
        _progress(stage, done, len(futures))
    return [f.result() for f in futures]


@flow(name="baseline-daily", log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=THREADS))
def baseline_daily(
    trace: str,
    producers: list[str] | None = None,
    cutoffs: int | None = None,
    history_s: float | None = None,
) -> dict:
    """Fit the Tier 1 baseline for every producer of a load trace and register the champion."""
    settings = get_settings().prepare()
    config = config_from_settings(settings, cutoffs=cutoffs, history_s=history_s)
    loaded = validate_trace(trace)
    chosen = producers or loaded.producers
    unknown = sorted(set(chosen) - set(loaded.producers))
    if unknown:
        raise ValueError(f"{Path(trace).name}: no producer(s) {', '.join(unknown)}")
    series, skipped = long_enough(trace, {p: loaded.series(p) for p in chosen}, config)
    for why in skipped.values():
        get_run_logger().warning("left out of the backtest: %s", why)

    backtests = _collect(backtest_task.map(list(series.values()), config), "backtest")
    frames = [b for b in backtests if not b.empty]
    backtest = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if backtest.empty or not summarise(backtest).get(CHAMPION):
        raise ValueError(f"{Path(trace).name}: not enough history for a backtest")

    choices = final_choice(backtest)
    fitted = _collect(
        [fit_task.submit(series[p], m, final_offsets(backtest, p, m), config.history_s)
         for p, m in choices.items()],
        "fit",
    )
    bundle = BaselineBundle(dict(zip(choices, fitted)), choices,
                            {p: str(series[p].index[-1]) for p in choices})

    first = next(iter(choices))
    plot = plot_forecast(series[first], bundle.forecasters[first],
                         settings.plots_dir / f"baseline_{Path(trace).stem}_{first}.png",
                         horizon_s=config.horizon_s)
    params = {"trace": Path(trace).name, **{k: str(v) for k, v in asdict(config).items()}}
    registration = register_or_undo(bundle, backtest, params, str(plot),
                                    settings.baseline_model_name)
    summary = summarise(backtest)
    return {
        "trace": str(trace),
        "producers": len(choices),
        "summary": summary,
        "choices": choices,
        "choice_wis": choice_basis(backtest),  # what chose them: WIS over every cut-off
        "champion": summary.get(CHAMPION, {}),
        "registration": asdict(registration),
        "plot": str(plot),
        "repairs": loaded.repairs,
        "skipped": skipped,
    }
