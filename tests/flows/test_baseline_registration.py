"""``baseline-daily`` leaves at most one version per flow run, and none when it fails."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from models.tier1.backtest import BacktestConfig, history_shortfall, required_history


def test_required_history_follows_the_backtest_configuration():
    config = BacktestConfig(cutoffs=2, warmup_cutoffs=3, min_history_days=2)
    assert required_history(config) == pd.Timedelta(days=6) + config.horizon
    index = pd.date_range("2024-03-04", periods=7 * 288, freq="5min")
    assert history_shortfall(pd.Series(1.0, index=index, name="p"), config) is None
    one_step_short = pd.Series(1.0, index=index[:-1], name="p")
    assert "(4 of 5 cut-offs)" in history_shortfall(one_step_short, config)
    short = pd.Series(1.0, index=index[: 5 * 288], name="p")
    assert "p has 5 days of history (3 of 5 cut-offs)" in history_shortfall(short, config)


class _FakeClient:
    def __init__(self):
        self.aliases, self.tags = {}, {}

    def set_registered_model_alias(self, name, alias, version):
        self.aliases[alias] = version

    def set_model_version_tag(self, name, version, key, value):
        self.tags[key] = value


@pytest.mark.parametrize("candidate, champion", [(None, None), (math.nan, None), (math.nan, 0.5),
                                                  (0.4, math.nan)])
def test_decide_alias_names_a_missing_score_instead_of_crashing(monkeypatch, candidate, champion):
    import models.registry as registry

    fake = _FakeClient()
    monkeypatch.setattr(registry, "client", lambda: fake)
    promotion = registry.decide_alias("m", "3", candidate, champion, metric="backtest WIS")
    if candidate is None or math.isnan(candidate):
        assert not promotion.promoted and "no finite backtest WIS" in promotion.reason
        assert fake.aliases == {"challenger": "3"}
    else:
        assert promotion.promoted and "no finite" in promotion.reason
    assert fake.tags["promotion"] == promotion.reason


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

    def always_fails(*args, **kwargs):
        raise ConnectionError("registry went away for good")

    monkeypatch.setattr(registry, "decide_alias", always_fails)
    with pytest.raises(ConnectionError):
        baseline_daily(str(trace), cutoffs=2)
    assert [v.version for v in _versions(state)] == [1]  # the failed run's version is gone
    assert registry.champion_version(state.baseline_model_name).version == 1
