"""The HAProxy actuator against Debian's haproxy and three local HTTP backends: the pool's
decided redirect weights become server weights, and a burst of requests splits accordingly."""

from __future__ import annotations

import collections
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml
from conftest import free_port

from connectors.haproxy import HAProxyError, HAProxyRuntime, integer_weights

SERVERS = ("s1", "s2", "s3")
BURST = 600
TOLERANCE = 0.03  # share points: smooth weighted round robin is exact up to rounding


class Backend:
    """A loopback HTTP server answering its own name."""

    def __init__(self, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class HAProxy:
    """haproxy in the foreground (-db) with a unix admin socket; kill() and start() again."""

    def __init__(self, home, backends: dict[str, Backend]) -> None:
        self.home, self.port = home, free_port()
        self.socket = str(home / "admin.sock")
        servers = "\n".join(f"    server {n} 127.0.0.1:{b.port} weight 1"
                            for n, b in backends.items())
        (home / "haproxy.cfg").write_text(f"""global
    stats socket {self.socket} mode 600 level admin
    stats timeout 10s
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind 127.0.0.1:{self.port}
    default_backend pool
backend pool
    balance roundrobin
{servers}
""")
        self.process: subprocess.Popen | None = None

    def start(self) -> HAProxy:
        log = (self.home / "haproxy.log").open("ab")
        self.process = subprocess.Popen(["haproxy", "-db", "-f", str(self.home / "haproxy.cfg")],
                                        stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                HAProxyRuntime(self.socket).get_weight("pool", "s1")
                return self
            except HAProxyError:
                time.sleep(0.2)
        raise RuntimeError((self.home / "haproxy.log").read_text()[-2000:])

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def burst(self, n: int = BURST) -> dict[str, float]:
        counts: collections.Counter = collections.Counter()
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(n):
                counts[client.get("/").text] += 1
        return {s: counts[s] / n for s in SERVERS}


@pytest.fixture
def haproxy(tmp_path):
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy not installed (apt-get install haproxy)")
    proxy = HAProxy(tmp_path, {n: Backend(n) for n in SERVERS}).start()
    yield proxy
    proxy.kill()


def test_runtime_api_sets_and_reads_weights_and_refuses_clearly(haproxy):
    api = HAProxyRuntime(haproxy.socket)
    api.set_weight("pool", "s2", 7)
    assert api.get_weight("pool", "s2") == 7
    with pytest.raises(HAProxyError, match="refused weight 3 for pool/nope"):
        api.set_weight("pool", "nope", 3)
    with pytest.raises(HAProxyError, match=r"outside 0\.\.256"):
        api.set_weight("pool", "s1", 300)
    with pytest.raises(HAProxyError, match="unreachable"):
        HAProxyRuntime(str(haproxy.home / "missing.sock")).get_weight("pool", "s1")
    assert integer_weights({"a": 0.6, "b": 0.3, "c": 0.1}) == {"a": 256, "b": 128, "c": 43}


CONFIG = {"engine": {"mode": "act", "threshold": 0.5, "decision_interval_s": 3600},
          "pools": {"web": {"defaults": {"capacity_per_instance": 10, "max_instances": 3,
                                         "tier2_load_per_demand": 300},
                            "producers": [
                                {"id": "p1", "haproxy_server": "pool/s1"},
                                {"id": "p2", "haproxy_server": "pool/s2",
                                 "capacity_per_instance": 20},
                                {"id": "p3", "haproxy_server": "pool/s3",
                                 "capacity_per_instance": 40}]}}}
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api(tmp_path, haproxy, mode: str):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from leadtime.settings import Settings
    from serving.app import create_app

    config = {**CONFIG, "engine": {**CONFIG["engine"], "mode": mode}}
    path = tmp_path / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = Settings(home=tmp_path / f"home-{mode}", config_path=path,
                        api_token=SecretStr(TOKEN), haproxy_socket=haproxy.socket)
    app = create_app(settings, load=False)
    runtime = app.state.leadtime.decisions
    runtime.tier3 = None
    # p1 is predicted near its capacity: the pool's traffic is redirected away from it
    runtime.tier2.add(time.time(), [("p1", 27.0, 25.0, 29.0), ("p2", 10.0, 9.0, 11.0),
                                    ("p3", 10.0, 9.0, 11.0)])
    return TestClient(app), runtime


STATES = {"producers": [{"producer_id": p, "instances": 3, "current_load": 10}
                        for p in ("p1", "p2", "p3")]}


def test_dry_run_touches_nothing(tmp_path, haproxy, caplog):
    client, _ = api(tmp_path, haproxy, "dry_run")
    with client as c, caplog.at_level("INFO", logger="leadtime.actuation"):
        reported = c.post("/v1/producers/state", headers=AUTH, json=STATES).json()
        body = c.get("/v1/decisions", params={"after_pass": reported["pass"]}).json()
        assert body["pools"]["web"]["act"] is False
    assert {HAProxyRuntime(haproxy.socket).get_weight("pool", s) for s in SERVERS} == {1}
    assert "haproxy would set pool web" in caplog.text


def test_act_mode_splits_a_burst_by_the_decided_weights_and_survives_an_outage(
        tmp_path, haproxy, caplog):
    client, runtime = api(tmp_path, haproxy, "act")
    before = haproxy.burst(300)
    assert all(abs(share - 1 / 3) < TOLERANCE for share in before.values())  # weights 1/1/1
    with client as c, caplog.at_level("INFO", logger="leadtime.actuation"):
        reported = c.post("/v1/producers/state", headers=AUTH, json=STATES).json()
        body = c.get("/v1/decisions", params={"after_pass": reported["pass"]}).json()
        pool = body["pools"]["web"]
        assert pool["act"] is True
        redirect = pool["redirect"]
        assert redirect["p1"] < pool["current_share"]["p1"]
        weights = {s: HAProxyRuntime(haproxy.socket).get_weight("pool", s) for s in SERVERS}
        assert weights == {f"s{i}": n for i, n in
                           enumerate(integer_weights({f"p{i}": redirect[f"p{i}"]
                                                      for i in (1, 2, 3)}).values(), 1)}
        split = haproxy.burst()
        for i in (1, 2, 3):
            assert abs(split[f"s{i}"] - redirect[f"p{i}"]) < TOLERANCE, (split, redirect)
        assert "haproxy set pool web" in caplog.text and f"(pass {body['pass']}" in caplog.text
        assert c.get("/readyz").json()["actuators"]["haproxy"]["status"] == "ok"

        haproxy.kill()  # mid-run: the next pass decides, logs, and reports the outage
        runtime.tier2.add(time.time(), [("p1", 28.0, 26.0, 29.5)])
        reported = c.post("/v1/producers/state", headers=AUTH, json=STATES).json()
        after = c.get("/v1/decisions", params={"after_pass": reported["pass"]}).json()
        assert after["pass"] == reported["pass"] + 1
        ready = c.get("/readyz").json()["actuators"]["haproxy"]
        assert ready["status"] == "degraded" and "unreachable" in ready["error"]
        assert ready["pending"] == ["web"]
        assert "leadtime_actuator_up{actuator=\"haproxy\"} 0.0" in c.get("/metrics").text
        assert runtime.decision_log.counts()["batches"] >= 3  # every pass logged

        haproxy.start()  # weights back to 1/1/1 (a fresh process): the pending pool is retried
        reported = c.post("/v1/producers/state", headers=AUTH, json=STATES).json()
        c.get("/v1/decisions", params={"after_pass": reported["pass"]})
        assert c.get("/readyz").json()["actuators"]["haproxy"]["status"] == "ok"
        assert HAProxyRuntime(haproxy.socket).get_weight("pool", "s1") != 1
