"""The ``recalibrate`` flow for real: decision log → MLflow weights champion → engine reload."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow


def fill_log(path, windows: int = 30, tier1_drift_from: int | None = None):
    """Logged passes where Tier 1 is exact, Tier 2 is 40 % high and Tier 3 is 25 % low; from
    window ``tier1_drift_from`` on, Tier 1 is 50 % high (its error drifts)."""
    from leadtime.config import DEFAULT_WEIGHTS, producer_config
    from leadtime.engine import ProducerState, TierPrediction, decide_all
    from loop.decision_log import DecisionLog

    log = DecisionLog(path)
    configs = {p: producer_config(p, 10.0, spinup_lead_time_s=300) for p in ("a", "b")}
    observed = []
    for w in range(windows):
        now = 1_700_000_000 + 600.0 * w  # windows of 300 s that do not overlap
        tiers = {}
        for p, base in (("a", 50.0), ("b", 200.0)):
            actual = base * (1 + 0.3 * math.sin(w / 4))
            t1 = actual * (1.5 if tier1_drift_from is not None and w >= tier1_drift_from else 1.0)
            tiers[p] = {"tier1": TierPrediction(t1, t1 * 0.9, t1 * 1.1),
                        "tier2": TierPrediction(actual * 1.4, actual, actual * 1.8),
                        "tier3": TierPrediction(actual * 0.75, actual * 0.6, actual)}
            observed.append((p, now + 300, actual))
        fleet = decide_all(configs, tiers, {p: ProducerState(2, now_s=now) for p in configs},
                           weights=DEFAULT_WEIGHTS, threshold=0.6)
        log.append(fleet, tiers, configs, now)
    log.record_observed(observed)
    log.close()


def test_recalibrate_promotes_better_weights_and_reload_picks_them_up(state, tmp_path):
    from flows.recalibrate import recalibrate
    from leadtime.settings import PROJECT_ROOT
    from serving.decisions import DecisionRuntime

    fill_log(state.decision_log)
    result = recalibrate()
    weights = result["weights"]
    assert max(weights, key=weights.get) == "tier1" and weights["tier1"] > 0.9
    assert result["candidate_error"] < result["current_error"]
    assert result["registration"]["promoted"] and result["registration"]["version"] == "1"

    settings = state.model_copy(update={"config_path": PROJECT_ROOT / "leadtime.yaml"})
    runtime = DecisionRuntime(settings)
    runtime.load()
    assert runtime.loop.weights == pytest.approx(weights)
    assert runtime.loop.weights_source == f"{state.weights_model_name} v1"

    # the same data again: the candidate scores the same as the champion → the fresher wins
    again = recalibrate()
    assert again["current"] == pytest.approx(weights)
    assert again["registration"]["version"] == "2"
    from mlflow import MlflowClient

    version = MlflowClient().get_model_version(state.weights_model_name, "2")
    review = version.description  # both weight sets and their errors, for the reviewer
    assert review.startswith("**Promoted to champion** (replaces v1).")  # equal: the fresher
    assert "| **scaled_mae_last_window** (decides) |" in review
    assert f"| weight of tier1 | {weights['tier1']:.4g} |" in review
    assert "/artifacts/plots/weights.png" in review
    artifacts = [a.path for a in MlflowClient().list_artifacts(version.run_id, "plots")]
    assert artifacts == ["plots/weights.png"]


def test_a_drifting_tier_starts_its_retraining_deployment(state):
    """Tier 1's error on the last window is far above its earlier error: the flow starts a run
    of the ``baseline-daily`` deployment (real Prefect API; nothing serves it, so it waits)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.deployments import build_deployments
    from flows.recalibrate import recalibrate

    deployment = next(d for d in build_deployments(state) if d.name == "baseline-daily")
    deployment_id = deployment.apply()
    fill_log(state.decision_log, windows=40, tier1_drift_from=32)
    result = recalibrate()
    assert result["retrain"] == ["tier1"]
    started = result["retraining_runs"]["tier1"]
    assert started.startswith("started baseline-daily/baseline-daily: flow run ")
    run_id = started.rsplit(" ", 1)[1]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[deployment_id])))
    assert run_id in {str(r.id) for r in runs}
