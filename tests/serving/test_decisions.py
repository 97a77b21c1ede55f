"""Decisions API: tier breakdown, pools, selection weights, dry-run, auth, log, metrics."""

from __future__ import annotations

import time

import pytest
import yaml

from leadtime.config import ENGINE_DEFAULTS

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
    # the reacting floor: 25 needs ceil(25 / (10 x 0.7)) = 4 at the target, within max 3
    assert hot["floor"] == 3 and hot["target_instances"] >= hot["floor"]
    cool = next(d for d in body["decisions"] if d["producer_id"] == "cool")
    assert cool["floor"] == 1  # 3 needs one instance
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
    # the price mode: the budget mode holds what reacting holds until its sizing is calibrated
    engine = {**CONFIG["engine"], "mode": "act", "sizing_budget": None}
    c, _ = make_client(tmp_path, config={**CONFIG, "engine": engine})
    with c:
        body = c.get("/v1/decisions").json()
        hot = next(d for d in body["decisions"] if d["producer_id"] == "hot")
        assert hot["action"] == "scale_out" and hot["act"] is True


def test_a_fresh_loop_in_the_budget_mode_reacts_until_calibrated_and_says_so(tmp_path):
    """The budget mode (the default) buys nothing ahead before it has measured what buying
    costs: the first decisions hold the reacting floor, and the reasons and sizing say why."""
    c, _ = make_client(tmp_path, config={**CONFIG, "engine": {**CONFIG["engine"], "mode": "act"}})
    with c:
        state = {"producers": [{"producer_id": "hot", "instances": 2, "current_load": 10.0}]}
        reported = c.post("/v1/producers/state", json=state, headers=AUTH).json()
        body = c.get("/v1/decisions", params={"after_pass": reported["pass"]}).json()
        hot = next(d for d in body["decisions"] if d["producer_id"] == "hot")
        assert hot["sizing"]["price"] == 0.0
        assert hot["sizing"]["budget"] == ENGINE_DEFAULTS.sizing_budget == 1.03
        assert hot["target_instances"] == hot["floor"]
        assert any("not calibrated yet" in r for r in hot["reasons"])


def test_decisions_carry_an_etag_and_gzip(client):
    c, _ = client
    first = c.get("/v1/decisions")
    etag = first.headers["etag"]
    assert c.get("/v1/decisions", headers={"If-None-Match": etag}).status_code == 304
    zipped = c.get("/v1/decisions", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.json() == first.json()
    # a new pass is a new answer, and a new ETag
    reported = c.post("/v1/producers/state", headers=AUTH,
                      json={"producers": [{"producer_id": "cool", "instances": 2}]}).json()
    newer = c.get("/v1/decisions", params={"after_pass": reported["pass"]},
                  headers={"If-None-Match": etag})
    assert newer.status_code == 200 and newer.headers["etag"] != etag


def test_unknown_producers_refuse_the_whole_report(client):
    c, runtime = client
    body = {"producers": [{"producer_id": "hot", "instances": 7},
                          {"producer_id": "ghost", "instances": 1}]}
    r = c.post("/v1/producers/state", headers=AUTH, json=body)
    assert r.status_code == 404 and "'ghost'" in r.json()["detail"]
    assert "ghost" not in runtime.loop.states and runtime.loop.states.get("hot") is None
    ok = c.post("/v1/producers/state", headers=AUTH, json={"producers": body["producers"][:1]})
    assert ok.json()["accepted"] == 1 and ok.json()["durable"] is True


def test_history_pages_through_the_log(client):
    c, _ = client
    for n in (1, 2, 3):
        reported = c.post("/v1/producers/state", headers=AUTH,
                          json={"producers": [{"producer_id": "solo", "instances": n}]}).json()
        c.get("/v1/decisions", params={"after_pass": reported["pass"]})
    page = c.get("/v1/decisions/history", params={"producer_id": "solo", "limit": 2}).json()
    assert len(page["decisions"]) == 2 and page["next"] is not None
    rest = c.get("/v1/decisions/history", params={"producer_id": "solo", "limit": 2,
                                                  "cursor": page["next"]}).json()
    rows = page["decisions"] + rest["decisions"]
    assert {r["producer_id"] for r in rows} == {"solo"}
    assert [r["current_instances"] for r in rows][-3:] == [1, 2, 3]
    assert all(isinstance(r["reasons"], list) and r["reasons"] for r in rows)
    later = c.get("/v1/decisions/history",
                  params={"since": rows[-1]["decided_at"] + 1}).json()
    assert later == {"decisions": [], "next": None}
    assert c.get("/v1/decisions/history", params={"limit": 5000}).status_code == 422


def test_long_polls_beyond_the_bound_get_429(client, monkeypatch):
    import serving.decisions as decisions

    c, _ = client
    monkeypatch.setattr(decisions, "MAX_WAITING", 0)
    r = c.get("/v1/decisions", params={"after_pass": 10**9})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert c.get("/v1/decisions").status_code == 200  # a plain read never waits
