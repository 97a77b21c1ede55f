"""Tier 1 fitting through Prefect's Dask task runner (a real local cluster)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_baseline_fit_runs_on_a_local_dask_cluster(state, tmp_path):
    from flows.scaleout import measure
    from simulation.generate import write_load_trace

    trace = write_load_trace(tmp_path / "load.csv", producers=3, days=5, interval="15min")
    result = measure(str(trace), workers=2, model="seasonal_naive")
    assert result["producers"] == 3 and result["workers"] == 2
    assert result["fit_seconds"] > 0 and result["seconds_per_producer"] > 0


def test_runner_follows_the_settings(state):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.baseline import task_runner_for

    assert isinstance(task_runner_for(state), ThreadPoolTaskRunner)
    remote = task_runner_for(state.model_copy(update={"dask_address": "tcp://127.0.0.1:8786"}))
    assert isinstance(remote, DaskTaskRunner)
    local = task_runner_for(state.model_copy(update={"task_runner": "dask"}))
    assert isinstance(local, DaskTaskRunner)
