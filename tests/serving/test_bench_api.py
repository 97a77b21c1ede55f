"""`leadtime bench api`: the generated fleet, the missing-wrk refusal, and one short real run.

The end-to-end run is slow (a real server process and two wrk runs) and skips without wrk. No
test asserts a latency: the target (p99 under 10 ms at 200 req/s, 100 producers) is printed
beside the figures by the command, not checked here.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner


def test_generated_fleet_is_valid_config_in_pools_with_mixed_states(tmp_path):
    from evaluation.api_bench import fleet_states, write_fleet_config
    from leadtime.config import load_config

    config = write_fleet_config(tmp_path / "leadtime.yaml", 100)
    assert len(config.producers()) == 100
    assert len(config.pools) == 4
    assert load_config(tmp_path / "leadtime.yaml").producers() == config.producers()
    states = fleet_states(config)
    assert {s["producer_id"] for s in states} == set(config.producers())
    utilisation = [s["current_load"] / (s["instances"] * config.producers()[s["producer_id"]]
                                        .capacity_per_instance) for s in states]
    assert min(utilisation) < 0.5 < 1.0 < max(utilisation)  # some scale in, some scale out


def test_missing_wrk_is_one_clear_line_and_exit_code_2(tmp_path, monkeypatch):
    from leadtime_cli.app import app

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no wrk on PATH
    result = CliRunner().invoke(app, ["bench", "api", "--seconds", "2"])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "apt-get install wrk" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_seconds_is_bounded():
    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["bench", "api", "--seconds", "121"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_bench_api_end_to_end_prints_one_json_document():
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk); leadtime bench api needs it")
    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["bench", "api", "--seconds", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["endpoint"] == "GET /v1/decisions"
    assert report["producers"] == 100 and report["seconds"] == 2
    assert report["decisions"]["decisions"] == 100 and report["decisions"]["reported"] == 100
    assert report["load_generator"]["tool"] == "wrk"
    for run in ("paced", "closed_loop"):
        figures = report[run]
        for key in ("requests", "throughput_rps", "p50_ms", "p90_ms", "p99_ms", "errors"):
            assert key in figures, (run, key)
        assert figures["requests"] > 0
        assert figures["throughput_rps"] > 0
    assert report["paced"]["target_rps"] == 200
    assert report["closed_loop"]["connections"] == 4
    assert [r["connections"] for r in report["closed_loops"]] == [4, 32]
    assert report["scaling"] == pytest.approx(report["closed_loops"][1]["throughput_rps"]
                                              / report["closed_loops"][0]["throughput_rps"])
    assert {"p99_ms", "rate_rps", "producers", "scaling", "met"} <= set(report["target"])


def test_connections_must_be_counts():
    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["bench", "api", "--connections", "4,x"])
    assert result.exit_code != 0 and "--connections takes counts" in result.output
