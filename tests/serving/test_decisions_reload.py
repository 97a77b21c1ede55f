"""Reload against a real (empty) MLflow store, under concurrent reads: no errors, no drops."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.slow

TOKEN = "s3cret"


def test_reload_under_load_without_errors(state, tmp_path):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from leadtime.settings import PROJECT_ROOT
    from serving.app import create_app

    settings = state.model_copy(update={"api_token": SecretStr(TOKEN),
                                        "config_path": PROJECT_ROOT / "leadtime.yaml"})
    app = create_app(settings, load=True)
    runtime = app.state.leadtime.decisions
    statuses: list[int] = []
    stop = threading.Event()
    with TestClient(app) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["champions"]["leadtime-baseline"]["loaded"] is False
        assert "no champion" in ready["champions"]["leadtime-baseline"]["error"]
        intent = ready["champions"]["leadtime-intent"]  # Tier 2: missing, said, not fatal
        assert intent["loaded"] is False and "no champion" in intent["error"]

        def reader():
            while not stop.is_set():
                statuses.append(client.get("/v1/decisions").status_code)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for _ in range(3):
            r = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200 and r.json()["ready"]
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}
    assert runtime.decision_log.counts()["batches"] >= 1
