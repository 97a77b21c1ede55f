"""``baseline-daily`` leaves at most one version per flow run, and none when it fails."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from models.tier1.backtest import BacktestConfig, history_shortfall, required_history_s


def test_required_history_follows_the_backtest_configuration():
    config = BacktestConfig(cutoffs=2, warmup_cutoffs=3, min_history_s=2 * 86400.0)
    assert required_history_s(config) == 6 * 86400.0 + config.horizon_s
    index = pd.date_range("2024-03-04", periods=7 * 288, freq="5min")
    assert history_shortfall(pd.Series(1.0, index=index, name="p"), config) is None
    one_step_short = pd.Series(1.0, index=index[:-1], name="p")
    assert "(4 of 5 cut-offs)" in history_shortfall(one_step_short, config)
    short = pd.Series(1.0, index=index[: 5 * 288], name="p")
    assert "p has 5 days of history (3 of 5 cut-offs)" in history_shortfall(short, config)


def _registered_version(name: str) -> str:
    """A real (SQLite) registry version to promote: a logged run's tiny pyfunc."""
    import mlflow
    import mlflow.pyfunc

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    from models.registry import use_experiment

    use_experiment("review")  # this test's store (not an experiment id left by another test)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(),
                                       registered_model_name=name, pip_requirements=["mlflow"])
    return str(info.registered_model_version)


@pytest.mark.parametrize("candidate, champion", [(None, None), (math.nan, None), (math.nan, 0.5),
                                                  (0.4, math.nan)])
def test_decide_alias_names_a_missing_score_instead_of_crashing(state, candidate, champion):
    import models.registry as registry

    version = _registered_version("m")
    promotion = registry.decide_alias("m", version, candidate, champion, metric="backtest WIS")
    written = registry.client().get_model_version("m", version)
    if candidate is None or math.isnan(candidate):
        assert not promotion.promoted and "no finite backtest WIS" in promotion.reason
        assert registry.alias_snapshot("m") == {"champion": None, "challenger": version}
        assert written.description.startswith("**Kept as challenger**")
    else:
        assert promotion.promoted and "no finite" in promotion.reason
        assert written.description.startswith("**Promoted to champion**")
    assert written.tags["promotion"] == promotion.reason
    assert promotion.reason in written.description


def test_the_description_shows_the_scores_against_the_champion_and_the_run(state):
    import models.registry as registry

    first = _registered_version("m")
    registry.decide_alias("m", first, 0.5, None, metric="holdout MAE")
    second = _registered_version("m")
    run_id = registry.client().get_model_version("m", second).run_id
    review = registry.Review(scores={"80 % coverage": (0.81, 0.74)}, run_id=run_id,
                             experiment_id="0", artifacts=("plots/forecast.png",),
                             notes=("Scored on the same holdout.",))
    promotion = registry.decide_alias("m", second, 0.6, 0.5, metric="holdout MAE", review=review)
    assert not promotion.promoted
    text = registry.client().get_model_version("m", second).description
    assert text.startswith(f"**Kept as challenger**: the champion v{first} stays.")
    assert "| **holdout MAE** (decides) | 0.6 | 0.5 |" in text
    assert "| 80 % coverage | 0.81 | 0.74 |" in text
    assert f"[{run_id}](#/experiments/0/runs/{run_id})" in text
    assert f"(#/experiments/0/runs/{run_id}/artifacts/plots/forecast.png)" in text
    assert "- Scored on the same holdout." in text
    assert registry.alias_snapshot("m") == {"champion": first, "challenger": second}


def _versions(state):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=state.tracking_uri).search_model_versions(
        f"name = '{state.baseline_model_name}'")


@pytest.mark.slow
def test_a_retry_reuses_the_version_and_a_failed_run_leaves_none(state, tmp_path, monkeypatch):
    import models.registry as registry
    from flows.baseline import baseline_daily
    from simulation.generate import write_load_trace

    trace = write_load_trace(tmp_path / "load.csv", producers=1, days=8)
    real = registry.decide_alias
    calls = []

    def fails_once(*args, **kwargs):  # promotion fails after the version is registered
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("registry went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "decide_alias", fails_once)
    first = baseline_daily(str(trace), cutoffs=2)
    assert len(calls) == 2  # the task retried
    versions = _versions(state)
    assert [v.version for v in versions] == [1] and versions[0].tags.get("flow_run_id")
    assert first["registration"]["version"] == "1" and first["registration"]["promoted"]
    review = versions[0].description  # what a reviewer reads on the version's page
    assert review.startswith("**Promoted to champion**") and "| **backtest WIS** (decides) |" in review
    assert f"Made by run [{versions[0].run_id}]" in review and "/artifacts/plots/" in review

    def always_fails(*args, **kwargs):
        raise ConnectionError("registry went away for good")

    monkeypatch.setattr(registry, "decide_alias", always_fails)
    with pytest.raises(ConnectionError):
        baseline_daily(str(trace), cutoffs=2)
    assert [v.version for v in _versions(state)] == [1]  # the failed run's version is gone
    assert registry.champion_version(state.baseline_model_name).version == 1
