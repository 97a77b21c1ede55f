"""``Settings.prepare()`` fills in Prefect's startup timeout and telemetry opt-outs, never overrides."""

from __future__ import annotations

from leadtime.settings import NO_TELEMETRY, Settings


def test_prepare_sets_defaults_without_overriding(tmp_path, monkeypatch):
    keys = ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_API_URL",
            "PREFECT_HOME", "PREFECT_API_DATABASE_CONNECTION_URL", *NO_TELEMETRY]
    for key in keys:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # the user's choice stands
    Settings(home=tmp_path / "state").prepare()
    import os

    assert int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 60
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "0"


def test_mlflow_is_told_to_send_nothing(tmp_path, monkeypatch):
    """MLflow 3 reads only MLFLOW_DISABLE_TELEMETRY or DO_NOT_TRACK=true (pytest alone already
    silences it, so the check is on what MLflow reads, not on a connection)."""
    for key in NO_TELEMETRY:
        monkeypatch.delenv(key, raising=False)
    Settings(home=tmp_path / "state").prepare()
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

    assert MLFLOW_DISABLE_TELEMETRY.get() is True
    import os

    assert os.environ["DO_NOT_TRACK"] == "true"
