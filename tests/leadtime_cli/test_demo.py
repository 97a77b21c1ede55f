"""``leadtime demo`` end to end, and ``leadtime serve --as-of`` giving real decisions after it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

TOKEN = "demo-token"
NET_GUARD = Path(__file__).parent / "net_guard"
AS_OF = datetime(1995, 9, 1)  # the end of the NASA demo trace


def test_as_of_sets_the_decision_loops_clock_and_the_wall_clock_stays_the_default(tmp_path):
    from leadtime.settings import Settings
    from loop.clock import ReplayClock, WallClock
    from serving.app import create_app
    from serving.decisions import AsOfClock

    as_of = Settings(home=tmp_path, as_of=AS_OF)
    clock = create_app(as_of, load=False).state.leadtime.decisions.clock
    assert isinstance(clock, AsOfClock)
    start = AS_OF.replace(tzinfo=UTC).timestamp()
    first = clock.now()
    assert start <= first < start + 5
    time.sleep(0.05)
    assert clock.now() > first  # it advances with wall time from the moment given
    offset = Settings(home=tmp_path, as_of=datetime.fromisoformat("1995-09-01T02:00:00+02:00"))
    assert create_app(offset, load=False).state.leadtime.decisions.clock.start_s == start
    wall = create_app(Settings(home=tmp_path), load=False).state.leadtime.decisions.clock
    assert isinstance(wall, WallClock)
    chosen = ReplayClock(42.0)  # a caller's own clock (the replay, tests) is kept
    assert create_app(as_of, load=False, clock=chosen).state.leadtime.decisions.clock is chosen


def test_serve_refuses_a_bad_as_of_in_one_line():
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["serve", "--as-of", "yesterday"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--as-of 'yesterday' is not an ISO 8601 timestamp" in result.output


def test_the_replay_window_leaves_a_warm_up_and_names_the_end(tmp_path):
    import pandas as pd

    from leadtime_cli.demo import replay_window
    from simulation.generate import write_load_trace
    from simulation.traces import read_demand

    demand = read_demand(write_load_trace(tmp_path / "load.csv", producers=2, days=10))
    warmup, end, producers = replay_window(demand, 3)
    assert warmup == pd.Timedelta(days=7) and producers == ["svc-1", "svc-2"]
    assert end == pd.Timestamp("2024-03-14")  # the interval after the last one
    with pytest.raises(ValueError, match="choose --days 9 or fewer"):
        replay_window(demand, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _passes(base: str) -> float:
    found = re.search(r"^leadtime_engine_pass_seconds_count (\S+)$", _get(f"{base}/metrics").text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _get(url: str):
    import httpx

    return httpx.get(url, timeout=5)


@pytest.mark.slow
def test_demo_then_serve_as_of_the_end_of_the_trace_gives_a_tier1_decision(state, tmp_path):
    """The demo on a generated trace (svc-1, declared in leadtime.yaml): the table, the report
    and the next steps; then the printed ``leadtime serve --as-of`` decides with Tier 1, where
    the wall clock finds the champion too stale.

    Both run as their own processes under a network guard (``net_guard/sitecustomize.py``,
    inherited by Prefect's and MLflow's servers) with pytest's markers removed from the
    environment, since MLflow, for one, turns its telemetry off under pytest: nothing may
    connect to, or look up, anything beyond loopback."""
    from simulation.generate import write_load_trace

    trace = write_load_trace(tmp_path / "load.csv", producers=1, days=10)
    guard_log = tmp_path / "net_guard.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env |= {"PYTHONPATH": os.pathsep.join([str(NET_GUARD), env.get("PYTHONPATH", "")]),
            "LEADTIME_NET_GUARD_LOG": str(guard_log), "NO_PROXY": "*"}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(key, None)
    demo = subprocess.run(
        [sys.executable, "-c", "from leadtime_cli.app import app; app()", "demo", "--trace",
         str(trace), "--cutoffs", "2", "--days", "2"],
        env=env | {"COLUMNS": "1000"}, capture_output=True, text=True, timeout=1200)
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    for policy in ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime"):
        assert re.search(rf"│ {policy}\s+│", out), policy
    report = state.home_dir / "reports" / "demo_load.html"
    assert report.is_file() and report.as_uri() in out
    assert "uv run mlflow ui --backend-store-uri" in out and "prefect server start" in out
    as_of = re.search(r"leadtime serve --as-of (\S+)", out).group(1)
    assert as_of == "2024-03-14T00:00:00"
    assert "curl -s http://127.0.0.1:8000/v1/producers/svc-1" in out

    port = _free_port()
    env |= {"LEADTIME_HOME": str(state.home_dir), "LEADTIME_API_TOKEN": TOKEN,
            "MLFLOW_TRACKING_URI": state.tracking_uri}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-c", "from leadtime_cli.app import app; app()", "serve",
         "--as-of", as_of, "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        body = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = _get(f"{base}/v1/producers/svc-1")
                if response.status_code == 200:
                    body = response.json()
                    break
            except Exception:  # not listening yet
                pass
            time.sleep(1)
        assert body is not None, (tmp_path / "serve.log").read_text()
        while time.monotonic() < deadline + 120 and _passes(base) < 2:  # a second pass
            time.sleep(2)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert not guard_log.exists(), guard_log.read_text()[:2000]
    start = datetime.fromisoformat(as_of).replace(tzinfo=UTC).timestamp()
    assert start <= body["decided_at"] < start + 600
    decision = body["decision"]
    assert decision["action"] in ("scale_out", "hold")
    assert decision["prediction"]["weights"].get("tier1", 0) > 0
    tier1 = body["tiers"]["tier1"]
    assert tier1["prediction"] is not None and tier1["used_weight"] > 0 and not tier1["degraded"]
    # no state reported, so no reacting floor to hold: the tiers size (docs/design.md)
    assert any("weights tier1=" in reason for reason in decision["reasons"])

    # the same store on the wall clock: the 2024 champion is too stale to answer for now
    from fastapi.testclient import TestClient

    from leadtime.settings import get_settings
    from serving.app import create_app

    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        wall = client.get("/v1/producers/svc-1").json()
    assert "too stale" in wall["tiers"]["tier1"]["degraded"]


def test_printed_uv_runs_as_printed(monkeypatch, tmp_path):
    """The next steps name a ``uv`` that runs: the one on PATH, else ``make``'s .tools/bin/uv."""
    import subprocess

    from leadtime_cli.demo import uv_command

    printed = uv_command()
    assert subprocess.run([printed, "--version"], capture_output=True).returncode == 0
    monkeypatch.setenv("PATH", str(tmp_path))  # uv not on PATH: the local one, if made
    monkeypatch.chdir(tmp_path)
    assert uv_command() == "uv"  # nothing installed here: the plain name
    local = tmp_path / ".tools" / "bin" / "uv"
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\necho uv-stub\n")
    local.chmod(0o755)
    assert uv_command() == ".tools/bin/uv"


@pytest.mark.parametrize("content", [None, "timestamp,producer_id,value\nnot a time,p,1\n"])
def test_a_missing_or_malformed_trace_is_refused_before_any_service_starts(tmp_path, content):
    """Refused in one line, exit 2, and Prefect never imported (so its server never starts)."""
    trace = tmp_path / "trace.csv"
    if content is not None:
        trace.write_text(content)
    script = ("import sys; from typer.testing import CliRunner; from leadtime_cli.app import app; "
              f"r = CliRunner().invoke(app, ['demo', '--trace', {str(trace)!r}]); "
              "print(r.exit_code, 'prefect' in sys.modules); print(r.output)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "LEADTIME_HOME": str(tmp_path / "home")})
    first, *rest = out.stdout.splitlines()
    assert first == "2 False", out.stdout + out.stderr
    assert "trace.csv" in "\n".join(rest) and "Traceback" not in out.stdout
