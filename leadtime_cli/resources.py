"""``leadtime bench resources``: a producer sized on several resources (see
:mod:`simulation.resources`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from leadtime_cli.common import BudgetOption, ViolationCostOption
from leadtime_cli.common import engine_from_flags as _engine


def resources(
    trace: Annotated[Path | None, typer.Option(
        help="A load trace with a 'resource' column (cpu, memory...), or a request trace whose "
        "schema declares its resources (replayed as what its requests hold, told to Tier 2), "
        "instead of a generated scenario; capacities per instance from leadtime.yaml's "
        "resources for the producer, else derived (its 95th percentile needs 9 instances).")
    ] = None,
    scenario: Annotated[str, typer.Option(
        help="The generated scenario when no --trace: binding_shift (a load trace), or "
        "cpu_memory_jobs (requests holding cores and GiB, told to Tier 2).")] = "binding_shift",
    producer: Annotated[str | None, typer.Option(
        help="With --trace: the producer to replay (default: the first with two resources).")
    ] = None,
    days: Annotated[int, typer.Option(min=8, max=120, help="Days of the generated scenario.")] = 28,
    interval: Annotated[str, typer.Option(help="Its sampling interval, e.g. 5min, 1min.")] = "5min",
    violation_cost: ViolationCostOption = None,
    budget: BudgetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    plot: Annotated[bool, typer.Option(
        "--plot/--no-plot", help="Save a PNG of each resource's load and what each policy's "
        "instances carry of it.")] = True,
) -> None:
    """The binding resource changes over the day (CPU by day, memory in a nightly batch,
    network in a weekly backup): leadtime sized on every resource against leadtime on CPU
    alone, the multi-metric HPA and the HPA on CPU, on the same replay. On requests that
    declare their resources (--scenario cpu_memory_jobs, or such a --trace) leadtime hears
    each request through Tier 2, every resource's share predicted by its own model, beside
    the same loop without Tier 2."""
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from leadtime_cli.common import fail
    from simulation.resources import MAX_INSTANCES, POLICIES, bench_resources, binding_shift

    try:
        step = pd.Timedelta(interval)
    except ValueError:
        fail(f"--interval {interval!r}: give a duration such as 5min or 1min")
    if not pd.Timedelta("1min") <= step <= pd.Timedelta("1h"):
        fail(f"--interval {interval!r}: between 1min and 1h")
    engine = _engine(violation_cost, budget)
    if scenario not in ("binding_shift", "cpu_memory_jobs"):
        fail(f"unknown --scenario {scenario!r}: choose binding_shift or cpu_memory_jobs")
    requests, scratch = None, None
    if trace is None and scenario == "cpu_memory_jobs":
        import tempfile

        from simulation.request_scenarios import cpu_memory_jobs

        scratch = tempfile.TemporaryDirectory(prefix="leadtime-resources-")
        trace = cpu_memory_jobs(Path(scratch.name), days=days)
    described = {"name": scenario, "days": days, "interval": interval}
    capacity = None
    if trace is not None and trace.with_suffix(".schema.yaml").is_file():
        frame, capacity, told, requests = _from_requests(trace, producer, step)
        described = ({**described, **told, "trace": f"{scenario}.csv (generated)"}
                     if scratch is not None else told)
    elif trace is not None:
        frame, capacity, described = _from_trace(trace, producer)
    else:
        frame = binding_shift(days=days, interval=interval)
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("bench resources", total=3 + len(POLICIES) + 2 * (requests is not None))
        result = bench_resources(frame, engine=engine, capacity=capacity,
                                 max_instances=None if trace is not None else MAX_INSTANCES,
                                 requests=requests,
                                 on_step=lambda name: bar.update(task, advance=1,
                                                                 description=name))
    doc = {"scenario": described,
           "policies": result.metrics, "leadtime_binding": result.binding,
           "wall_time_s": round(result.wall_time_s, 1)}
    if plot:
        from leadtime.settings import get_settings
        from simulation.resources import plot_resources

        name = f"resources_{Path(str(described.get('trace', scenario))).stem}.png"
        doc["plot"] = str(plot_resources(result, get_settings().prepare().plots_dir / name))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"bench resources: {result.producer_id}, "
                        f"{' + '.join(map(str, result.loads.columns))} "
                        "(a violation: any resource short)")
    for column in ("policy", "SLO viol %", "inst-hours", "x hpa", "misses", "p99 ms"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, m in result.metrics.items():
        table.add_row(name, f"{m['slo_violation_pct']:.2f}", f"{m['instance_hours']:.0f}",
                      f"{m['cost_vs_hpa']:.2f}", str(m["slo_misses"]),
                      f"{m['p99_latency_ms']:.0f}")
    console.print(table)
    shares = ", ".join(f"{r} {n}" for r, n in sorted(result.binding.items(), key=lambda x: -x[1]))
    console.print(f"leadtime's binding resource, passes: {shares}; "
                  f"{result.wall_time_s:.0f} s")
    if plot:
        console.print(f"plot: {doc['plot']}")


def _from_requests(trace: Path, producer: str | None, step):
    """A request trace's producer, its resources as what its requests hold (at ``step``), their
    capacities (leadtime.yaml's or derived) and its requests with Tier 2's predictions, fitted
    daily on the requests finished before each day, as the loop would hear them."""
    from rich.console import Console

    from leadtime.settings import get_settings
    from leadtime.validation import TraceError
    from leadtime_cli.common import fail
    from simulation.intent_replay import predict_requests
    from simulation.resources import request_resources

    err = Console(stderr=True)
    try:
        frame, _ = request_resources(str(trace), step.total_seconds(), producer)
        with err.status("Tier 2: point-in-time features and daily fits") as status:
            predicted = predict_requests(trace, get_settings(),
                                         progress=lambda m: status.update(f"Tier 2: {m}"))
    except TraceError as exc:
        fail(str(exc))
    pid = str(frame["producer_id"].iloc[0])
    capacity, source = _capacity(frame, pid)
    err.print(f"Tier 2: {predicted.fits} daily fit(s) in {predicted.seconds:.0f} s; capacity "
              f"per instance ({source}): " + ", ".join(f"{r} {c:.4g}"
                                                       for r, c in capacity.items()))
    return frame, capacity, {"trace": str(trace), "producer": pid, "capacity": capacity,
                             "capacity_from": source, "tier2_fits": predicted.fits}, \
        predicted.frame


def _capacity(frame, pid: str) -> tuple[dict[str, float], str]:
    """Each resource's capacity per instance: leadtime.yaml's for ``pid``, else derived."""
    from leadtime_cli.common import configured
    from simulation.config import P95_INSTANCES
    from simulation.resources import derived_capacity

    capacity = derived_capacity(frame)
    source = f"derived: its 95th percentile needs {P95_INSTANCES:g} instances"
    config = configured()
    if config is not None:
        try:
            declared = config.settings_of(pid).resources or {}
        except KeyError:
            declared = {}
        if declared:
            capacity = {name: r.capacity_per_instance for name, r in declared.items()}
            source = f"leadtime.yaml's resources for {pid}"
    return capacity, source


def _from_trace(trace: Path, producer: str | None):
    """The producer's resources from ``trace``, their capacities (leadtime.yaml's or derived)
    and the description the output carries; a bad trace or config is one error line."""
    from rich.console import Console

    from leadtime.validation import TraceError
    from leadtime_cli.common import fail
    from simulation.resources import read_resources

    try:
        frame, notes = read_resources(str(trace), producer)
    except TraceError as exc:
        fail(str(exc))
    pid = str(frame["producer_id"].iloc[0])
    capacity, source = _capacity(frame, pid)
    err = Console(stderr=True)
    for note in notes:
        err.print(f"[yellow]note:[/] {note}")
    err.print(f"capacity per instance ({source}): "
              + ", ".join(f"{r} {c:.4g}" for r, c in capacity.items()))
    return frame, capacity, {"trace": str(trace), "producer": pid, "capacity": capacity,
                             "capacity_from": source}


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("resources")(resources)
