"""leadtime plugged into real Prometheus, KEDA's protocol and HAProxy (`.ci/services start`).

`.ci/services` backfills Prometheus with the NASA trace (a generated one where it is absent;
shifted by whole weeks so that its first 42 days or more end now), scrapes an exporter that
replays the rest live, and starts HAProxy in front of three loopback HTTP backends. In order, on one state folder:

1. `leadtime demo --from-prometheus 21d` trains `baseline-daily` from range queries (PromQL of
   leadtime.yaml's load_query) and registers a champion in the MLflow server;
2. `leadtime serve --keda-port` (act mode) decides every 2 s from the live Prometheus data (no
   state is POSTed) with that champion as Tier 1;
3. a gRPC client generated from the committed externalscaler.proto reads the KEDA metric:
   ceil(value / target) is the target_instances of GET /v1/decisions; HAProxy's server weights
   are the pool's decided redirect weights;
4. Prometheus is killed (SIGKILL) mid-run, then HAProxy: the loop keeps deciding, every pass is
   logged, /readyz and /metrics report the outage; both come back and the loop recovers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = Path(os.environ.get("LEADTIME_SERVICES_ENV", "/tmp/leadtime-services/services.env"))
REQUIRED = os.environ.get("LEADTIME_REQUIRE_SERVICES", "") not in ("", "0", "false")
LEADTIME = str(Path(sys.executable).with_name("leadtime"))
TOKEN = "integration-test-token"
MODEL = "leadtime-baseline-plugs"  # not the other integration test's champion
# one replayed load series (NASA's, or a generated one where the trace is absent), three producers
# of one pool behind HAProxy: nasa-www carries it, its two peers (bigger) are fed a share of it,
# so the pool's redirect weights are not trivial
SERVERS = {"nasa-www": "pool/s1", "nasa-b": "pool/s2", "nasa-c": "pool/s3"}


def producers(replayed: str) -> dict[str, dict]:
    """The pool's producers, their queries reading the series `.ci/services` replays."""
    load = f'leadtime_replayed_load{{producer_id="{replayed}"}}'
    return {
        "nasa-www": {"load_query": load, "haproxy_server": SERVERS["nasa-www"],
                     "instances_query": f'leadtime_replayed_instances{{producer_id="{replayed}"}}'},
        "nasa-b": {"load_query": f"0.5 * {load}", "capacity_per_instance": 30,
                   "haproxy_server": SERVERS["nasa-b"]},
        "nasa-c": {"load_query": f"0.25 * {load}", "capacity_per_instance": 60,
                   "haproxy_server": SERVERS["nasa-c"]},
    }


CLIENT = textwrap.dedent('''
    import json, sys
    import grpc
    import externalscaler_pb2 as pb, externalscaler_pb2_grpc as pb_grpc

    stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(sys.argv[1]))
    ref = pb.ScaledObjectRef(name="web", namespace="default",
                             scalerMetadata={"producerId": sys.argv[2]})
    spec = stub.GetMetricSpec(ref, timeout=10).metricSpecs[0]
    value = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref,
                            metricName=spec.metricName), timeout=10).metricValues[0]
    print(json.dumps({"target": spec.targetSizeFloat, "value": value.metricValueFloat,
                      "active": stub.IsActive(ref, timeout=10).result}))
''')


def _unavailable(reason: str):
    message = (f"integration services not available ({reason}); start them with "
               "`.ci/services start` and rerun")
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 15.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _text(url: str, timeout: float = 15.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def _wait(what: str, check, timeout: float, log: Path | None = None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not there yet
            last = exc
        time.sleep(every)
    tail = ("\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            if log is not None and log.is_file() else "")
    pytest.fail(f"{what}: not within {timeout:.0f} s (last error: {last!r}){tail}")


def _kill_pidfile(pidfile: str) -> None:
    pid = int(Path(pidfile).read_text().strip())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def _respawn(args: list[str], pidfile: str, log: Path) -> None:
    """Start a service again the way .ci/services does (own process group, pid file)."""
    proc = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    Path(pidfile).write_text(f"{proc.pid}\n")


@pytest.fixture(scope="module")
def services() -> dict[str, str]:
    if not ENV_FILE.is_file():
        _unavailable(f"no {ENV_FILE}")
    found = {}
    for line in ENV_FILE.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    needed = ("LEADTIME_IT_PROMETHEUS_URL", "LEADTIME_IT_HAPROXY_SOCKET", "MLFLOW_TRACKING_URI")
    if missing := [k for k in needed if k not in found]:
        _unavailable(f"{ENV_FILE} lacks {missing} (an older .ci/services?)")
    try:
        _text(found["LEADTIME_IT_PROMETHEUS_URL"] + "/-/ready", timeout=5)
    except Exception as exc:
        _unavailable(f"Prometheus does not answer: {exc!r}")
    return found


@pytest.fixture(scope="module")
def stack(services, tmp_path_factory):
    base = tmp_path_factory.mktemp("plugs")
    # a threshold every producer of the pool passes at any hour of the replayed trace (its
    # quiet nights included), so that every pass routes the pool and HAProxy is always written
    config = {"engine": {"mode": "act", "threshold": 0.02, "decision_interval_s": 2,
                         "weights": {"tier1": 0.7, "tier3": 0.3}},
              "tier1": {"history_s": 14 * 86400.0, "backtest_cutoffs": 1},  # a quick fit
              "pools": {"web": {"defaults": {"capacity_per_instance": 15, "max_instances": 60,
                                             "spinup_lead_time_s": 300},
                                "producers": [{"id": p, **s} for p, s in producers(
                                    services.get("LEADTIME_IT_REPLAY_PRODUCER", "nasa-www")
                                ).items()]}}}
    config_path = base / "leadtime.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_", "LEADTIME_", "FEAST_"))}
    env.update({
        "LEADTIME_HOME": str(base / "state"), "LEADTIME_CONFIG_PATH": str(config_path),
        "MLFLOW_TRACKING_URI": services["MLFLOW_TRACKING_URI"],
        "PREFECT_API_URL": services.get("PREFECT_API_URL", ""),
        "LEADTIME_BASELINE_MODEL_NAME": MODEL, "LEADTIME_EXPERIMENT": "leadtime-plugs",
        "LEADTIME_PROMETHEUS_URL": services["LEADTIME_IT_PROMETHEUS_URL"],
        "LEADTIME_PROMETHEUS_TIMEOUT_S": "1",
        "LEADTIME_HAPROXY_SOCKET": services["LEADTIME_IT_HAPROXY_SOCKET"],
        "LEADTIME_API_TOKEN": TOKEN, "PREFECT_LOGGING_LEVEL": "WARNING",
    })
    if not env["PREFECT_API_URL"]:
        del env["PREFECT_API_URL"]
    return {"base": base, "env": env}


def test_train_from_promql_decide_live_read_back_through_keda_and_haproxy(services, stack):
    from connectors.haproxy import HAProxyRuntime, integer_weights
    from loop.decision_log import DecisionLog

    base, env = stack["base"], stack["env"]
    # 1. baseline-daily trained from range queries over Prometheus' backfilled history
    trained = subprocess.run([LEADTIME, "demo", "--from-prometheus", "21d", "--cutoffs", "1"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    history = sorted((base / "state" / "prometheus").glob("history_*.csv"))
    assert history, "no history exported from Prometheus"
    assert f"registered {MODEL} version" in trained.stdout

    # 2. the API with its KEDA port, deciding from live Prometheus data (nothing POSTed)
    port, keda_port = _free_port(), _free_port()
    log = base / "serve.log"
    server = subprocess.Popen([LEADTIME, "serve", "--port", str(port), "--keda-port",
                               str(keda_port)], env=env, cwd=ROOT, stdout=log.open("ab"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}"
    try:
        def decided():
            body = _get(f"{api}/v1/decisions")
            d = {x["producer_id"]: x for x in body["decisions"]}
            nasa = d["nasa-www"]
            if nasa["current_instances"] == 5 and "tier1" in (nasa["prediction"] or {}).get(
                    "weights", {}) and "prometheus" not in body["degraded"]:
                return body
            return None

        _wait("a decision from Prometheus with the Tier 1 champion", decided, 300, log)
        ready = _get(f"{api}/readyz")
        assert ready["champions"][MODEL]["loaded"] is True
        assert ready["state_sources"]["prometheus"]["status"] == "ok"

        # 3. KEDA's view and HAProxy's weights are the decisions of one pass
        client = base / "keda-client"
        client.mkdir()
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                        f"-I{ROOT / 'serving' / 'keda'}", f"--python_out={client}",
                        f"--grpc_python_out={client}", "externalscaler.proto"], check=True)
        (client / "client.py").write_text(CLIENT)
        haproxy = HAProxyRuntime(services["LEADTIME_IT_HAPROXY_SOCKET"])

        def one_pass_agrees():
            before = _get(f"{api}/v1/decisions")
            asked = subprocess.run([sys.executable, "client.py", f"127.0.0.1:{keda_port}",
                                    "nasa-www"], cwd=client, capture_output=True, text=True,
                                   timeout=60, check=True)
            weights = {s: haproxy.get_weight("pool", s) for s in ("s1", "s2", "s3")}
            after = _get(f"{api}/v1/decisions")
            if before["pass"] != after["pass"]:
                return None  # a pass ran in between: ask again
            last = _get(f"{api}/readyz")["actuators"]["haproxy"]["last"]
            if last is None or last["pass"] != before["pass"]:
                return None  # this pass's weights not written yet: ask again
            return before, json.loads(asked.stdout), weights, last

        before, keda, weights, last = _wait("KEDA and HAProxy read within one pass, its weights "
                                            "written", one_pass_agrees, 120, log, every=0.2)
        nasa = next(d for d in before["decisions"] if d["producer_id"] == "nasa-www")
        assert math.ceil(keda["value"] / keda["target"]) == nasa["target_instances"]
        pool = before["pools"]["web"]
        redirect = {f"s{i}": pool["redirect"][p] for i, p in enumerate(SERVERS, 1)}
        assert pool["act"], pool
        assert weights == integer_weights(redirect)
        assert last["error"] is None and not last["dry_run"]
        assert weights == {k.split("/")[1]: v for k, v in last["applied"].items()}
        assert len(set(weights.values())) > 1  # the decided split, not HAProxy's 1/1/1

        # 4. Prometheus killed mid-run: decisions go on, logged, the outage reported
        passes = before["pass"]
        _kill_pidfile(services["LEADTIME_IT_PROMETHEUS_PIDFILE"])
        outage = _wait("the outage in /readyz", lambda: (
            r := _get(f"{api}/readyz"))["state_sources"]["prometheus"]["status"] == "degraded"
            and r, 30, log)
        assert "unreachable" in outage["degraded"]["prometheus"]
        assert 'leadtime_state_source_up{source="prometheus"} 0.0' in _text(f"{api}/metrics")
        during = _get(f"{api}/v1/decisions")
        assert during["pass"] > passes
        nasa = next(d for d in during["decisions"] if d["producer_id"] == "nasa-www")
        assert nasa["current_instances"] == 5  # the last state read, kept
        assert any("Prometheus state unavailable" in r for r in nasa["reasons"])
        args = Path(services["LEADTIME_IT_PROMETHEUS_ARGS"]).read_text().split("\n")
        _respawn(["prometheus", *[a for a in args if a]],
                 services["LEADTIME_IT_PROMETHEUS_PIDFILE"], base / "prometheus.log")
        _wait("Prometheus back in /readyz", lambda: _get(f"{api}/readyz")["state_sources"][
            "prometheus"]["status"] == "ok", 120, log)

        # ... then HAProxy
        _kill_pidfile(services["LEADTIME_IT_HAPROXY_PIDFILE"])
        _wait("the HAProxy outage in /readyz", lambda: _get(f"{api}/readyz")["actuators"][
            "haproxy"]["status"] == "degraded", 60, log)
        assert _get(f"{api}/healthz")["status"] == "ok"
        _respawn(["haproxy", "-db", "-f", services["LEADTIME_IT_HAPROXY_CFG"]],
                 services["LEADTIME_IT_HAPROXY_PIDFILE"], base / "haproxy.log")
        _wait("HAProxy back in /readyz", lambda: _get(f"{api}/readyz")["actuators"][
            "haproxy"]["status"] == "ok", 120, log)

        # no decision lost: every pass of this process is in the decision log
        final = _get(f"{api}/v1/decisions")["pass"]
        batches = DecisionLog(base / "state" / "decisions.sqlite").counts()["batches"]
        assert batches >= final > passes
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
