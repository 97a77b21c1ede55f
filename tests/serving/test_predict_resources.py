"""Tier 2 per resource through the API: a champion trained on a trace that declares CPU and
memory answers each request's cores and GiB, and a producer sized on both gets each resource's
own share in flight, not one demand scaled."""

from __future__ import annotations

import pytest

from tests.serving.test_predict import TOKEN, serve

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    pools = {"gen": {"defaults": {"spinup_lead_time_s": 300}, "producers": [
        {"id": "P1", "resources": {
            "cpu": {"capacity_per_instance": 8, "tier2_load_per_demand": 1.0},
            "memory": {"capacity_per_instance": 16, "tier2_load_per_demand": 1.0}}},
        {"id": "P2", "capacity_per_instance": 10, "tier2_load_per_demand": 1.0}]}}
    # the price mode: until the sizing calibrates, the tiers size (the budget mode holds what
    # reacting holds, whatever Tier 2 says)
    yield from serve(tmp_path_factory.mktemp("resources"), pools=pools, n=400, resources=True,
                     engine={"sizing_budget": None})


def test_each_request_gets_its_resources_with_intervals(client):
    body = {"consumer_id": "C001", "producer_id": "P1", "request_type": "TXT_2_IMG",
            "steps": 50, "images": 4}
    out = client.post("/v1/requests/predict", json=body).json()
    assert set(out["resources"]) == {"cpu", "memory"}
    memory, cpu = out["resources"]["memory"], out["resources"]["cpu"]
    assert memory["unit"] == "GiB" and cpu["unit"] == "cores"
    for r in (memory, cpu):
        assert 0 <= r["lower"] <= r["demand"] <= r["upper"]
    assert 10.0 < memory["demand"] < 24.0  # four images hold about 16 GiB
    assert 3.0 < cpu["demand"] < 7.0  # fifty steps about 5 cores
    small = client.post("/v1/requests/predict", json={**body, "images": 1}).json()
    assert small["resources"]["memory"]["demand"] < memory["demand"] / 2


def test_a_producer_sized_on_both_holds_each_resource_it_was_told(client):
    """Three tracked requests on P1: Tier 2's memory answer is the GiB they hold (the binding
    resource's tiers are P1's); a finish reported once for P1 releases every resource's share;
    P2, with one load, is announced as before."""
    rows = [{"consumer_id": "C001", "producer_id": "P1", "request_type": "TXT_2_IMG",
             "steps": 20, "images": 4, "request_id": f"r{i}"} for i in range(3)]
    answer = client.post("/v1/requests/predict", headers=AUTH, json=rows).json()
    assert answer["announced"] == 3 and answer["in_flight"] == 3
    assert answer["announced_resources"] == 6  # each request's cpu and memory
    gib = sum(p["resources"]["memory"]["demand"] for p in answer["predictions"])
    ack = client.post("/v1/producers/state", headers=AUTH, json={"producers": [
        {"producer_id": "P1", "instances": 1, "loads": {"cpu": 0.5, "memory": 1.0}}]}).json()
    one = client.get("/v1/producers/P1", params={"after_pass": ack["pass"]}).json()
    assert one["decision"]["resource"] == "memory"
    # the GiB held now, and the new work its arrival rate projects over the window
    assert gib <= one["tiers"]["tier2"]["prediction"]["point"] < 1.5 * gib
    assert "leadtime_tier2_in_flight_requests 3.0" in client.get("/metrics").text
    done = client.post("/v1/requests/progress", headers=AUTH, json={"finished": [
        {"producer_id": "P1", "request_id": f"r{i}"} for i in range(3)]}).json()
    assert done == {"started": 0, "finished": 3, "unknown": 0}
    assert "leadtime_tier2_in_flight_requests 0.0" in client.get("/metrics").text
    other = client.post("/v1/requests/predict", headers=AUTH, json={
        **rows[0], "producer_id": "P2", "request_id": "p2"}).json()
    assert other["announced"] == 1 and "announced_resources" not in other
