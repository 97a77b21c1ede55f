"""The multi-resource replay: the multi-metric HPA, a violation when any resource is short, and
leadtime sized on every resource against leadtime on CPU alone (``bench resources``)."""

from __future__ import annotations

import numpy as np
import pytest

from simulation.config import SimConfig
from simulation.policies import Observation
from simulation.resources import MultiMetricHPA, bench_resources, binding_shift, served, stake
from simulation.simulator import simulate

CFGS = {"cpu": SimConfig(interval_s=300.0, capacity_per_instance=4.0, max_instances=50),
        "memory": SimConfig(interval_s=300.0, capacity_per_instance=16.0, max_instances=50)}


def test_the_multi_metric_hpa_takes_the_largest_count_and_stabilises_once():
    """cpu at 2 busy cores an instance (2.8 at 70 %) asks for 3 instances, memory at 15 GB an
    instance (11.2 at 70 %) for 6; 5 minutes later memory is quiet, and the one downscale
    stabilisation holds the 6 recommended within its window."""
    hpa = MultiMetricHPA(CFGS)
    first = hpa.decide(Observation(1, 300.0, None, 4, 4, 0, {"cpu": 8.0, "memory": 60.0}))
    after = hpa.decide(Observation(2, 600.0, None, 4, 6, 0, {"cpu": 8.0, "memory": 5.0}))
    assert (first, after) == (6, 6)


class Fixed:
    name = "fixed"

    def __init__(self, n: int) -> None:
        self.n = n

    def decide(self, obs: Observation) -> int:
        return self.n


def test_an_interval_violates_when_any_resource_is_short():
    """Four instances carry 11.2 cores and 44.8 GB at 70 %: cpu is fine throughout, memory
    exceeds what four can hold in the third interval, whose backlog drains (late) in the
    fourth."""
    demands = {"cpu": np.array([8.0, 8.0, 8.0, 8.0]), "memory": np.array([20.0, 20.0, 90.0, 20.0])}
    run = simulate(demands["cpu"], CFGS["cpu"], Fixed(4), loads=demands)
    both = served("fixed", demands, CFGS, run)
    assert not run.violated.any()  # cpu alone
    assert both.violated.tolist() == [False, False, True, True]
    assert np.allclose(both.demand, [2.0, 2.0, 90.0 / 16.0, 2.0])  # the binding one's worth
    assert np.isnan(stake({"cpu": np.array([np.nan])}, CFGS))[0]


@pytest.mark.slow
def test_leadtime_sized_on_every_resource_covers_the_batches_cpu_alone_misses():
    frame = binding_shift(days=10)
    result = bench_resources(frame)
    every, cpu = result.metrics["leadtime"], result.metrics["leadtime_cpu"]
    assert every["slo_violation_pct"] < cpu["slo_violation_pct"] / 2
    assert {"cpu", "memory"} <= set(result.binding)  # the binding resource changed
    assert result.metrics["oracle"]["slo_violation_pct"] == 0.0
    # the oracle on CPU alone misses the batches and costs less: the others' least price
    cpu_only = result.metrics["oracle_cpu"]
    assert cpu_only["slo_violation_pct"] > 0
    assert cpu_only["instance_hours"] < result.metrics["oracle"]["instance_hours"]


@pytest.mark.parametrize("interval", ["1min", "5min", "30min", "60min"])
def test_the_replay_runs_at_any_sampling_interval(interval):
    """The same scenario sampled every 1, 5, 30 or 60 minutes replays, and the oracle, which
    knows the future, never misses."""
    frame = binding_shift(days=8, interval=interval)
    result = bench_resources(frame)
    assert result.metrics["oracle"]["slo_violation_pct"] == 0.0
    assert set(result.metrics) >= {"hpa", "leadtime", "leadtime_cpu"}


def test_bench_resources_replays_a_long_format_trace_with_leadtime_yamls_capacities(
        tmp_path, monkeypatch):
    """``--trace``: the producer's resources from the trace's resource column, capacities per
    instance from leadtime.yaml where it declares them; a trace with one resource is refused
    in one line."""
    import json

    from typer.testing import CliRunner

    from leadtime.settings import get_settings
    from leadtime_cli.app import app

    frame = binding_shift(days=9)
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    trace = tmp_path / "long.csv"
    frame.to_csv(trace, index=False)
    config = tmp_path / "leadtime.yaml"
    config.write_text("pools:\n  data:\n    producers:\n      - id: orders\n        resources:\n"
                      "          cpu: {capacity_per_instance: 4}\n"
                      "          memory: {capacity_per_instance: 16}\n"
                      "          network: {capacity_per_instance: 1}\n")
    monkeypatch.setenv("LEADTIME_CONFIG_PATH", str(config))
    monkeypatch.setenv("LEADTIME_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["bench", "resources", "--trace", str(trace), "--json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout[result.stdout.index("{"):])
        assert doc["scenario"]["capacity"] == {"cpu": 4.0, "memory": 16.0, "network": 1.0}
        assert doc["scenario"]["capacity_from"] == "leadtime.yaml's resources for orders"
        assert doc["policies"]["oracle"]["slo_violation_pct"] == 0.0
        from pathlib import Path

        assert Path(doc["plot"]).stat().st_size > 10_000  # the PNG a person looks at
        assert str(tmp_path) in doc["plot"]
        one = tmp_path / "one.csv"
        frame[frame["resource"] == "cpu"].to_csv(one, index=False)
        refused = CliRunner().invoke(app, ["bench", "resources", "--trace", str(one)])
        assert refused.exit_code == 2 and "no producer with two resources" in refused.output
        assert "Traceback" not in refused.output
    finally:
        get_settings.cache_clear()


def _jobs(tmp_path):
    """Two requests, hand-checked: a query holding 4 cores and 0.5 GiB over [60 s, 360 s], an
    extract holding 1 core and 20 GiB over [300 s, 1200 s] after waiting 300 s."""
    from textwrap import dedent

    trace = tmp_path / "jobs.csv"
    trace.write_text(dedent("""\
        timestamp,producer_id,request_type,size,wait_s,cores,gib,runtime
        2024-03-04 00:01:00,svc,query,4,0,4,0.5,300
        2024-03-04 00:01:00,svc,extract,40,240,1,20,900
        """))
    trace.with_suffix(".schema.yaml").write_text(
        "target: runtime\ntarget_unit: seconds\ncategorical: [request_type]\nnumeric: [size]\n"
        "wait: wait_s\nresources:\n  cpu: cores\n  memory: {column: gib, unit: GiB}\n")
    return trace


def test_a_request_trace_replays_each_resource_as_what_its_requests_hold(tmp_path):
    """Occupancy per resource at 5 minutes: each interval's mean of what the requests hold."""
    from simulation.resources import request_resources

    frame, runs = request_resources(str(_jobs(tmp_path)), 300.0)
    cpu = frame[frame["resource"] == "cpu"]["value"].to_numpy()
    memory = frame[frame["resource"] == "memory"]["value"].to_numpy()
    # [0, 300): the query 240 s of 4 cores; [300, 600): the query 60 s, the extract all of it
    np.testing.assert_allclose(cpu[:5], [4 * 240 / 300, 4 * 60 / 300 + 1, 1, 1, 0])
    np.testing.assert_allclose(memory[:5], [0.5 * 240 / 300, 0.5 * 60 / 300 + 20, 20, 20, 0])
    assert runs["units_memory"].tolist() == [0.5, 20.0]


def test_tier2_tells_each_resource_what_its_requests_will_hold(tmp_path):
    """The replayed loop with the requests told to Tier 2: the extract queued at 00:01 holds
    its predicted 20 GiB from its start, under the memory key, before any memory load is
    seen; its start and end move every share."""
    from simulation.policies import RequestFeed
    from simulation.resources import request_resources

    _, runs = request_resources(str(_jobs(tmp_path)), 300.0)
    predicted = runs.assign(point=runs["end_s"] - runs["start_s"], lower=np.nan, upper=np.nan)
    predicted["lower"], predicted["upper"] = 0.8 * predicted["point"], 1.2 * predicted["point"]
    for name in ("cpu", "memory"):
        held = predicted[f"units_{name}"]
        predicted[f"{name}_point"], predicted[f"{name}_lower"] = held, 0.9 * held
        predicted[f"{name}_upper"] = 1.1 * held
    feed = RequestFeed(predicted, "svc", {"cpu": "svc/cpu", "memory": "svc/memory"})
    arrival = runs["arrival_s"].iloc[0]
    feed.until(arrival + 1)
    ledger = feed.ledger
    assert ledger.in_flight("svc/memory") == 2 and ledger.queued("svc/memory") == 1
    ahead = ledger.predict({"svc/memory": 600.0}, {"svc/memory": 1.0}, now=arrival + 1)
    assert ahead["svc/memory"].point >= 20.0  # the extract's GiB, ahead of its start
    feed.until(arrival + 2000)  # both finished: every share has left
    assert ledger.in_flight("svc/memory") == ledger.in_flight("svc/cpu") == 0
    assert ledger.late == 0


def test_bench_resources_on_requests_replays_leadtime_with_and_without_tier2():
    """cpu_memory_jobs' requests, their run times and resources predicted as they happened (a
    perfect Tier 2, so the test runs without Feast): leadtime with Tier 2 and without it are
    both replayed, and what Tier 2 is told changes what leadtime holds."""
    import tempfile
    from pathlib import Path

    from simulation.request_scenarios import cpu_memory_jobs
    from simulation.resources import bench_resources, derived_capacity, request_resources

    with tempfile.TemporaryDirectory() as folder:
        frame, runs = request_resources(str(cpu_memory_jobs(Path(folder), days=8)), 300.0)
    predicted = runs.assign(point=runs["end_s"] - runs["start_s"])
    predicted["lower"], predicted["upper"] = 0.8 * predicted["point"], 1.2 * predicted["point"]
    for name in ("cpu", "memory"):
        for end, factor in (("point", 1.0), ("lower", 0.9), ("upper", 1.1)):
            predicted[f"{name}_{end}"] = factor * predicted[f"units_{name}"]
    result = bench_resources(frame, capacity=derived_capacity(frame), max_instances=None,
                             requests=predicted)
    assert {"leadtime", "leadtime_without_tier2", "leadtime_tier2_one_demand",
            "hpa"} <= set(result.metrics)
    assert result.metrics["oracle"]["slo_violation_pct"] == 0.0
    assert {"cpu", "memory"} <= set(result.binding)  # CPU by day, memory at night
    told, untold = result.metrics["leadtime"], result.metrics["leadtime_without_tier2"]
    assert told["instance_hours"] != untold["instance_hours"]


def test_one_demand_scales_each_resource_by_its_mean_share_before_scoring():
    """The way before per-resource models: each resource's factor is the mean it held per unit
    over the requests finished before the scored part; the resources' predictions are dropped,
    so Tier 2 answers each resource from the producer's one demand."""
    import pandas as pd

    from simulation.resources import one_demand

    requests = pd.DataFrame({"end_s": [10.0, 20.0, 500.0], "units": [1.0, 1.0, 1.0],
                             "units_cpu": [2.0, 4.0, 100.0], "units_memory": [1.0, 3.0, 9.0],
                             "cpu_point": 3.0, "cpu_lower": 2.0, "cpu_upper": 4.0,
                             "memory_point": 2.0, "memory_lower": 1.0, "memory_upper": 3.0})
    told, scales = one_demand(requests, {"cpu": "svc/cpu", "memory": "svc/memory"}, 100.0)
    assert scales == {"svc/cpu": 3.0, "svc/memory": 2.0}  # the last request ends after 100 s
    assert not any(c.startswith(("cpu_", "memory_")) for c in told.columns)
    assert one_demand(told, {"cpu": "svc/cpu"}, 100.0) is None
