"""Decisions API: tier breakdown, pools, selection weights, dry-run, auth, log, metrics."""

from __future__ import annotations

import time

import pytest
import yaml

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = {
    "engine": {"mode": "dry_run", "threshold": 0.5, "decision_interval_s": 3600},
    "pools": {"web": {"defaults": {"capacity_per_instance": 10, "max_instances": 3,
                                   "tier2_load_per_demand": 300},
                      "producers": [{"id": "hot"}, {"id": "cool"}]},
              "batch": {"producers": [{"id": "solo", "capacity_per_instance": 5,
                                       "tier2_load_per_demand": 300}]}},
}


def announce(runtime):
    """Tier 2's real source, fed as /v1/requests/predict feeds it: with a 300 s lead time and
    300 load units per unit of demand per second, each producer's Tier 2 answer is the sum of
    the demand announced for it; hot is predicted near saturation."""
    runtime.tier2.add(time.time(), [("hot", 28.0, 25.2, 30.8), ("cool", 3.0, 2.7, 3.3),
                                    ("solo", 1.0, 0.9, 1.1)])


def make_client(tmp_path, token=TOKEN, config=CONFIG):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from leadtime.settings import Settings
    from serving.app import create_app

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "leadtime.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = Settings(home=tmp_path / "home", config_path=path,
                        api_token=SecretStr(token) if token else None)
    app = create_app(settings, load=False)
    runtime = app.state.leadtime.decisions
    runtime.tier3 = None  # no Tier 3 service in the fast tests
    announce(runtime)
    return TestClient(app), runtime


@pytest.fixture
def client(tmp_path):
    test_client, runtime = make_client(tmp_path)
    with test_client:
        yield test_client, runtime


def test_decisions_all_and_by_pool(client):
    c, runtime = client
    reported = c.post("/v1/producers/state", headers=AUTH,
                      json={"producers": [{"producer_id": "hot", "instances": 3,
                                           "current_load": 25},
                                          {"producer_id": "cool", "instances": 3,
                                           "current_load": 3}]}).json()
    # the loop decides on its own thread; reading "after" the report's pass waits for it
    body = c.get("/v1/decisions", params={"after_pass": reported["pass"]}).json()
    assert body["pass"] > reported["pass"]
    assert {d["producer_id"] for d in body["decisions"]} == {"hot", "cool", "solo"}
    assert body["mode"] == "dry_run" and not any(d["act"] for d in body["decisions"])
    assert "tier1" in body["degraded"]  # no champion loaded (load=False): said, not hidden
    hot = next(d for d in body["decisions"] if d["producer_id"] == "hot")
    assert hot["prediction"]["weights"] == {"tier2": 1.0}  # only Tier 2 answered
    web = body["pools"]["web"]
    assert sum(web["redirect"].values()) == pytest.approx(1)
    assert web["redirect"]["hot"] < web["current_share"]["hot"] and web["act"] is False
    only = c.get("/v1/decisions", params={"pool": "batch"}).json()
    assert [d["producer_id"] for d in only["decisions"]] == ["solo"]
    assert c.get("/v1/decisions", params={"pool": "nope"}).status_code == 404
    # GETs only read: the passes logged are the start-up pass and the one the report woke
    counts = runtime.decision_log.counts()
    assert counts["batches"] == 2 and counts["decisions"] == 6 and counts["tier_predictions"] == 6


def test_producer_breakdown_and_selection_weights(client):
    c, _ = client
    out = c.get("/v1/producers/hot").json()
    assert out["tiers"]["tier2"]["prediction"]["point"] == 28.0
    assert out["tiers"]["tier2"]["used_weight"] == 1.0
    assert out["tiers"]["tier1"]["degraded"] and out["decision"]["pool"] == "web"
    assert c.get("/v1/producers/unknown").status_code == 404
    weights = c.get("/v1/selection-weights").json()["pools"]
    assert sum(weights["web"]["weights"].values()) == pytest.approx(1)
    assert weights["web"]["weights"]["hot"] == 0.0  # over the threshold: no new consumers


def test_writes_and_admin_need_the_token(client, tmp_path):
    c, _ = client
    assert c.post("/v1/admin/reload").status_code == 401
    assert c.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    state = {"producers": [{"producer_id": "hot", "instances": 1}]}
    assert c.post("/v1/producers/state", json=state).status_code == 401
    assert c.post("/v1/producers/state", json=state, headers=AUTH).status_code == 200
    closed, _ = make_client(tmp_path / "closed", token=None)
    with closed:
        assert closed.post("/v1/admin/reload", headers=AUTH).status_code == 503


def test_readyz_metrics_and_bad_config(client, tmp_path):
    c, _ = client
    ready = c.get("/readyz").json()
    assert ready["ready"] and ready["tiers"]["tier1"] == "degraded"
    c.get("/v1/decisions")
    text = c.get("/metrics").text
    assert "leadtime_decisions_total" in text and "leadtime_engine_pass_seconds" in text
    bad, _ = make_client(tmp_path / "bad", config={"pools": {}})
    with bad:
        r = bad.get("/readyz")
        assert r.status_code == 503 and "pools" in r.json()["config"]["error"]
        assert bad.get("/v1/decisions").status_code == 503


def test_act_mode_flags_changes_to_act(tmp_path):
    config = {**CONFIG, "engine": {**CONFIG["engine"], "mode": "act"}}
    c, _ = make_client(tmp_path, config=config)
    with c:
        body = c.get("/v1/decisions").json()
        hot = next(d for d in body["decisions"] if d["producer_id"] == "hot")
        assert hot["action"] == "scale_out" and hot["act"] is True
