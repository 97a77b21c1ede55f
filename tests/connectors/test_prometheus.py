"""The Prometheus connector against a real Prometheus: history as the load-trace contract (gaps
kept), the present for the decision loop, and what happens when Prometheus is down."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from conftest import PromServer, free_port

from connectors.prometheus import PrometheusClient, PrometheusError, current, history

LOAD_Q = 'leadtime_replayed_load{producer_id="$producer_id"}'
INSTANCES_Q = 'leadtime_replayed_instances{producer_id="$producer_id"}'


def shifted(ts: str, shift_s: float) -> pd.Timestamp:
    return pd.Timestamp(pd.Timestamp(ts).timestamp() + shift_s, unit="s")


def test_history_is_the_load_trace_contract_with_gaps_kept(prometheus, nasa_slice, tmp_path):
    start = shifted("1995-07-01 00:00", prometheus.shift_s)
    end = shifted("1995-07-03 23:59", prometheus.shift_s)
    with PrometheusClient(prometheus.url) as client:
        trace = history(client, {"nasa-www": LOAD_Q}, start, end, pd.Timedelta("1min"),
                        tmp_path / "history.csv")
    assert trace.producers == ["nasa-www"] and trace.intervals["nasa-www"] == pd.Timedelta("1min")
    series = trace.series("nasa-www")
    expected = nasa_slice.set_index("timestamp")["value"].asfreq("1min")
    expected.index = expected.index + pd.Timedelta(seconds=prometheus.shift_s)
    assert len(series) == len(expected) == 3 * 1440
    # the same values at the same (shifted) minutes, the 7-minute gap still a gap
    assert np.array_equal(series.to_numpy(), expected.to_numpy(), equal_nan=True)
    gap = series[shifted("1995-07-02 12:00", prometheus.shift_s):
                 shifted("1995-07-02 12:06", prometheus.shift_s)]
    assert len(gap) == 7 and gap.isna().all()
    assert series.notna().sum() == 3 * 1440 - 7


def test_history_and_queries_refused_clearly(prometheus, tmp_path):
    start = shifted("1995-07-01 00:00", prometheus.shift_s)
    wait_live(prometheus.url)
    with PrometheusClient(prometheus.url) as client:
        recent = pd.Timestamp(time.time() - 600, unit="s")
        with pytest.raises(PrometheusError, match=r"answered 2 series.*aggregate it"):
            history(client, {"nasa-www": '{__name__=~"leadtime_replayed_.*"}'}, recent,
                    recent + pd.Timedelta("10min"), pd.Timedelta("1min"), tmp_path / "h.csv")
        with pytest.raises(PrometheusError, match=r"refused.*bad_data"):
            client.query("sum(")
        with pytest.raises(PrometheusError, match="no samples"):
            history(client, {"nasa-www": 'nope{producer_id="$producer_id"}'}, start,
                    start + pd.Timedelta("1h"), pd.Timedelta("1min"), tmp_path / "h.csv")
    with (PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1) as down,
          pytest.raises(PrometheusError, match="unreachable")):
        down.query("up")


def wait_live(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    with PrometheusClient(url) as client:
        while time.monotonic() < deadline:
            if client.query("leadtime_replayed_instances"):
                return
            time.sleep(0.5)
    raise AssertionError("the exporter was not scraped in time")


def test_current_load_and_instances_from_the_live_scrape(prometheus):
    wait_live(prometheus.url)
    with PrometheusClient(prometheus.url) as client:
        now = current(client, {"nasa-www": (LOAD_Q, INSTANCES_Q)})
    assert now.down is None and not now.errors
    assert now.instances == {"nasa-www": 7}
    # the value the exporter served in the last few seconds (it changes once a minute)
    served = {prometheus.exporter.value_at("nasa-www", time.time() - s) for s in range(0, 70)}
    assert now.load["nasa-www"] in served


def config(load_q=LOAD_Q, instances_q=INSTANCES_Q):
    from leadtime.config import parse_config

    return parse_config({
        "engine": {"mode": "dry_run", "weights": {"tier1": 1.0}},
        "pools": {"web": {"defaults": {"capacity_per_instance": 15, "max_instances": 60},
                          "producers": [{"id": "nasa-www", "load_query": load_q,
                                         "instances_query": instances_q},
                                        {"id": "other"}]}}})


def test_config_validates_the_queries():
    from leadtime.config import ConfigError, parse_config

    c = config()
    assert c.settings_of("nasa-www").load_query == LOAD_Q
    assert c.settings_of("nasa-www").instances_query == INSTANCES_Q
    assert c.settings_of("other").instances_query is None
    with pytest.raises(ConfigError, match=r"pools.web.defaults.load_query: String should have"):
        parse_config({"pools": {"web": {"defaults": {"capacity_per_instance": 1,
                                                     "load_query": ""},
                                        "producers": [{"id": "a"}]}}})


def test_loop_decides_from_prometheus_and_through_an_outage(prometheus, tmp_path):
    """A Prometheus of its own (killed mid-run): the loop keeps deciding, says so, recovers."""
    from loop.clock import WallClock
    from loop.decision_loop import DecisionLoop
    from loop.sources import Unavailable
    from loop.state_sources import PrometheusStates

    home = tmp_path / "prom"
    home.mkdir()
    server = PromServer(home, free_port(), [f"127.0.0.1:{prometheus.exporter.port}"]).start()
    try:
        wait_live(server.url)
        loop = DecisionLoop(config(), [Unavailable("tier1", "no champion")], WallClock(),
                            state_sources=[PrometheusStates(server.url, timeout_s=1)])
        first = loop.step()
        assert "prometheus" not in first.degraded
        assert loop.states["nasa-www"].instances == 7
        load = loop.states["nasa-www"].current_load
        assert load is not None and load > 0
        decision = first.fleet.decisions["nasa-www"]
        assert decision.current_instances == 7
        # reactive (no tier answered), sized to the load Prometheus reported
        assert decision.floor == max(1, int(np.ceil(load / (15 * 0.7))))
        assert "other" not in loop.states  # no query: its state must be POSTed

        server.kill()
        began = time.monotonic()
        second = loop.step()
        assert time.monotonic() - began < 5  # one timeout, not one per producer
        assert "unreachable" in second.degraded["prometheus"]
        assert "last known states" in second.degraded["prometheus"]
        reasons = " ".join(second.fleet.decisions["nasa-www"].reasons)
        assert "Prometheus state unavailable" in reasons and "last known state" in reasons
        assert second.fleet.decisions["nasa-www"].current_instances == 7  # kept, not lost

        server.start()
        wait_live(server.url)
        third = loop.step()
        assert "prometheus" not in third.degraded
        assert not any("Prometheus" in r for r in third.fleet.decisions["nasa-www"].reasons)
    finally:
        server.kill()


def test_each_declared_resource_is_read_by_its_own_query(prometheus):
    """A producer sized on two resources: cpu read by one query, memory by another (both on
    the replayed series here); the loop decides each and the binding one sets the count."""
    from leadtime.config import ConfigError, parse_config
    from loop.clock import WallClock
    from loop.decision_loop import DecisionLoop
    from loop.sources import Unavailable
    from loop.state_sources import PrometheusStates

    wait_live(prometheus.url)
    declared = parse_config({
        "engine": {"mode": "dry_run", "reacting_tolerance": 0.0},
        "pools": {"web": {"producers": [{
            "id": "nasa-www", "instances_query": INSTANCES_Q, "max_instances": 500,
            "resources": {"cpu": {"capacity_per_instance": 15, "load_query": LOAD_Q},
                          "memory": {"capacity_per_instance": 1.0,
                                     "load_query": f"10 * {INSTANCES_Q}"}}}]}}})
    loop = DecisionLoop(declared, [Unavailable("tier1", "no champion")], WallClock(),
                        state_sources=[PrometheusStates(prometheus.url, timeout_s=2)])
    decision = loop.step().fleet.decisions["nasa-www"]
    cpu, memory = loop.states["nasa-www/cpu"], loop.states["nasa-www/memory"]
    assert cpu.instances == memory.instances == 7
    assert memory.current_load == 70.0 and cpu.current_load > 0
    # 70 units of memory at 1.0 an instance and 70 %: 100 instances, far above what cpu needs
    assert (decision.resource, decision.target_instances) == ("memory", 100)
    assert decision.by_resource["cpu"] < 100
    with pytest.raises(ConfigError, match=r"resources.cpu.load_query: .*\$producer_ids"):
        parse_config({"pools": {"web": {"producers": [{
            "id": "a", "producer_label": "producer_id",
            "resources": {"cpu": {"capacity_per_instance": 1,
                                  "load_query": 'x{producer_id=~"$producer_ids"}'}}}]}}})
