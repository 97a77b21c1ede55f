"""Fleet queries against a real Prometheus: 1,000 producers' load and instances in one instant
query each (``producer_label``), instead of 2,000 queries."""

from __future__ import annotations

import shutil
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import PromServer, free_port

N = 1_000


@pytest.fixture(scope="module")
def fleet_prometheus(tmp_path_factory):
    """A Prometheus scraping a live exporter of N producers: producer i's load is i + 1 at every
    minute of the day around now, its instances ``i % 7 + 1``."""
    from connectors.replay import ReplayExporter

    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    now = time.time() // 60 * 60
    index = pd.date_range(pd.Timestamp(now - 43200, unit="s"), periods=1440, freq="1min")
    ids = [f"svc-{i:04d}" for i in range(N)]
    series = {pid: pd.Series(float(i + 1), index=index) for i, pid in enumerate(ids)}
    exporter = ReplayExporter(series, 0.0, instances={pid: i % 7 + 1
                                                      for i, pid in enumerate(ids)}).start()
    server = PromServer(tmp_path_factory.mktemp("prometheus-fleet"), free_port(),
                        [f"127.0.0.1:{exporter.port}"]).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until a scrape has landed every producer's series
        answer = httpx.get(f"{server.url}/api/v1/query",
                           params={"query": "count(leadtime_replayed_load)"}).json()
        if answer["data"]["result"] and float(answer["data"]["result"][0]["value"][1]) == N:
            break
        time.sleep(0.5)
    yield server, ids
    server.kill()
    exporter.stop()


def test_one_query_per_pool_reads_every_producer(fleet_prometheus):
    from leadtime.config import parse_config
    from loop.state_sources import PrometheusStates

    server, ids = fleet_prometheus
    config = parse_config({"pools": {"web": {
        "defaults": {"capacity_per_instance": 10.0, "max_instances": 50,
                     "producer_label": "producer_id",
                     "load_query": 'leadtime_replayed_load{producer_id=~"$producer_ids"}',
                     "instances_query":
                         'leadtime_replayed_instances{producer_id=~"$producer_ids"}'},
        "producers": [{"id": pid} for pid in ids]}}})
    states = PrometheusStates(server.url, timeout_s=10.0)
    asked: list[str] = []
    query = states.client.query
    states.client.query = lambda promql, at_s=None: asked.append(promql) or query(promql, at_s)
    pulled = states.pull(config, config.producers(), {}, time.time())
    assert pulled.error is None and not pulled.notes
    assert len(asked) == 2  # the load and the instances, for all 1,000 producers
    got = {pid: (instances, load) for pid, instances, load in pulled.reports}
    assert len(got) == N
    expected = {pid: (i % 7 + 1, float(i + 1)) for i, pid in enumerate(ids)}
    assert got == expected
    # a producer the fleet query does not answer is named, the others still read
    config2 = parse_config({"pools": {"web": {
        "defaults": config.pools["web"].defaults.model_dump(exclude_none=True),
        "producers": [{"id": pid} for pid in [*ids[:3], "svc-missing"]]}}})
    pulled = PrometheusStates(server.url).pull(config2, config2.producers(), {}, time.time())
    assert {pid for pid, *_ in pulled.reports} == set(ids[:3])
    assert "svc-missing" in pulled.notes and "no series with producer_id='svc-missing'" in (
        pulled.error or "")
    assert np.isfinite([load for *_, load in pulled.reports]).all()
