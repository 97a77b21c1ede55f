"""leadtime on real servers: Prefect server, MLflow on PostgreSQL, Redis, and the API.

`.ci/services start` starts the servers natively on loopback and writes their URLs to a file
(``$LEADTIME_SERVICES_ENV``, default ``/tmp/leadtime-services/services.env``); `.ci/run` does
that before the README's test command. Without that file, or with a server not answering, the
tests skip with the reason (``LEADTIME_REQUIRE_SERVICES=1``, set by `.ci/run`, makes that a
failure instead, so CI cannot pass by skipping).

In order, sharing one state folder, one `leadtime deploy` process and the servers:

1. `leadtime deploy` serves the four scheduled deployments to the Prefect server;
2. `baseline-daily` is triggered through the Prefect API and waited for; a new
   `leadtime-baseline` version is in the MLflow server's registry with the `champion` alias;
3. `features-materialize` is triggered the same way; its features are read online from Redis;
4. `leadtime serve` against these services serves decisions and readiness; then the API is
   killed (SIGKILL, mid-traffic) and restarted, and Redis is killed and restarted: no logged
   decision is lost, no batch is half written, and the API and the online reads recover alone.

Every wait is bounded; every server binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
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
PRODUCERS = ("svc-1", "svc-2")  # the generated load trace's producers (pool `api`)
RUN_TIMEOUT_S = 420  # one flow run, deployment to final state; typical: 30-90 s
START_TIMEOUT_S = 180  # one process to answer (imports on a busy 2-core machine)


# --- helpers -------------------------------------------------------------------------------------


def _unavailable(reason: str):
    message = (f"integration services not available ({reason}); start them with "
               "`.ci/services start` (Debian: installs redis-server and postgresql) and rerun")
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _http(url: str, timeout: float = 10.0, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(url: str, timeout: float = 30.0) -> dict:
    import json

    status, body = _http(url, timeout)
    assert status == 200, f"GET {url}: {status} {body[:500]!r}"
    return json.loads(body)


def _post_json(url: str, payload: dict, token: str, timeout: float = 30.0) -> dict:
    import json

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis(url: str):
    import redis

    host, port = url.split(":")
    return redis.Redis(host=host, port=int(port), socket_timeout=5, socket_connect_timeout=5)


def _wait(what: str, check, timeout: float, proc: subprocess.Popen | None = None,
          log: Path | None = None, every: float = 0.5):
    """Poll ``check()`` until it returns a truthy value; fail with the process log if not."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited ({proc.returncode}){_tail(log)}")
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last error: {last!r}){_tail(log)}")


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.is_file():
        return ""
    return "\n--- " + str(log) + " (tail)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
    """Signal the process group, then KILL it after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, str]:
    """The URLs `.ci/services start` wrote, each checked to answer; skip otherwise."""
    if not ENV_FILE.is_file():
        _unavailable(f"no {ENV_FILE}")
    found = _read_env_file(ENV_FILE)
    try:
        status, _ = _http(found["MLFLOW_TRACKING_URI"] + "/health", timeout=5)
        assert status == 200, f"MLflow /health: {status}"
        status, _ = _http(found["PREFECT_API_URL"] + "/health", timeout=5)
        assert status == 200, f"Prefect /api/health: {status}"
        assert _redis(found["LEADTIME_REDIS_URL"]).ping()
    except Exception as exc:
        _unavailable(f"{ENV_FILE} lists servers that do not answer: {exc!r}")
    return found


@pytest.fixture(scope="module")
def stack(services, tmp_path_factory):
    """A private state folder, a small load trace and request trace, and the environment every
    leadtime process of this module gets (nothing inherited from the test process's own
    leadtime, MLflow, Prefect or Feast settings)."""
    import pandas as pd

    from features.synthetic import write_request_trace
    from simulation.generate import write_load_trace

    base = tmp_path_factory.mktemp("services")
    # 14 days ending at today's midnight (UTC), so the champion is fresh for "now" (the API
    # refuses to extrapolate a fit more than 48 h old)
    start = (pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=14)).tz_localize(None)
    load = write_load_trace(base / "data" / "load.csv", producers=2, days=14,
                            start=str(start.date()))
    requests = write_request_trace(base / "data", n=300)
    config = yaml.safe_load((ROOT / "leadtime.yaml").read_text())
    config["engine"]["decision_interval_s"] = 1  # a new logged batch every second of traffic
    config_path = base / "leadtime.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_", "LEADTIME_", "FEAST_"))}
    env.update({
        "LEADTIME_HOME": str(base / "state"),
        "LEADTIME_DATA_DIR": str(base / "data"),
        "MLFLOW_TRACKING_URI": services["MLFLOW_TRACKING_URI"],
        "PREFECT_API_URL": services["PREFECT_API_URL"],
        "PREFECT_HOME": str(base / "prefect-client"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "LEADTIME_ONLINE_STORE": "redis",
        "LEADTIME_REDIS_URL": services["LEADTIME_REDIS_URL"],
        "LEADTIME_API_TOKEN": TOKEN,
        "LEADTIME_LOAD_TRACE": str(load),
        "LEADTIME_REQUESTS_TRACE": str(requests),
        "LEADTIME_CONFIG_PATH": str(config_path),
        "LEADTIME_WORKERS": "1",
        "FEAST_USAGE": "False",
    })
    return {"base": base, "env": env, "load": load, "requests": requests,
            "home": base / "state", "services": services, "logs": base}


@pytest.fixture(scope="module")
def deployed(stack):
    """`leadtime deploy` serving the scheduled flows to the Prefect server (stopped at the end)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    log = stack["logs"] / "deploy.log"
    proc = _spawn([LEADTIME, "deploy"], stack["env"], log)

    def registered():
        with temporary_settings(updates={PREFECT_API_URL: stack["services"]["PREFECT_API_URL"]}), \
                get_client(sync_client=True) as client:
            found = {}
            for name in ("baseline-daily", "intent-retrain", "features-materialize", "recalibrate"):
                found[name] = client.read_deployment_by_name(f"{name}/{name}")
            return found

    try:
        # the runner registers the deployments, then polls for runs
        deployments = _wait("leadtime deploy registering its deployments", registered,
                            START_TIMEOUT_S, proc, log, every=2)
        yield {"proc": proc, "log": log, "deployments": deployments}
    finally:
        _stop(proc, signal.SIGINT)


def _run(stack, deployed, name: str, parameters: dict):
    """Trigger a deployment through the Prefect API and wait for its final state (bounded)."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    began = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: stack["services"]["PREFECT_API_URL"]}):
        run = run_deployment(f"{name}/{name}", parameters=parameters, timeout=RUN_TIMEOUT_S,
                             poll_interval=2)
    seconds = time.monotonic() - began
    assert run.state is not None and run.state.is_final(), (
        f"{name}: not finished after {RUN_TIMEOUT_S} s (state {run.state}){_tail(deployed['log'])}")
    assert run.state.is_completed(), (
        f"{name}: {run.state.type} {run.state.message}{_tail(deployed['log'], 80)}")
    print(f"{name}: completed in {seconds:.1f} s (flow run {run.id})")
    return run


# --- tests ---------------------------------------------------------------------------------------


def test_deploy_serves_the_scheduled_deployments(deployed):
    found = deployed["deployments"]
    assert set(found) == {"baseline-daily", "intent-retrain", "features-materialize", "recalibrate"}
    for name, deployment in found.items():
        assert deployment.schedules, f"{name} has no schedule"
        assert "leadtime" in deployment.tags


def test_baseline_daily_through_prefect_registers_a_champion(stack, deployed):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack["services"]["MLFLOW_TRACKING_URI"])
    name = "leadtime-baseline"
    before = {v.version for v in client.search_model_versions(f"name='{name}'")}
    _run(stack, deployed, "baseline-daily", {"trace": str(stack["load"]), "cutoffs": 2})

    after = {v.version for v in client.search_model_versions(f"name='{name}'")}
    new = after - before
    assert len(new) == 1, f"expected one new {name} version, got {sorted(new)}"
    version = new.pop()
    champion = client.get_model_version_by_alias(name, "champion")
    # the same trace scores the same: an equal score promotes the fresher fit
    assert champion.version == version, (champion.version, version, champion.tags)
    run = client.get_run(champion.run_id)
    assert run.data.params["trace"] == "load.csv" and "champion.mase" in run.data.metrics
    # artifacts went through the server (--serve-artifacts), not to a local folder
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    stack["baseline_version"] = version


def test_features_materialize_to_redis_and_read_online(stack, deployed):
    from features.store import online_features, open_store, repo_dir
    from leadtime.data import read_request_trace
    from leadtime.settings import Settings

    _run(stack, deployed, "features-materialize", {"requests": str(stack["requests"])})

    settings = Settings(home=stack["home"], online_store="redis",
                        redis_url=stack["services"]["LEADTIME_REDIS_URL"])
    repo = repo_dir(settings, stack["requests"].name)
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert config["online_store"] == {"type": "redis",
                                      "connection_string": stack["services"]["LEADTIME_REDIS_URL"]}
    assert _redis(stack["services"]["LEADTIME_REDIS_URL"]).dbsize() > 0

    frame = read_request_trace(stack["requests"]).frame
    last = frame.iloc[-1]
    row = {"consumer_id": last["consumer_id"], "producer_id": last["producer_id"],
           "request_type": last["request_type"]}
    store = open_store(repo)
    features = online_features(store, [row])
    assert features["c_n"].iat[0] == (frame["consumer_id"] == last["consumer_id"]).sum()
    assert features["consumer_known"].iat[0] == 1.0
    stack["feast"] = {"store": store, "row": row, "features": features}


def test_api_on_the_services_survives_restarts_of_itself_and_redis(stack, deployed):
    """Decisions and readiness from `leadtime serve`; SIGKILL mid-traffic and a Redis kill lose
    no logged decision, and everything comes back without help."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = stack["logs"] / "api.log"
    args = [LEADTIME, "serve", "--host", "127.0.0.1", "--port", str(port)]
    decision_log = stack["home"] / "decisions.sqlite"
    received: list[float] = []  # decided_at of every decisions response a client got

    def start_api() -> subprocess.Popen:
        proc = _spawn(args, stack["env"], log)
        _wait("the API answering /healthz", lambda: _http(url + "/healthz", 5)[0] == 200,
              START_TIMEOUT_S, proc, log)
        return proc

    def get_decisions() -> dict:
        body = _json(url + "/v1/decisions")
        received.append(body["decided_at"])
        return body

    def logged() -> dict[int, tuple[float, int]]:
        with sqlite3.connect(decision_log, timeout=10) as conn:
            rows = conn.execute("SELECT b.batch_id, b.decided_at, COUNT(d.decision_id) FROM batches b "
                                "LEFT JOIN decisions d USING (batch_id) GROUP BY b.batch_id").fetchall()
        return {batch: (decided_at, n) for batch, decided_at, n in rows}

    began = time.monotonic()
    api = start_api()
    try:
        ready = _json(url + "/readyz")
        assert ready["ready"] is True
        champion = ready["champions"]["leadtime-baseline"]
        if "baseline_version" in stack:
            assert champion == {"version": stack["baseline_version"], "loaded": True,
                                "error": None}, champion
        body = get_decisions()
        decided = {d["producer_id"]: d for d in body["decisions"]}
        producers = len(decided)
        assert set(PRODUCERS) <= set(decided)
        if "baseline_version" in stack:  # Tier 1 answered from the registry's champion
            assert "tier1" not in body["degraded"], body["degraded"]
            for pid in PRODUCERS:
                assert decided[pid]["prediction"]["weights"].get("tier1", 0) > 0, decided[pid]
        print(f"API up and deciding in {time.monotonic() - began:.1f} s")

        # --- the API killed mid-traffic, then restarted ------------------------------------
        stop_traffic = threading.Event()
        errors: list[str] = []

        def traffic():
            while not stop_traffic.is_set():
                try:
                    get_decisions()
                except Exception as exc:  # the kill: refused connections are expected
                    errors.append(repr(exc))
                time.sleep(0.2)

        # an allocator reports a state; the loop decides with it and logs its own state
        reported = {"producer_id": PRODUCERS[0], "instances": 7, "current_load": 1.0}
        ack = _post_json(url + "/v1/producers/state", {"producers": [reported]}, TOKEN)
        seen = _json(url + f"/v1/decisions?after_pass={ack['pass']}")
        mine = next(d for d in seen["decisions"] if d["producer_id"] == PRODUCERS[0])
        assert mine["current_instances"] == 7

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        time.sleep(4.5)  # ~4 new batches at decision_interval_s = 1
        os.killpg(api.pid, signal.SIGKILL)
        api.wait(timeout=30)
        stop_traffic.set()
        thread.join(timeout=30)
        seen_before = set(received)
        batches_before = logged()
        assert len(batches_before) >= 3, batches_before

        began = time.monotonic()
        api = start_api()
        recovered = time.monotonic() - began
        after_restart = get_decisions()
        batches_after = logged()
        logged_times = {decided_at for decided_at, _ in batches_after.values()}
        assert seen_before <= logged_times, "a decision a client received is not in the log"
        assert set(batches_before) <= set(batches_after), "a logged batch disappeared"
        assert all(n == producers for _, n in batches_after.values()), "a half-written batch"
        assert after_restart["decided_at"] > max(seen_before)
        assert _json(url + "/readyz")["ready"] is True
        # the loop's state came back: the reported instances, without a new report
        mine = next(d for d in after_restart["decisions"] if d["producer_id"] == PRODUCERS[0])
        assert mine["current_instances"] == 7, mine
        print(f"API SIGKILLed after {len(batches_before)} logged batches ({len(received)} "
              f"responses); back and deciding {recovered:.1f} s after restart; "
              f"{len(batches_after)} batches, none lost or partial")

        # --- Redis killed and restarted ----------------------------------------------------
        feast = stack.get("feast")
        redis_pidfile = Path(stack["services"]["LEADTIME_IT_REDIS_PIDFILE"])
        redis_conf = stack["services"]["LEADTIME_IT_REDIS_CONF"]
        redis_url = stack["services"]["LEADTIME_REDIS_URL"]
        os.kill(int(redis_pidfile.read_text().strip()), signal.SIGKILL)
        _wait("Redis to go down", lambda: not _pings(redis_url), 30)
        time.sleep(1.1)  # the next decision pass happens while Redis is down
        during = get_decisions()  # decisions do not depend on the online store
        assert during["decided_at"] > after_restart["decided_at"]
        if feast is not None:
            with pytest.raises(Exception):  # noqa: B017 (redis-py's or Feast's error type)
                _read_online(feast)
        began = time.monotonic()
        redis = subprocess.Popen(["redis-server", redis_conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        redis_pidfile.write_text(f"{redis.pid}\n")  # `.ci/services stop` stops this one
        _wait("Redis to restart", lambda: _pings(redis_url), 60)
        if feast is not None:  # the same store object reconnects; the data survived (AOF)
            again = _wait("online reads after the Redis restart",
                          lambda: [_read_online(feast)], 60)[0]
            assert again["c_n"].iat[0] == feast["features"]["c_n"].iat[0]
        print(f"Redis back and online reads recovered in {time.monotonic() - began:.1f} s")
        time.sleep(1.1)
        final = get_decisions()
        assert final["decided_at"] > during["decided_at"]
        batches_final = logged()
        assert {t for t, _ in batches_final.values()} >= set(received)
        assert all(n == producers for _, n in batches_final.values())
    finally:
        _stop(api)


def _pings(url: str) -> bool:
    try:
        return bool(_redis(url).ping())
    except Exception:
        return False


def _read_online(feast: dict):
    from features.store import online_features

    return online_features(feast["store"], [feast["row"]])
