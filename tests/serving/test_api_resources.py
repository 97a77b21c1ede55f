"""A two-resource producer through the API: loads per resource in, the binding one's count and
name out; a resource the producer does not declare is refused whole."""

from __future__ import annotations

import pytest

from tests.serving.test_decisions import AUTH, make_client

CONFIG = {
    "engine": {"mode": "dry_run", "decision_interval_s": 3600, "reacting_tolerance": 0.0},
    "pools": {"data": {"producers": [
        {"id": "db", "target_utilisation": 1.0, "max_utilisation": 1.0,
         "resources": {"cpu": {"capacity_per_instance": 4},
                       "memory": {"capacity_per_instance": 16}}},
        {"id": "web", "capacity_per_instance": 10}]}},
}


@pytest.fixture
def client(tmp_path):
    test_client, runtime = make_client(tmp_path, config=CONFIG)
    with test_client:
        yield test_client, runtime


def test_the_binding_resource_is_named_in_the_decision(client):
    c, _ = client
    reported = c.post("/v1/producers/state", headers=AUTH, json={"producers": [
        {"producer_id": "db", "instances": 2, "loads": {"cpu": 2.0, "memory": 90.0}},
        {"producer_id": "web", "instances": 1, "current_load": 5}]})
    assert reported.status_code == 200 and reported.json()["accepted"] == 2
    body = c.get("/v1/decisions", params={"after_pass": reported.json()["pass"]}).json()
    db = next(d for d in body["decisions"] if d["producer_id"] == "db")
    assert (db["resource"], db["target_instances"], db["by_resource"]) == (
        "memory", 6, {"cpu": 1, "memory": 6})
    assert db["reasons"][0] == "binding resource memory: 6 instance(s) (cpu 1)"
    web = next(d for d in body["decisions"] if d["producer_id"] == "web")
    assert web["resource"] == "load" and web["by_resource"] == {"load": web["target_instances"]}
    one = c.get("/v1/producers/db", params={"after_pass": reported.json()["pass"]}).json()
    assert one["decision"]["resource"] == "memory" and set(one["tiers"]) == {"tier1", "tier2",
                                                                             "tier3"}
    metrics = c.get("/metrics").text
    assert 'leadtime_binding_resource{producer_id="db",resource="memory"} 1.0' in metrics
    assert 'leadtime_binding_resource{producer_id="db",resource="cpu"} 0.0' in metrics
    assert 'leadtime_resource_instances{producer_id="db",resource="memory"} 6.0' in metrics
    assert 'leadtime_resource_load{producer_id="db",resource="memory"} 90.0' in metrics
    assert 'producer_id="web",resource=' not in metrics  # its one load: no resource series


@pytest.mark.parametrize(("state", "says"), [
    ({"producer_id": "db", "instances": 1, "loads": {"gpu": 1.0}},
     "'db' declares no resource gpu (its resources: cpu, memory)"),
    ({"producer_id": "db", "instances": 1, "current_load": 3.0},
     "'db' is sized on cpu, memory: report them in loads, not current_load"),
    ({"producer_id": "web", "instances": 1, "loads": {"cpu": 1.0}},
     "'web' declares no resource cpu (its resources: load)"),
])
def test_a_resource_the_producer_does_not_declare_is_refused_whole(client, state, says):
    c, runtime = client
    r = c.post("/v1/producers/state", headers=AUTH, json={"producers": [
        {"producer_id": "web", "instances": 4, "current_load": 1.0}, state]})
    assert r.status_code == 422 and says in r.json()["detail"]
    assert "nothing of the report was recorded" in r.json()["detail"]
    assert runtime.loop.states.get("web") is None  # the good one was not applied either


def test_a_malformed_resource_name_is_a_422(client):
    c, _ = client
    r = c.post("/v1/producers/state", headers=AUTH, json={"producers": [
        {"producer_id": "db", "instances": 1, "loads": {"CPU!": 1.0}}]})
    assert r.status_code == 422
