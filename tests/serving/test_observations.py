"""POST /v1/observations: auth, batches, duplicates, 422 naming the field; GET /v1/tier3/{p}."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # each test restores from a fresh MLflow store (~5 s)

TOKEN = "s3cret"


@pytest.fixture
def client(state):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from serving.app import create_app

    settings = state.model_copy(update={"api_token": SecretStr(TOKEN)})
    with TestClient(create_app(settings, load=False)) as test_client:
        yield test_client


def body(n: int = 5, start: int = 0) -> dict:
    return {"events": [{"timestamp": f"2025-01-01T00:00:{i:02d}Z", "consumer_id": f"c{i % 2}",
                        "producer_id": "p1", "latency_ms": 100 + i, "demand": 2.0}
                       for i in range(start, start + n)],
            "metrics": [{"timestamp": "2025-01-01T00:01:00Z", "producer_id": "p1",
                         "metric": "load", "value": 12.5}]}


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_batch_accepted_then_duplicates_ignored(client):
    first = client.post("/v1/observations", json=body(), headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json()["accepted_events"] == 5 and first.json()["accepted_metrics"] == 1
    assert "started empty" in first.json()["restore"]
    again = client.post("/v1/observations", json=body(), headers=AUTH).json()
    assert again["duplicates"] == 6 and again["accepted_events"] == 0
    out = client.get("/v1/tier3/p1").json()
    assert out["prediction"]["point"] == pytest.approx(12.5)
    assert client.get("/v1/tier3/unknown").status_code == 404


def test_writes_refused_without_the_token(client, state):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    assert client.post("/v1/observations", json=body()).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/observations", json=body(), headers=wrong).status_code == 401
    with TestClient(create_app(state, load=False)) as no_token:  # no token configured
        assert no_token.post("/v1/observations", json=body(), headers=AUTH).status_code == 503


@pytest.mark.parametrize("patch, field", [
    ({"latency_ms": -5}, "latency_ms"),
    ({"error": "maybe"}, "error"),
    ({"producer_id": None}, "producer_id"),
    ({"extra_field": 1}, "extra_field"),
    ({"latency_ms": "100"}, "latency_ms"),  # strict: no coercion of strings to numbers
    ({"error": "true"}, "error"),
    ({"error": 1}, "error"),
    ({"timestamp": 1735689600}, "timestamp"),
])
def test_malformed_event_gets_422_naming_the_field(client, patch, field):
    payload = body(2)
    payload["events"][1].update(patch)
    response = client.post("/v1/observations", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert any(field in map(str, err["loc"]) for err in response.json()["detail"])
    # nothing of a refused batch is applied
    assert client.get("/v1/tier3").json()["events_total"] == 0


@pytest.mark.parametrize("value", ["12.5", False, None, [12.5]])
def test_metric_value_of_the_wrong_type_gets_422(client, value):
    payload = body(1)
    payload["metrics"][0]["value"] = value
    response = client.post("/v1/observations", json=payload, headers=AUTH)
    assert response.status_code == 422, response.text
    assert ["body", "metrics", 0, "value"] in [err["loc"] for err in response.json()["detail"]]
    assert client.get("/v1/tier3").json()["events_total"] == 0


def test_a_body_that_is_not_json_gets_422(client):
    response = client.post("/v1/observations", content=b"\xff{", headers=AUTH)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body"]
