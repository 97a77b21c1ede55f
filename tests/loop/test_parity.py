"""Parity: the replayed ``leadtime`` and the served API make the same decisions, step for step.

One short trace is replayed twice:

* through the simulator (``simulation.policies.Leadtime``, the decision loop on a replay clock);
* through the real HTTP API (``serving.app.create_app`` on the same replay clock): the load
  sample of each interval is posted to ``/v1/observations`` and the producer's state to
  ``/v1/producers/state``, as an exporter and an allocator would; each day's Tier 1 fit is
  registered in a real MLflow registry as the ``leadtime-baseline`` champion and picked up with
  ``POST /v1/admin/reload``, as ``baseline-daily`` and an operator would; the decision is read
  back from ``GET /v1/decisions``.

The replay's observations (instances, last load) are fed to the API, and every decision must
match: target, action, load score and combined prediction.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

TOKEN = "parity-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Recorder:
    """Passes the simulator's observations to the leadtime policy; keeps them and the loop's
    decision of each pass."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.name = policy.name
        self.observations: list = []
        self.passes: list = []  # (decided_at, Decision)

    def decide(self, obs):
        self.observations.append(obs)
        target = self.policy.decide(obs)
        latest = self.policy.loop.latest
        self.passes.append((latest.decided_at, latest.fleet.decisions[self.policy.producer_id]))
        return target


def register_champion(bundle, name: str, experiment: str) -> str:
    """Register ``bundle`` as ``name``'s champion, as ``baseline-daily`` does."""
    import joblib
    import mlflow

    from models.registry import CHAMPION, client, use_experiment
    from models.tier1.registry import PYFUNC_CODE, signature

    use_experiment(experiment)  # artifacts under the test's state folder
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run():
        path = Path(tmp) / "bundle.joblib"
        joblib.dump(bundle, path)
        info = mlflow.pyfunc.log_model(name="baseline", python_model=str(PYFUNC_CODE),
                                       artifacts={"bundle": str(path)}, signature=signature(),
                                       code_paths=[str(Path(PYFUNC_CODE).parents[1])],
                                       registered_model_name=name)
    version = str(info.registered_model_version)
    client().set_registered_model_alias(name, CHAMPION, version)
    return version


def test_replay_and_api_decide_the_same_step_for_step(state):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from loop.clock import ReplayClock
    from serving.app import create_app
    from simulation.bench import replay_setup
    from simulation.config import derive_config
    from simulation.forecast import daily_tier1
    from simulation.generate import synthetic_load
    from simulation.policies import HPA, Leadtime, replay_config
    from simulation.simulator import simulate

    frame = synthetic_load(producers=1, days=3, interval="5min", seed=11)
    series = pd.Series(frame["value"].to_numpy(float), name="svc",
                       index=pd.DatetimeIndex(frame["timestamp"], freq="5min"))
    cfg = derive_config(series, pd.Timedelta("5min").total_seconds())
    demand, lead, switch, _, _ = replay_setup(series, cfg)
    tier1 = daily_tier1(series, lead, switch, "seasonal_naive", 80)
    policy = Leadtime(cfg, tier1, "svc", series.index[0])
    recorder = Recorder(policy)
    simulate(demand, cfg, recorder, HPA(cfg), switch)
    replayed = recorder.passes
    assert len(replayed) == len(series) - switch

    config_path = state.home / "leadtime.yaml"
    config_path.write_text(yaml.safe_dump(replay_config(cfg, "svc").model_dump(mode="json")))
    settings = state.model_copy(update={"config_path": config_path,
                                        "api_token": SecretStr(TOKEN)})
    clock = ReplayClock(series.index[switch].timestamp() - 3600)
    app = create_app(settings, load=False, clock=clock)
    runtime = app.state.leadtime.decisions
    published = {pd.Timestamp(day).timestamp(): bundle for day, bundle in tier1.published}
    mismatches = []
    warmed = 0
    with TestClient(app) as client:
        for (now, expected), obs in zip(replayed, recorder.observations, strict=True):
            if now in published:  # midnight: the daily flow registers a new champion
                register_champion(published[now], settings.baseline_model_name,
                                  settings.experiment)
                replacing = runtime.tier1 is not None
                runtime.load()
                assert runtime.tier1_version is not None, runtime.tier1_error
                # a champion replacing another had its forecast table built in the reload, not
                # left to the next pass (the first is left to it: start-up must not wait)
                tables = runtime.tier1.unwrap_python_model().bundle._tables
                assert (("svc", runtime.config.engine.level) in tables) == replacing
                warmed += replacing
            clock.set(now)
            if obs.last_load is not None and obs.step > 0:
                stamp = pd.Timestamp(now, unit="s", tz="UTC").isoformat()
                r = client.post("/v1/observations", headers=AUTH, json={"metrics": [
                    {"timestamp": stamp, "producer_id": "svc", "metric": "load",
                     "value": obs.last_load}]})
                assert r.status_code == 200, r.text
            ack = client.post("/v1/producers/state", headers=AUTH, json={"producers": [
                {"producer_id": "svc", "instances": obs.current,
                 "current_load": obs.last_load}]})
            assert ack.status_code == 200, ack.text
            body = client.get("/v1/decisions", params={"after_pass": ack.json()["pass"]}).json()
            assert body["decided_at"] == now
            got = body["decisions"][0]
            same = (got["target_instances"] == expected.target_instances
                    and got["action"] == expected.action
                    and _close(got["load_score"], expected.load_score)
                    and _close(_point(got), expected.prediction.point
                               if expected.prediction else None))
            if not same:
                mismatches.append((pd.Timestamp(now, unit="s"), got, expected))
        served_weights = runtime.loop.weights
    assert warmed >= 1  # at least one champion replaced another
    assert not mismatches, f"{len(mismatches)} of {len(replayed)} steps differ; first: " \
                           f"{mismatches[0]}"
    # the comparison is not vacuous: Tier 1 and Tier 3 both answered, and the fleet moved
    # ... both loops recalibrated at the same midnights, to the same weights
    assert policy.weight_history and served_weights == pytest.approx(policy.weights)
    used = {t for _, d in replayed if d.prediction for t in d.prediction.weights}
    assert used == {"tier1", "tier3"}
    assert len({d.target_instances for _, d in replayed}) > 3


def _point(decision: dict) -> float | None:
    return decision["prediction"]["point"] if decision["prediction"] else None


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (np.isnan(a) and np.isnan(b))
