"""The Prefect flows `features-materialize` and `intent-retrain` on a tiny generated trace."""

from __future__ import annotations

import pytest

from features.synthetic import write_request_trace
from models.tier2.intent import IntentConfig

pytestmark = pytest.mark.slow


def _prefect_api_or_skip():
    try:
        import prefect.server.api.server  # noqa: F401  (the ephemeral API the flows need)
    except Exception as exc:  # e.g. a FastAPI release the pinned Prefect cannot import
        pytest.skip(f"Prefect's ephemeral API cannot start here: {exc}")


def test_intent_retrain_flow_registers_and_materializes(tmp_path, monkeypatch):
    _prefect_api_or_skip()
    from flows.intent import intent_retrain
    from flows.materialize import features_materialize
    from leadtime.settings import Settings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(home=tmp_path / "state")
    path = write_request_trace(tmp_path / "data", n=300)
    done = features_materialize(str(path), settings=settings)
    assert done["rows"]["consumer_profile"] > 0
    result = intent_retrain(str(path), settings=settings,
                            config=IntentConfig(iterations=60, depth=4, thread_count=1))
    assert result["version"] == "1" and result["promoted"]
    assert result["holdout"]["models"]["intent"]["coverage_80"] is not None

    # a second version of the same trace: its description shows both versions on one holdout
    again = intent_retrain(str(path), settings=settings,
                           config=IntentConfig(iterations=60, depth=4, thread_count=1))
    from mlflow import MlflowClient

    review = MlflowClient(settings.tracking_uri).get_model_version(
        "leadtime-intent", again["version"]).description
    assert again["version"] == "2" and "champion (v1)" in review
    rows = {line.split("|")[1].strip(): line for line in review.splitlines()
            if line.startswith("| ")}
    assert rows["**holdout MAE** (decides)"].count("–") == 0  # the champion has a score
    assert rows["80 % coverage (target 0.80)"].count("–") == 0
    assert "Baselines on the same holdout, MAE: " in review and "Made by run [" in review
