"""POST /v1/requests/predict against a real registered model and a real Feast SQLite store."""

from __future__ import annotations

import pytest
import yaml

from features.synthetic import write_request_trace
from models.tier2.intent import IntentConfig

pytestmark = pytest.mark.slow
TOKEN = "s3cret"


POOLS = {"gen": {"defaults": {"capacity_per_instance": 10, "spinup_lead_time_s": 300,
                               "tier2_load_per_demand": 300.0},
                  "producers": [{"id": "P1"}, {"id": "P9"}]}}


def intent_champion(root, interval_s: float = 1e-6, pools=None, n: int = 300,
                    resources: bool = False, engine=None):
    """Settings under ``root`` whose registry holds a trained ``leadtime-intent`` champion (a
    small CatBoost on a synthetic request trace of ``n`` requests, declaring CPU and memory with
    ``resources``, its Feast store materialised); the loop runs a pass every ``interval_s`` (at
    once, by default) over ``pools`` (default :data:`POOLS`), ``engine`` adding settings."""
    from pydantic import SecretStr

    from leadtime.settings import Settings
    from models.tier2.train import retrain

    config = root / "leadtime.yaml"
    config.write_text(yaml.safe_dump({
        "engine": {"decision_interval_s": interval_s, **(engine or {})},
        "pools": pools or POOLS}))
    settings = Settings(home=root / "state", config_path=config,
                        api_token=SecretStr(TOKEN)).prepare()
    path = write_request_trace(root / "data", n=n, resources=resources)
    retrain(settings, path, IntentConfig(iterations=60, depth=4, thread_count=1))
    return settings


def serve(root, **champion):
    """A test client of the app on :func:`intent_champion`'s settings under ``root``, MLflow's
    registry under its home (the environment's tracking URI set aside meanwhile)."""
    import os

    from fastapi.testclient import TestClient

    from serving.app import create_app

    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        with TestClient(create_app(intent_champion(root, **champion))) as test_client:
            yield test_client
    finally:
        if old is not None:
            os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("serving"))


def test_single_request(client):
    body = {"consumer_id": "C001", "producer_id": "P1", "request_type": "TXT_2_IMG",
            "steps": 30, "images": 2}
    response = client.post("/v1/requests/predict", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["lower"] <= out["demand"] <= out["upper"]
    assert out["consumer_known"] is True and out["feature_source"] == "consumer"
    assert out["model"]["version"] == "1" and out["features"]["c_n"] > 0


def test_batch_and_unknown_consumer_falls_back_to_population(client):
    body = [{"consumer_id": "C001", "producer_id": "P1", "request_type": "TXT_2_IMG",
             "steps": 30, "images": 2},
            {"consumer_id": "stranger", "producer_id": "P1", "request_type": "TXT_2_IMG",
             "steps": 30, "images": 2}]
    response = client.post("/v1/requests/predict", json=body)
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["consumer_known"] is True
    assert second["consumer_known"] is False and second["feature_source"] == "population"
    assert second["features"]["c_demand_p50"] == second["features"]["pop_demand_p50"]


@pytest.mark.parametrize("body, field", [
    ({"consumer_id": "C001", "steps": "many"}, "steps"),
    ({"consumer_id": "C001", "steps": "30"}, "steps"),  # strict: a number is a JSON number
    ({"consumer_id": "C001", "steps": True}, "steps"),
    ({"consumer_id": 7}, "consumer_id"),
    ({"consumer_id": "C001", "colour": "red"}, "colour"),
    ([{"consumer_id": "C001"}, {"images": "x"}], "images"),
])
def test_malformed_request_gets_422_naming_the_field(client, body, field):
    response = client.post("/v1/requests/predict", json=body)
    assert response.status_code == 422
    assert any(field in map(str, err["loc"]) for err in response.json()["detail"])


@pytest.mark.parametrize("steps", [-1e300, -1, 1e13])
def test_a_request_field_outside_its_range_is_a_422(client, steps):
    """The champion never saw a negative step count, so none is served; nothing is near 1e12."""
    body = {"consumer_id": "C001", "request_type": "TXT_2_IMG", "steps": steps, "images": 2}
    response = client.post("/v1/requests/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "steps"]


def test_healthz(client):
    assert client.get("/healthz").json()["intent"]["version"] == "1"


def test_announced_demand_feeds_the_engine_as_tier2(client):
    """Requests predicted for a producer become its Tier 2 answer: the demand announced over the
    last lead time, per second, times ``tier2_load_per_demand`` (300 s x 1/300 s here)."""
    before = client.get("/v1/producers/P9").json()["tiers"]["tier2"]
    assert before["prediction"] is None and before["degraded"]
    body = [{"consumer_id": c, "producer_id": "P9", "request_type": "TXT_2_IMG", "steps": 30,
             "images": 2} for c in ("C001", "C002", "stranger")]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # predicting is a read: without the token the answer comes, and says nothing was announced
    open_read = client.post("/v1/requests/predict", json=body).json()
    assert open_read["announced"] == 0 and "bearer token" in open_read["not_announced"]
    # a producer that is not in leadtime.yaml is never recorded (bounded memory)
    stranger = client.post("/v1/requests/predict", headers=auth,
                           json=[{**body[0], "producer_id": "not-configured"}]).json()
    assert stranger["announced"] == 0 and "not-configured" in stranger["not_announced"]
    answer = client.post("/v1/requests/predict", headers=auth, json=body).json()
    assert answer["announced"] == 3 and "not_announced" not in answer
    predictions = answer["predictions"]
    # the loop decides on its own schedule or when states are reported: report, then read the
    # pass the report woke
    ack = client.post("/v1/producers/state", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"producers": [{"producer_id": "P9", "instances": 2}]}).json()
    tier2 = client.get("/v1/producers/P9",
                       params={"after_pass": ack["pass"]}).json()["tiers"]["tier2"]
    assert tier2["prediction"] is not None, tier2
    assert tier2["prediction"]["point"] == pytest.approx(sum(p["demand"] for p in predictions))
    assert tier2["prediction"]["upper"] == pytest.approx(sum(p["upper"] for p in predictions))
    assert tier2["used_weight"] > 0


def test_reload_rereads_the_intent_champion_and_readyz_reports_it(client):
    response = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json()["champions"]["leadtime-intent"] == {"version": "1", "loaded": True,
                                                               "error": None}
    assert client.post("/v1/requests/predict", json={"consumer_id": "C001", "steps": 30,
                                                     "images": 2}).status_code == 200


def test_openapi_publishes_the_champions_request_schema(client):
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/requests/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IntentPredictBody"}
    request = document["components"]["schemas"]["IntentRequest"]
    assert request["additionalProperties"] is False and "required" not in request
    assert {"consumer_id", "producer_id", "request_type", "steps", "images"} <= set(
        request["properties"])
    assert all("Optional" in field["description"] for field in request["properties"].values())


def test_without_a_champion_the_body_is_validated_before_the_503(state):
    """No champion: a malformed body is still a 422 (the generic request contract), a valid one
    a 503 saying what to run."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    with TestClient(create_app(state)) as client:
        for bad in ({"steps": [1]}, {"steps": True}, [{"consumer_id": 3}], "text", 3):
            response = client.post("/v1/requests/predict", json=bad)
            assert response.status_code == 422, (bad, response.text)
        assert client.post("/v1/requests/predict", content=b"{not json").status_code == 422
        refused = client.post("/v1/requests/predict", json={"consumer_id": "C1", "steps": 30})
        assert refused.status_code == 503 and "intent retrain" in refused.json()["detail"]
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert "GenericRequest" in schemas and "IntentRequest" not in schemas


def test_tracked_requests_hold_tier2_until_reported_finished(client):
    """A request with a request_id is tracked in flight (the champion predicts seconds): Tier 2
    holds it from now for its predicted run time, until progress reports it finished."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = [{"consumer_id": "C001", "producer_id": "P1", "request_type": "TXT_2_IMG",
             "steps": 30, "images": 2, "request_id": f"r{i}"} for i in range(3)]
    answer = client.post("/v1/requests/predict", headers=auth, json=body).json()
    assert answer["announced"] == 3 and answer["in_flight"] == 3
    assert "leadtime_tier2_in_flight_requests 3.0" in client.get("/metrics").text
    ack = client.post("/v1/producers/state", headers=auth,
                      json={"producers": [{"producer_id": "P1", "instances": 2}]}).json()
    tier2 = client.get("/v1/producers/P1",
                       params={"after_pass": ack["pass"]}).json()["tiers"]["tier2"]
    # three requests running now, each 300 load units (tier2_load_per_demand) while it runs
    assert tier2["prediction"]["point"] >= 3 * 300.0
    done = client.post("/v1/requests/progress", headers=auth, json={"finished": [
        {"producer_id": "P1", "request_id": "r0"}, {"producer_id": "P1", "request_id": "gone"}]})
    assert done.json() == {"started": 0, "finished": 1, "unknown": 1}
    text = client.get("/metrics").text
    assert "leadtime_tier2_in_flight_requests 2.0" in text
    assert "leadtime_tier2_unknown_progress_total 1.0" in text
    assert "leadtime_tier2_run_times_recorded 1.0" in text  # r0's, finished as reported
    # a request a queue holds counts as queued until its start is reported
    queued = {**body[0], "request_id": "q0", "queued": True}
    assert client.post("/v1/requests/predict", headers=auth, json=queued).json()["in_flight"] == 1
    assert "leadtime_tier2_queued_requests 1.0" in client.get("/metrics").text
    assert client.post("/v1/requests/predict", headers=auth,
                       json={**queued, "queued": "yes"}).status_code == 422
    started = client.post("/v1/requests/progress", headers=auth, json={"started": [
        {"producer_id": "P1", "request_id": "q0"}]})
    assert started.json() == {"started": 1, "finished": 0, "unknown": 0}
    text = client.get("/metrics").text
    assert "leadtime_tier2_queued_requests 0.0" in text
    # its wait is recorded; one wait is too few for its producer's queue to be learnt
    assert "leadtime_tier2_queue_waits_recorded 1.0" in text
    assert "leadtime_tier2_queue_learnt_producers 0.0" in text
    assert client.post("/v1/requests/progress", json={"finished": []}).status_code == 401


def test_finished_run_times_recalibrate_the_interval_of_their_calibration_key(client):
    """Online recalibration: once a calibration key has its 100 outcomes, tracked requests
    reported finished far past their interval's upper end widen the interval served to the next
    request of that key; /metrics shows the key's outcomes, coverage and widening."""
    import time

    from models.tier2.online_calibration import MIN_OUTCOMES

    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"consumer_id": "C002", "producer_id": "P1", "request_type": "TXT_2_IMG",
            "steps": 30, "images": 2}
    before = client.post("/v1/requests/predict", json=body).json()
    key = before["calibration_key"]
    assert key
    tracked = [{**body, "request_id": f"slow{i}"} for i in range(MIN_OUTCOMES)]
    answer = client.post("/v1/requests/predict", headers=auth, json=tracked).json()
    assert answer["in_flight"] == MIN_OUTCOMES
    late = time.time() + 10 * before["upper"] + 3600.0  # far past any interval's upper end
    done = client.post("/v1/requests/progress", headers=auth, json={"finished": [
        {"producer_id": "P1", "request_id": f"slow{i}", "at_s": late}
        for i in range(MIN_OUTCOMES)]})
    assert done.json()["finished"] == MIN_OUTCOMES
    after = client.post("/v1/requests/predict", json=body).json()
    assert after["demand"] == pytest.approx(before["demand"])
    assert after["upper"] > before["upper"] and after["lower"] <= before["lower"]
    text = client.get("/metrics").text
    outcomes = _metric(text, f'leadtime_tier2_interval_outcomes_total{{key="{key}"}}')
    assert outcomes >= MIN_OUTCOMES  # and any finished in the tests before, at their report
    assert (_metric(text, f'leadtime_tier2_interval_coverage{{key="{key}"}}')
            <= 1 - MIN_OUTCOMES / outcomes)
    assert _metric(text, f'leadtime_tier2_interval_widening{{key="{key}"}}') > 0


def _metric(text: str, series: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(series + " "))
    return float(line.rsplit(" ", 1)[1])
