"""Serving benchmark: ``/v1/requests/predict`` vs ``mlflow models serve`` vs in-process predict.

All on loopback, bounded in time. Each server gets a paced run (``rate`` requests/s for
``seconds``, latency p50/p99) and a throughput run (``clients`` closed-loop clients for
``seconds``). Both servers run the same registered champion: leadtime's route also reads the
Feast online store; ``mlflow models serve`` is given the already-joined features.

In-process figures: ``predict_frame`` (the pandas path the pyfunc uses), ``predict`` (the list
fast path the route uses), ``with_feast`` (fast path + online features through the TTL cache:
the first pass over the sampled payloads misses), ``feast_uncached`` (every call reads Feast).
The leadtime server runs one uvicorn worker without access log.

``leadtime bench api`` (:func:`api_run`, at the end of this file) load-tests ``GET /v1/decisions``
on a real server process with an external load generator (wrk), paced and closed loop.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from leadtime.config import LeadtimeConfig

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(cmd: list[str], port: int, health: str, log: Path, timeout: float = 180,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> Server:
    """Start a server process and wait until ``health`` answers 200."""
    handle = log.open("w")
    process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT,
                               env=os.environ.copy() if env is None else env, cwd=cwd)
    server = Server(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited early; see {log}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", health)
            if conn.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{cmd[0]} did not become healthy in {timeout:.0f} s; see {log}")


def _post(conn: http.client.HTTPConnection, path: str, body: bytes | None) -> float:
    """One request (POST with a JSON body, or GET when ``body`` is None); seconds taken."""
    started = time.perf_counter()
    method = "GET" if body is None else "POST"
    conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path} -> {response.status}")
    return time.perf_counter() - started


def paced(port: int, path: str, bodies: list[bytes | None], rate: float, seconds: float,
          threads: int = 4) -> dict[str, float]:
    """Send ``rate`` requests/s (open loop, ``threads`` senders); latency percentiles in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = rate / threads
    total = int(rate * seconds)

    def sender(offset: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        start_at = time.perf_counter() + offset / rate
        mine = []
        for i in range(offset, total, threads):
            due = start_at + (i - offset) / threads / per_thread
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            mine.append(_post(conn, path, bodies[i % len(bodies)]))
        with lock:
            latencies.extend(mine)

    return _summary(latencies, _in_threads(sender, threads))


def closed_loop(port: int, path: str, bodies: list[bytes | None], seconds: float,
                clients: int = 4) -> dict[str, float]:
    """``clients`` back-to-back senders for ``seconds``: the throughput a server sustains."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        mine, i = [], k
        while time.perf_counter() < stop_at:
            mine.append(_post(conn, path, bodies[i % len(bodies)]))
            i += clients
        with lock:
            latencies.extend(mine)

    return _summary(latencies, _in_threads(client, clients))


def _in_threads(target: Callable[[int], None], n: int) -> float:
    """Run ``target(0) .. target(n - 1)`` on ``n`` threads; the seconds until all are done."""
    began = time.perf_counter()
    workers = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - began


def in_process(call: Callable[[int], Any], n: int) -> dict[str, float]:
    latencies = []
    began = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t)
    return _summary(latencies, time.perf_counter() - began)


def _summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "throughput_rps": len(ms) / elapsed}


def run(settings, requests_path: str | Path, seconds: float = 10.0, rate: float = 200.0,
        clients: int = 4, sample: int = 500) -> dict[str, Any]:
    """Measure the three ways to predict one request; return a JSON-ready document."""
    from features.profiles import canonical
    from features.store import online_features
    from leadtime.data import read_request_trace
    from serving.intent import load_runtime

    settings.prepare()
    runtime = load_runtime(settings)
    requests = canonical(read_request_trace(requests_path)).frame.tail(sample)
    fields = set(_request_fields(runtime))
    rows = [{k: _json_value(v) for k, v in row.items() if k in fields}
            for row in requests.to_dict("records")]
    features = online_features(runtime.store, rows)
    joined = pd.concat([pd.DataFrame(rows), features], axis=1)
    model_input = joined.reindex(columns=runtime.model.features)
    if runtime.model.group_column:
        model_input[runtime.model.group_column] = joined[runtime.model.group_column]
    single = [model_input.iloc[[i]] for i in range(len(model_input))]

    report: dict[str, Any] = {"trace": runtime.trace, "model_version": runtime.version,
                              "rate_rps": rate, "seconds": seconds, "clients": clients}
    joined_rows = model_input.to_dict("records")
    report["in_process_predict_frame"] = in_process(
        lambda i: runtime.model.predict(single[i % len(single)]), 1000)
    report["in_process_predict"] = in_process(
        lambda i: runtime.model.predict_rows([joined_rows[i % len(joined_rows)]]), 2000)
    runtime.reader.cache.clear()  # the first pass over the rows reads Feast (cache misses)
    report["in_process_predict_with_feast"] = in_process(
        lambda i: runtime.predict([rows[i % len(rows)]]), 2000)
    runtime.reader.cache.clear()
    report["in_process_predict_feast_uncached"] = in_process(
        lambda i: (runtime.reader.cache.clear(), runtime.predict([rows[i % len(rows)]])), 500)

    logs = settings.home_dir / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    ours = [json.dumps(r).encode() for r in rows]
    port = free_port()
    server = start([sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app",
                    "--host", HOST, "--port", str(port), "--workers", "1", "--log-level",
                    "warning", "--no-access-log"], port, "/healthz", logs / "leadtime.log")
    report["leadtime_serve"] = _served(server, port, "/v1/requests/predict", ours, rate, seconds,
                                       clients)

    theirs = [json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))}).encode()
              for frame in single]
    port = free_port()
    from models.registry import model_uri

    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    server = start([mlflow_bin, "models", "serve", "-m", model_uri(runtime.name), "-h", HOST,
                    "-p", str(port), "--env-manager", "local", "-w", "1"], port, "/ping",
                   logs / "mlflow.log")
    report["mlflow_models_serve"] = _served(server, port, "/invocations", theirs, rate, seconds,
                                            clients)
    return report


def _served(server: Server, port: int, path: str, bodies: list[bytes | None], rate: float,
            seconds: float, clients: int) -> dict[str, Any]:
    """One warm-up request, then paced and closed-loop load on ``path``; the server stops."""
    try:
        _post(http.client.HTTPConnection(HOST, port), path, bodies[0])
        return {"paced": paced(port, path, bodies, rate, seconds),
                "max_throughput": closed_loop(port, path, bodies, seconds, clients)}
    finally:
        server.stop()


def _request_fields(runtime) -> list[str]:
    schema = runtime.adapter.json_schema()
    for option in schema.get("anyOf", []):
        ref = option.get("$ref")
        if ref:
            name = ref.split("/")[-1]
            return list(schema["$defs"][name]["properties"])
    return list(schema.get("properties", {}))


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def format_report(report: dict[str, Any]) -> str:
    lines = [(f"serving benchmark: {report['trace']} model v{report['model_version']}, "
              f"paced {report['rate_rps']:.0f} req/s for {report['seconds']:.0f} s, "
              f"throughput with {report['clients']} clients"),
             f"{'path':<34}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>12}"]
    for name in ("in_process_predict_frame", "in_process_predict", "in_process_predict_with_feast",
                 "in_process_predict_feast_uncached"):
        r = report.get(name)
        if r is None:
            continue
        lines.append(f"{name:<34}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
                     f"{r['throughput_rps']:>12.0f}")
    for name in ("leadtime_serve", "mlflow_models_serve"):
        for mode in ("paced", "max_throughput"):
            r = report[name][mode]
            lines.append(f"{name + ' ' + mode:<34}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
                         f"{r['throughput_rps']:>12.0f}")
    return "\n".join(lines)


# --- leadtime bench api: GET /v1/decisions under an external load generator ----------------------
#
# The server is the real API (``uvicorn --factory serving.app:create_app``, one worker, no access
# log) in its own process, on a free loopback port, with a generated ``leadtime.yaml`` and a
# temporary LEADTIME_HOME; one state report for every producer makes its decisions real. Load
# comes from Debian's wrk, never from Python, so the client neither shares the server's GIL nor
# hides queueing:
#
# * closed loop: ``wrk -c N --latency``, N connections back to back (the throughput);
# * paced: the same wrk with a Lua script (PACED_LUA) that holds a fixed schedule of ``rate``
#   requests/s and measures each latency from the time the request was *due*, as wrk2 does
#   (Debian has no wrk2). Request k of sender s is due at origin + (s + k * senders) / rate; a
#   response that comes back after the next request's due time delays that request, and the
#   wait is counted in its latency instead of being hidden (coordinated omission). wrk's own
#   ``delay()`` only waits a whole number of milliseconds, so the script sleeps the rest in
#   ``request()`` (each sender is one wrk thread with one connection, so that sleep blocks no
#   other request). The latency from the actual send (what a client timing from its send sees)
#   is reported beside it.

#: Paced p99 at 200 req/s with 100 producers, and closed-loop throughput at the most
#: connections as a share of that at the fewest (more clients must not mean less served).
API_TARGET: dict[str, float] = {"p99_ms": 5.0, "rate_rps": 200.0, "producers": 100,
                                "scaling": 0.9}
API_POOLS = 4
MAX_API_SECONDS = 120
WRK_INSTALL = "apt-get install wrk"
_MARK = "LEADTIME-BENCH-RESULT "

CLOSED_LUA = r"""-- leadtime bench api, closed loop: wrk's own figures, as one JSON line
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@MARK@{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%.1f,"p90_us":%.1f,' ..
    '"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""

PACED_LUA = r"""-- leadtime bench api, paced: @RATE@ requests/s on a fixed schedule, latency from the due time
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } leadtime_timespec;
int clock_gettime(int clk_id, leadtime_timespec *tp);
int nanosleep(const leadtime_timespec *req, leadtime_timespec *rem);
]]
local ts, pause = ffi.new("leadtime_timespec"), ffi.new("leadtime_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC: one clock for every wrk thread
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local RATE, SENDERS = @RATE@, @SENDERS@

-- main state: one sender per wrk thread (one connection each), all on one schedule
local senders, first = {}, nil
function setup(thread)
  first = first or now_us() + 20000
  thread:set("sender", #senders)
  thread:set("origin", first)
  senders[#senders + 1] = thread
end

-- thread state: request k of this sender is due at origin + (sender + k * SENDERS) / RATE
local k, due, sent = 0, nil, nil
lat, svc, lag, held, bad, answered = {}, {}, {}, 0, 0, 0

function delay()
  due = origin + (sender + k * SENDERS) * 1e6 / RATE
  local wait = due - now_us()
  if wait > 0 then return wait / 1000 end  -- wrk waits whole milliseconds (floor)
  return 0
end

function request()
  if due ~= nil then
    local wait = due - now_us()
    if wait > 0 then  -- the sub-millisecond rest; this thread serves only this connection
      pause.tv_sec, pause.tv_nsec = 0, math.min(wait, 999999) * 1000
      ffi.C.nanosleep(pause, nil)
    end
  end
  sent = now_us()
  return wrk.format()
end

function response(status, headers, body)
  local t = now_us()
  if due == nil then return end
  if answered > due then held = held + 1 end  -- waited for the previous answer: counted below
  lat[#lat + 1] = t - due
  svc[#svc + 1] = t - sent
  lag[#lag + 1] = sent - due
  if status ~= 200 then bad = bad + 1 end
  answered = t
  k = k + 1
end

function done(summary, latency, requests)
  local out = {}
  for _, t in ipairs(senders) do
    out[#out + 1] = string.format(
      '{"lat":[%s],"svc":[%s],"lag":[%s],"held":%d,"bad":%d,"last_us":%.3f}',
      table.concat(t:get("lat"), ","), table.concat(t:get("svc"), ","),
      table.concat(t:get("lag"), ","), t:get("held"), t:get("bad"), t:get("answered"))
  end
  local e = summary.errors
  io.write(string.format(
    '@MARK@{"requests":%d,"duration_us":%d,"origin_us":%.3f,"errors":{"connect":%d,' ..
    '"read":%d,"write":%d,"status":%d,"timeout":%d},"senders":[%s]}\n', summary.requests,
    summary.duration, first or 0, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(out, ",")))
end
"""


class LoadGeneratorMissing(RuntimeError):
    """The external load generator (``wrk``) is not installed."""


def find_wrk() -> str:
    """The path of ``wrk``; :class:`LoadGeneratorMissing` says how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise LoadGeneratorMissing(
            f"leadtime bench api needs the load generator wrk, which is not on PATH: "
            f"install it with `{WRK_INSTALL}` (Debian/Ubuntu)")
    return path


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def fleet_document(producers: int, pools: int = API_POOLS) -> dict[str, Any]:
    """A ``leadtime.yaml`` document: ``producers`` producers dealt round-robin into pools."""
    pools = max(1, min(pools, producers))
    capacities = (10, 25, 50, 100)
    document: dict[str, Any] = {
        "engine": {"mode": "dry_run", "threshold": 0.6, "decision_interval_s": 60},
        "pools": {}}
    for k in range(pools):
        document["pools"][f"pool-{k}"] = {
            "defaults": {"capacity_per_instance": capacities[k % len(capacities)],
                         "min_instances": 1, "max_instances": 50, "spinup_lead_time_s": 300,
                         "target_utilisation": 0.7, "slo_ms": 500},
            "producers": [{"id": f"bench-{i:04d}"} for i in range(k, producers, pools)]}
    return document


def write_fleet_config(path: Path, producers: int, pools: int = API_POOLS) -> LeadtimeConfig:
    """Write the generated ``leadtime.yaml`` and validate the file as written."""
    import yaml

    from leadtime.config import load_config, parse_config

    document = fleet_document(producers, pools)
    parse_config(document, "generated leadtime.yaml")  # ConfigError before anything is written
    path.write_text("# generated by leadtime bench api\n" + yaml.safe_dump(document, sort_keys=False))
    return load_config(path)


def fleet_states(config: LeadtimeConfig) -> list[dict[str, Any]]:
    """One state per producer, from a quarter to 1.1 times its capacity: real decisions, mixed."""
    states = []
    for i, (producer_id, c) in enumerate(sorted(config.producers().items())):
        instances = 2 + i % 5
        utilisation = 0.25 + 0.85 * (i % 10) / 9
        states.append({"producer_id": producer_id, "instances": instances,
                       "current_load": round(c.capacity_per_instance * instances * utilisation, 3)})
    return states


def _server_env(home: Path, config_path: Path, token: str) -> dict[str, str]:
    """The parent's environment without its leadtime/MLflow/Prefect settings: all state in home."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEADTIME_", "MLFLOW_", "PREFECT_"))}
    env.update(LEADTIME_HOME=str(home), LEADTIME_CONFIG_PATH=str(config_path),
               LEADTIME_API_TOKEN=token, MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
               MLFLOW_LOGGING_LEVEL="WARNING", PREFECT_HOME=str(home / "prefect"),
               PYTHONUNBUFFERED="1")
    return env


def _call(port: int, method: str, path: str, body: Any = None, token: str | None = None,
          timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _report_states(port: int, token: str, config: LeadtimeConfig) -> dict[str, Any]:
    """POST one state report for every producer and read the decisions the pass made of it."""
    states = fleet_states(config)
    status, raw = _call(port, "POST", "/v1/producers/state", {"producers": states}, token)
    if status != 200:
        raise RuntimeError(f"POST /v1/producers/state -> {status}: {raw[:300]!r}")
    accepted = json.loads(raw)
    deadline = time.monotonic() + 20
    while True:  # the server waits up to 2 s per call for the pass the report triggered
        status, raw = _call(port, "GET", f"/v1/decisions?after_pass={accepted['pass']}")
        if status != 200:
            raise RuntimeError(f"GET /v1/decisions -> {status}: {raw[:300]!r}")
        body = json.loads(raw)
        if body["pass"] > accepted["pass"]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no decision pass after the state report in 20 s "
                               f"(still pass {body['pass']})")
    actions: dict[str, int] = {}
    for d in body["decisions"]:
        actions[d["action"]] = actions.get(d["action"], 0) + 1
    return {"reported": accepted["accepted"], "pass": body["pass"],
            "decisions": len(body["decisions"]), "actions": dict(sorted(actions.items())),
            "degraded": sorted(body["degraded"]), "response_bytes": len(raw)}


def _run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int, threads: int,
             ) -> dict[str, Any]:
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--timeout", "10s", "--latency", "-s", str(script), url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"wrk did not finish a {seconds} s run in {seconds + 60} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited with status {out.returncode}: "
                           f"{(out.stderr or out.stdout).strip()[-500:]}")
    for line in out.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    raise RuntimeError(f"wrk printed no result (did its Lua script {script.name} load?): "
                       f"{out.stderr.strip()[-500:]}")


def _percentiles_ms(us: np.ndarray) -> dict[str, float]:
    ms = us / 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "max_ms": float(ms.max())}


def paced_senders(rate: float) -> int:
    """wrk threads (one connection each) for ``rate``: each sends every 40 ms or more often."""
    return int(min(64, max(8, math.ceil(rate * 0.04))))


def wrk_paced(wrk: str, url: str, workdir: Path, rate: float, seconds: int) -> dict[str, Any]:
    """``rate`` requests/s on a fixed schedule; latency from the due time (see PACED_LUA)."""
    senders = paced_senders(rate)
    script = workdir / "paced.lua"
    script.write_text(PACED_LUA.replace("@RATE@", repr(float(rate)))
                      .replace("@SENDERS@", str(senders)).replace("@MARK@", _MARK))
    raw = _run_wrk(wrk, url, script, seconds, senders, senders)
    lat = np.array([v for s in raw["senders"] for v in s["lat"]], dtype=float)
    svc = np.array([v for s in raw["senders"] for v in s["svc"]], dtype=float)
    lag = np.array([v for s in raw["senders"] for v in s["lag"]], dtype=float)
    if lat.size == 0:
        raise RuntimeError(f"the paced run got no answer from {url} (wrk errors: {raw['errors']})")
    # the achieved rate over the schedule: from the first due time to the last answer
    last = max((s["last_us"] for s in raw["senders"] if s["lat"]), default=raw["origin_us"])
    elapsed = max(last - raw["origin_us"], 1.0) / 1e6
    errors = dict(raw["errors"])
    errors["non_200"] = sum(s["bad"] for s in raw["senders"])
    return {"target_rps": float(rate), "connections": senders, "threads": senders,
            "requests": int(lat.size), "throughput_rps": lat.size / elapsed,
            **_percentiles_ms(lat),
            "measured_from": "due time (fixed schedule; coordinated omission counted)",
            "held_back": int(sum(s["held"] for s in raw["senders"])),
            "send_lag_p99_ms": float(np.percentile(lag, 99) / 1000),
            "from_send": _percentiles_ms(svc), "errors": errors, "elapsed_s": elapsed}


def wrk_closed_loop(wrk: str, url: str, workdir: Path, connections: int, seconds: int,
                    threads: int = 1) -> dict[str, Any]:
    """``connections`` back-to-back connections: wrk's own latency figures and request rate."""
    script = workdir / "closed.lua"
    script.write_text(CLOSED_LUA.replace("@MARK@", _MARK))
    threads = max(1, min(threads, connections))
    raw = _run_wrk(wrk, url, script, seconds, connections, threads)
    if raw["requests"] == 0:
        raise RuntimeError(f"the closed-loop run got no answer from {url} "
                           f"(wrk errors: {raw['errors']})")
    elapsed = raw["duration_us"] / 1e6
    ms = {k.replace("_us", "_ms"): raw[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "max_us")}
    return {"connections": connections, "threads": threads, "requests": raw["requests"],
            "throughput_rps": raw["requests"] / elapsed, **ms,
            "measured_from": "send; wrk's --latency figures, which wrk corrects for coordinated "
                             "omission at the run's own per-connection request interval",
            "errors": raw["errors"],
            "elapsed_s": elapsed}


def _target(report: dict[str, Any]) -> dict[str, Any]:
    paced = report["paced"]
    comparable = (report["producers"] == API_TARGET["producers"]
                  and paced["target_rps"] == API_TARGET["rate_rps"])
    met = None
    if comparable:
        scaling = report.get("scaling")
        met = bool(paced["p99_ms"] <= API_TARGET["p99_ms"]
                   and paced["throughput_rps"] >= 0.95 * paced["target_rps"]
                   and not any(paced["errors"].values())
                   and (scaling is None or scaling >= API_TARGET["scaling"]))
    return {**API_TARGET, "comparable": comparable, "met": met}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def api_run(producers: int = 100, seconds: int = 10, rate: float = 200.0,
            connections: int | tuple[int, ...] = 4, wrk: str | None = None,
            closed_threads: int = 1) -> dict[str, Any]:
    """``GET /v1/decisions`` on a real server process, loaded by wrk: paced, then closed loop
    at each of ``connections`` (the first is the report's ``closed_loop``)."""
    counts = (connections,) if isinstance(connections, int) else tuple(connections)
    from leadtime.settings import PROJECT_ROOT

    if not 1 <= seconds <= MAX_API_SECONDS:
        raise ValueError(f"seconds must be in 1..{MAX_API_SECONDS}, got {seconds}")
    wrk = wrk or find_wrk()
    with tempfile.TemporaryDirectory(prefix="leadtime-bench-api-") as tmp:
        workdir = Path(tmp)
        home = workdir / "home"
        home.mkdir()
        config = write_fleet_config(workdir / "leadtime.yaml", producers)
        token = secrets.token_urlsafe(24)
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app",
               "--app-dir", str(PROJECT_ROOT), "--host", HOST, "--port", str(port),
               "--workers", "1", "--log-level", "warning", "--no-access-log"]
        log = workdir / "server.log"
        started = time.perf_counter()
        try:
            server = start(cmd, port, "/readyz", log,
                           env=_server_env(home, workdir / "leadtime.yaml", token), cwd=home)
        except RuntimeError as exc:
            raise RuntimeError(f"the API server did not start ({exc}); its log ends:\n"
                               f"{_tail(log)}") from None
        try:
            ready_s = time.perf_counter() - started
            decisions = _report_states(port, token, config)
            _, raw = _call(port, "GET", "/readyz")
            readyz = json.loads(raw)
            url = f"http://{HOST}:{port}/v1/decisions"
            paced = wrk_paced(wrk, url, workdir, rate, seconds)
            closed = [wrk_closed_loop(wrk, url, workdir, n, seconds, closed_threads)
                      for n in counts]
            if server.process.poll() is not None:
                raise RuntimeError(f"the API server exited during the runs:\n{_tail(log)}")
        finally:
            server.stop()
    report: dict[str, Any] = {
        "endpoint": "GET /v1/decisions",
        "server": {"command": "uvicorn --factory serving.app:create_app", "workers": 1,
                   "host": HOST, "access_log": False, "ready_s": round(ready_s, 2)},
        "producers": producers, "pools": len(config.pools), "seconds": seconds,
        "load_generator": {"tool": "wrk", "version": wrk_version(wrk),
                           "paced": "wrk + Lua fixed schedule, latency from the due time",
                           "closed_loop": "wrk --latency"},
        "decisions": decisions,
        "readyz": {"ready": readyz.get("ready"), "tiers": readyz.get("tiers"),
                   "producers": readyz.get("config", {}).get("producers")},
        "paced": paced, "closed_loop": closed[0], "closed_loops": closed,
        "scaling": (closed[-1]["throughput_rps"] / closed[0]["throughput_rps"]
                    if len(closed) > 1 else None)}
    report["target"] = _target(report)
    return report


def format_api_report(report: dict[str, Any]) -> str:
    """The figures side by side, with the target beside them."""
    d, p, c, t = report["decisions"], report["paced"], report["closed_loop"], report["target"]
    actions = ", ".join(f"{n} {a}" for a, n in d["actions"].items())
    lines = [
        f"leadtime bench api: {report['endpoint']} on a real server ({report['server']['command']}, "
        f"1 worker, {report['server']['host']}), {report['producers']} producers in "
        f"{report['pools']} pools, {report['seconds']} s per run, load from "
        f"{report['load_generator']['version']}",
        f"decisions: pass {d['pass']} after one state report for {d['reported']} producers "
        f"({actions}); degraded tiers: {', '.join(d['degraded']) or 'none'}; "
        f"response {d['response_bytes'] / 1000:.1f} kB",
        "",
        f"{'run':<44}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}"]

    def row(name: str, r: dict[str, Any], requests: int, rps: float, errors: int) -> str:
        return (f"{name:<44}{requests:>9}{rps:>9.1f}{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}"
                f"{r['p99_ms']:>9.2f}{errors:>8}")

    perrors = sum(p["errors"].values())
    lines.append(row(f"paced {p['target_rps']:.0f} req/s ({p['connections']} conns, from due time)",
                     p, p["requests"], p["throughput_rps"], perrors))
    lines.append(row("  same run, timed from the send", p["from_send"], p["requests"],
                     p["throughput_rps"], perrors))
    for run in report.get("closed_loops", [c]):
        lines.append(row(f"closed loop ({run['connections']} conns, wrk)", run, run["requests"],
                         run["throughput_rps"], sum(run["errors"].values())))
    lines.append(f"paced: {p['held_back']} of {p['requests']} requests waited for the previous "
                 f"answer on their connection; p99 send lag {p['send_lag_p99_ms']:.2f} ms")
    lines.append("closed loop: wrk's own --latency figures (wrk corrects them for coordinated "
                 "omission at the run's mean request interval per connection)")
    loops = report.get("closed_loops", [c])
    if report.get("scaling") is not None:
        lines.append(f"throughput at {loops[-1]['connections']} connections: "
                     f"{report['scaling']:.0%} of that at {loops[0]['connections']}")
    verdict = ("met" if t["met"] else "NOT met") if t["comparable"] else (
        "not comparable: it is stated at the default rate and producers")
    lines.append(f"target: p99 <= {t['p99_ms']:.0f} ms at {t['rate_rps']:.0f} req/s with "
                 f"{t['producers']:.0f} producers, and throughput at the most connections >= "
                 f"{t['scaling']:.0%} of the fewest -> {verdict} (paced p99 {p['p99_ms']:.2f} ms, "
                 f"{p['throughput_rps']:.1f} req/s)")
    return "\n".join(lines)
