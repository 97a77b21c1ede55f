"""Both input contracts reach the simulator through the loaders; bad traces get their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadtime.validation import TraceError
from simulation.traces import read_demand


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_load_traces_get_the_loaders_errors(tmp_path: Path):
    missing = write(tmp_path / "a.csv", "timestamp,value\n2024-01-01 00:00,1\n")
    with pytest.raises(TraceError, match="missing column"):
        read_demand(missing)
    words = write(
        tmp_path / "b.csv",
        "timestamp,producer_id,value\n2024-01-01 00:00,p,abc\n2024-01-01 00:01,p,2\n",
    )
    with pytest.raises(TraceError, match="value"):
        read_demand(words)
    with pytest.raises(TraceError, match="no such file"):
        read_demand(tmp_path / "absent.csv")


def test_unknown_producer_is_a_trace_error(tmp_path: Path):
    ok = write(
        tmp_path / "c.csv",
        "timestamp,producer_id,value\n2024-01-01 00:00,p,1\n2024-01-01 00:01,p,2\n",
    )
    with pytest.raises(TraceError, match="no producer 'q'"):
        read_demand(ok, producer="q")


def test_request_trace_demand_is_the_sum_per_interval(tmp_path: Path):
    write(
        tmp_path / "r.schema.yaml",
        "target: demand\ncategorical: [producer_id]\nnumeric: [size]\ntime: timestamp\n",
    )
    csv = write(
        tmp_path / "r.csv",
        "timestamp,producer_id,size,demand\n"
        "2024-01-01 00:00:10,a,1,2.0\n2024-01-01 00:01:00,a,1,3.0\n"
        "2024-01-01 00:02:00,b,,1.5\n2024-01-01 00:12:00,a,2,4.0\n",
    )
    demand = read_demand(csv, interval_s=300.0)
    assert demand.kind == "requests" and demand.producers == ["a", "b"]
    assert list(demand.series["a"]) == [5.0, 0.0, 4.0]
    assert list(demand.series["b"]) == [1.5, 0.0, 0.0]
    assert demand.series["a"].index.freq == pd.Timedelta("5min")


def test_cli_exits_2_with_the_loaders_message(tmp_path: Path):
    from leadtime_cli.app import app

    bad = write(
        tmp_path / "bad.csv",
        "timestamp,producer_id,value\n2024-01-01 00:00,p,-3\n2024-01-01 00:01,p,2\n",
    )
    result = CliRunner().invoke(app, ["bench", "autoscale", "--trace", str(bad), "--no-plot"])
    assert result.exit_code == 2
    assert "negative" in result.output
    short = write(
        tmp_path / "short.csv",
        "timestamp,producer_id,value\n2024-01-01 00:00,p,1\n2024-01-01 00:01,p,2\n",
    )
    result = CliRunner().invoke(app, ["bench", "autoscale", "--trace", str(short), "--no-plot"])
    assert result.exit_code == 2 and "at least 2 days" in result.output


@pytest.mark.slow
def test_bench_on_two_nab_producers_prints_one_json_document(shared_data: Path):
    from leadtime_cli.app import app

    trace = shared_data / "load" / "nab_aws_cloudwatch.csv"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "autoscale",
            "--trace",
            str(trace),
            "--producer",
            "rds_cpu_utilization_cc0c53",
            "--threshold",
            "0.8",
            "--json",
            "--no-plot",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["producer"] == "rds_cpu_utilization_cc0c53"
    assert doc["settings"]["threshold"] == 0.8 and doc["settings"]["interval_level_pct"] == 80
    assert set(doc["policies"]) == {
        "static_peak",
        "hpa",
        "forecast_scale_out",
        "crane_ehpa",
        "knative_kpa",
        "leadtime",
        "oracle",
    }
    for metrics in doc["policies"].values():
        assert set(metrics) == {
            "slo_violation_pct",
            "underprovisioned_pct",
            "instance_hours",
            "cost_vs_oracle",
            "p99_latency_ms",
            "scaling_actions",
            "slo_misses",
            "slo_miss_minutes",
        }
    assert doc["policies"]["oracle"]["cost_vs_oracle"] == 1.0


def test_request_trace_as_occupancy_on_a_hand_checked_case(tmp_path: Path):
    """Three requests on one producer, one-minute intervals from 00:00:
    - r1 arrives 00:00:30, waits 60 s, runs 90 s with 2 units: busy 00:01:30-00:03:00;
    - r2 arrives 00:01:00, runs 30 s with 1 unit: busy 00:01:00-00:01:30;
    - r3 arrives 00:02:00, runs 120 s with 1 unit: busy 00:02:00-00:04:00.
    Mean units held per minute: [0, (30 x 1 + 30 x 2)/60, 2 + 1, 1, 0] -> the last interval is
    the one where the last request ends (00:04:00)."""
    write(tmp_path / "jobs.schema.yaml",
          "target: runtime\ntarget_unit: seconds\ncategorical: [producer_id]\nnumeric: []\n"
          "wait: queued_s\nunits: gpus\n")
    csv = write(tmp_path / "jobs.csv",
                "timestamp,producer_id,queued_s,gpus,runtime\n"
                "2024-01-01 00:00:30,a,60,2,90\n2024-01-01 00:01:00,a,0,1,30\n"
                "2024-01-01 00:02:00,a,0,1,120\n")
    demand = read_demand(csv, interval_s=60.0)
    load = demand.series["a"]
    assert list(load.index.strftime("%H:%M")) == ["00:00", "00:01", "00:02", "00:03", "00:04"]
    assert list(load) == pytest.approx([0.0, 1.5, 3.0, 1.0, 0.0])
    assert "occupancy" in demand.notes[0] and "queued_s" in demand.notes[0]
    # the binned reading stays an option: each request's runtime in its arrival interval
    binned = read_demand(csv, interval_s=60.0, reading="binned").series["a"]
    assert list(binned) == [90.0, 30.0, 120.0]


def test_occupancy_needs_run_times_and_refuses_negative_ones(tmp_path: Path):
    write(tmp_path / "tok.schema.yaml",
          "target: demand\ntarget_unit: tokens\ncategorical: []\nnumeric: []\n")
    tokens = write(tmp_path / "tok.csv", "timestamp,demand\n2024-01-01 00:00:00,5\n")
    assert read_demand(tokens).notes[0].startswith("request trace binned")
    with pytest.raises(TraceError, match="needs each request's run time"):
        read_demand(tokens, reading="occupancy")
    write(tmp_path / "neg.schema.yaml",
          "target: demand\ntarget_unit: s\ncategorical: []\nnumeric: []\nwait: w\n")
    negative = write(tmp_path / "neg.csv", "timestamp,w,demand\n2024-01-01 00:00:00,-1,5\n")
    with pytest.raises(TraceError, match="negative"):
        read_demand(negative)
