"""Serving benchmark: ``/v1/requests/predict`` vs ``mlflow models serve`` vs in-process predict.

All on loopback, bounded in time. Each server gets a paced run (``rate`` requests/s for
``seconds``, latency p50/p99) and a throughput run (``clients`` closed-loop clients for
``seconds``). Both servers run the same registered champion: leadtime's route also reads the
Feast online store; ``mlflow models serve`` is given the already-joined features.

In-process figures: ``predict_frame`` (the pandas path the pyfunc uses), ``predict`` (the list
fast path the route uses), ``with_feast`` (fast path + online features through the TTL cache:
the first pass over the sampled payloads misses), ``feast_uncached`` (every call reads Feast).
The leadtime server runs one uvicorn worker without access log.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


def start(cmd: list[str], port: int, health: str, log: Path, timeout: float = 180) -> Server:
    """Start a server process and wait until ``health`` answers 200."""
    handle = log.open("w")
    process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy())
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

    began = time.perf_counter()
    workers = [threading.Thread(target=sender, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    return _summary(latencies, elapsed)


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

    began = time.perf_counter()
    workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return _summary(latencies, time.perf_counter() - began)


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
    try:
        _post(http.client.HTTPConnection(HOST, port), "/v1/requests/predict", ours[0])
        report["leadtime_serve"] = {
            "paced": paced(port, "/v1/requests/predict", ours, rate, seconds),
            "max_throughput": closed_loop(port, "/v1/requests/predict", ours, seconds, clients),
        }
    finally:
        server.stop()

    theirs = [json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))}).encode()
              for frame in single]
    port = free_port()
    from models.registry import model_uri

    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    server = start([mlflow_bin, "models", "serve", "-m", model_uri(runtime.name), "-h", HOST,
                    "-p", str(port), "--env-manager", "local", "-w", "1"], port, "/ping",
                   logs / "mlflow.log")
    try:
        _post(http.client.HTTPConnection(HOST, port), "/invocations", theirs[0])
        report["mlflow_models_serve"] = {
            "paced": paced(port, "/invocations", theirs, rate, seconds),
            "max_throughput": closed_loop(port, "/invocations", theirs, seconds, clients),
        }
    finally:
        server.stop()
    return report


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


def api_run(settings, seconds: float = 10.0, rate: float = 200.0, clients: int = 4) -> dict[str, Any]:
    """``GET /v1/decisions`` on a real ``leadtime serve`` process over loopback: paced and max."""
    port = free_port()
    log = settings.home_dir / "bench_api.log"
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host", HOST,
           "--port", str(port), "--no-access-log", "--log-level", "warning"]
    server = start(cmd, port, "/healthz", log)
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        conn.request("GET", "/readyz")
        readiness = json.loads(conn.getresponse().read())
        report = {"endpoint": "GET /v1/decisions", "seconds": seconds, "readyz": readiness,
                  "paced": paced(port, "/v1/decisions", [None], rate, seconds),
                  "max_throughput": closed_loop(port, "/v1/decisions", [None], seconds, clients)}
    finally:
        server.stop()
    report["paced"]["target_rps"] = rate
    return report
