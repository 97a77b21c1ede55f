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
        help="A load trace with a 'resource' column (cpu, memory...) instead of the generated "
        "scenario; capacities per instance from leadtime.yaml's resources for the producer, "
        "else derived (its 95th percentile needs 9 instances).")] = None,
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
    alone, the multi-metric HPA and the HPA on CPU, on the same replay."""
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
    capacity, scenario = None, {"name": "binding_shift", "days": days, "interval": interval}
    if trace is not None:
        frame, capacity, scenario = _from_trace(trace, producer)
    else:
        frame = binding_shift(days=days, interval=interval)
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("bench resources", total=3 + len(POLICIES))
        result = bench_resources(frame, engine=engine, capacity=capacity,
                                 max_instances=None if trace is not None else MAX_INSTANCES,
                                 on_step=lambda name: bar.update(task, advance=1,
                                                                 description=name))
    doc = {"scenario": scenario,
           "policies": result.metrics, "leadtime_binding": result.binding,
           "wall_time_s": round(result.wall_time_s, 1)}
    if plot:
        from leadtime.settings import get_settings
        from simulation.resources import plot_resources

        name = f"resources_{Path(str(scenario.get('trace', 'binding_shift'))).stem}.png"
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


def _from_trace(trace: Path, producer: str | None):
    """The producer's resources from ``trace``, their capacities (leadtime.yaml's or derived)
    and the description the output carries; a bad trace or config is one error line."""
    from rich.console import Console

    from leadtime.validation import TraceError
    from leadtime_cli.common import configured, fail
    from simulation.config import P95_INSTANCES
    from simulation.resources import derived_capacity, read_resources

    try:
        frame, notes = read_resources(str(trace), producer)
    except TraceError as exc:
        fail(str(exc))
    pid = str(frame["producer_id"].iloc[0])
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
    err = Console(stderr=True)
    for note in notes:
        err.print(f"[yellow]note:[/] {note}")
    err.print(f"capacity per instance ({source}): "
              + ", ".join(f"{r} {c:.4g}" for r, c in capacity.items()))
    return frame, capacity, {"trace": str(trace), "producer": pid, "capacity": capacity,
                             "capacity_from": source}


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("resources")(resources)
