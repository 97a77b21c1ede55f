"""The ``baseline-daily`` Prefect flow, for real, against a temporary MLflow store."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_baseline_daily_flow_registers_a_champion(state, tmp_path):
    from mlflow import MlflowClient

    from flows.baseline import baseline_daily
    from simulation.generate import write_load_trace

    trace = write_load_trace(tmp_path / "load.csv", producers=2, days=14)
    seen: list[tuple[str, int, int]] = []
    import flows.baseline as module

    module.progress_hook = lambda stage, done, total: seen.append((stage, done, total))
    try:
        result = baseline_daily(str(trace), cutoffs=2)
    finally:
        module.progress_hook = None

    assert result["producers"] == 2 and set(result["choices"]) == {"svc-1", "svc-2"}
    for producer, model in result["choices"].items():  # the choice is what its figures say
        basis = result["choice_wis"][producer]
        assert basis[model] == min(basis.values())
    assert {"seasonal_naive", "prophet", "mstl", "champion"} <= set(result["summary"])
    assert result["registration"]["promoted"] and result["registration"]["version"] == "1"
    assert ("backtest", 2, 2) in seen and ("fit", 2, 2) in seen
    client = MlflowClient()
    champion = client.get_model_version_by_alias(state.baseline_model_name, "champion")
    run = client.get_run(champion.run_id)
    assert "champion.mase" in run.data.metrics and run.data.params["trace"] == "load.csv"
    # artifacts live in the state folder, not in MLflow's ./mlruns default
    assert run.info.artifact_uri.startswith((state.home_dir / "mlartifacts").as_uri())
    artifacts = {a.path for a in client.list_artifacts(champion.run_id, "plots")}
    assert any(path.endswith(".png") for path in artifacts)
