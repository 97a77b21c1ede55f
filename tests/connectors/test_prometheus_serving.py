"""The API with Prometheus as a state source: predictions out as metrics, and a Prometheus
outage reported in /readyz, /metrics and the decision reasons while decisions go on."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from conftest import PromServer, free_port
from test_prometheus import INSTANCES_Q, LOAD_Q, wait_live

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def metrics(client) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / \
    "leadtime.json"


def check_dashboard(url: str, metrics_text: str) -> None:
    """Every expression of the Grafana dashboard is PromQL Prometheus accepts, on metrics the
    API exports (its /metrics text, families without samples included)."""
    from prometheus_client.parser import text_string_to_metric_families

    from connectors.prometheus import PrometheusClient

    exported = set()
    for family in text_string_to_metric_families(metrics_text):
        exported |= {family.name, family.name + "_total"}
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    with PrometheusClient(url) as client:
        for expr in exprs:
            client.query(expr.replace("$producer", "nasa-www").replace("$__rate_interval", "1m"))
    names = set(re.findall(r"\b(leadtime_[a-z_]+)", " ".join(exprs)))
    names |= set(re.findall(r"\b(leadtime_[a-z_]+)",
                            board["templating"]["list"][0]["definition"]))
    assert names <= exported, names - exported


def test_api_reads_prometheus_exports_predictions_and_reports_an_outage(prometheus, tmp_path):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from leadtime.settings import Settings
    from serving.app import create_app

    home = tmp_path / "prom"
    home.mkdir()
    server = PromServer(home, free_port(), [f"127.0.0.1:{prometheus.exporter.port}"]).start()
    config = {"engine": {"mode": "dry_run", "decision_interval_s": 3600},
              "pools": {"web": {"defaults": {"capacity_per_instance": 15, "max_instances": 60,
                                             "tier2_load_per_demand": 300},
                                "producers": [{"id": "nasa-www", "load_query": LOAD_Q,
                                               "instances_query": INSTANCES_Q},
                                              {"id": "other"}]}}}
    path = tmp_path / "leadtime.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = Settings(home=tmp_path / "home", config_path=path, api_token=SecretStr(TOKEN),
                        prometheus_url=server.url, prometheus_timeout_s=1)
    try:
        wait_live(server.url)
        app = create_app(settings, load=False)
        runtime = app.state.leadtime.decisions
        runtime.tier3 = None
        runtime.tier2.add(time.time(), [("nasa-www", 0.2, 0.15, 0.25)])
        with TestClient(app) as c:
            ready = c.get("/readyz").json()
            assert ready["state_sources"]["prometheus"] == {"url": server.url, "status": "ok",
                                                            "error": None}
            body = c.get("/v1/decisions").json()
            nasa = next(d for d in body["decisions"] if d["producer_id"] == "nasa-www")
            assert nasa["current_instances"] == 7  # read from Prometheus, nothing POSTed
            m = metrics(c)
            key = lambda name, **labels: (name, tuple(sorted(labels.items())))  # noqa: E731
            assert m[key("leadtime_state_source_up", source="prometheus")] == 1
            assert m[key("leadtime_current_instances", producer_id="nasa-www")] == 7
            assert m[key("leadtime_target_instances", producer_id="nasa-www")] == \
                nasa["target_instances"]
            assert m[key("leadtime_current_load", producer_id="nasa-www")] == \
                runtime.loop.states["nasa-www"].current_load
            tier2 = c.get("/v1/producers/nasa-www").json()["tiers"]["tier2"]["prediction"]
            for bound in ("point", "lower", "upper"):
                assert m[key("leadtime_predicted_load", producer_id="nasa-www", tier="tier2",
                             bound=bound)] == pytest.approx(tier2[bound])
                assert m[key("leadtime_predicted_load", producer_id="nasa-www",
                             tier="combined", bound=bound)] == \
                    pytest.approx(nasa["prediction"][bound])
            assert m[key("leadtime_tier_weight", producer_id="nasa-www", tier="tier2")] == 1.0
            assert m[key("leadtime_load_score", producer_id="nasa-www")] == \
                pytest.approx(nasa["load_score"])
            assert sum(v for (n, labels), v in m.items()
                       if n == "leadtime_redirect_weight") == pytest.approx(1)

            check_dashboard(server.url, c.get("/metrics").text)

            server.kill()  # mid-run: a state report wakes the loop, which must still decide
            reported = c.post("/v1/producers/state", headers=AUTH, json={"producers": [
                {"producer_id": "other", "instances": 2, "current_load": 5}]}).json()
            after = c.get("/v1/decisions", params={"after_pass": reported["pass"]}).json()
            assert after["pass"] == reported["pass"] + 1
            assert "unreachable" in after["degraded"]["prometheus"]
            nasa = next(d for d in after["decisions"] if d["producer_id"] == "nasa-www")
            assert nasa["current_instances"] == 7
            assert any("Prometheus state unavailable" in r for r in nasa["reasons"])
            other = next(d for d in after["decisions"] if d["producer_id"] == "other")
            assert other["current_instances"] == 2  # the POSTed state still counts
            ready = c.get("/readyz").json()
            assert ready["ready"] is True
            assert ready["state_sources"]["prometheus"]["status"] == "degraded"
            assert "unreachable" in ready["degraded"]["prometheus"]
            assert metrics(c)[key("leadtime_state_source_up", source="prometheus")] == 0
    finally:
        server.kill()
