"""``leadtime bench resources``: a producer sized on several resources (see
:mod:`simulation.resources`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from leadtime_cli.suite import BudgetOption, ViolationCostOption, _engine


def resources(
    days: Annotated[int, typer.Option(min=8, max=120, help="Days of the generated scenario.")] = 28,
    interval: Annotated[str, typer.Option(help="Its sampling interval, e.g. 5min, 1min.")] = "5min",
    violation_cost: ViolationCostOption = None,
    budget: BudgetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The binding resource changes over the day (CPU by day, memory in a nightly batch,
    network in a weekly backup): leadtime sized on every resource against leadtime on CPU
    alone, the multi-metric HPA and the HPA on CPU, on the same replay."""
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from leadtime_cli.common import fail
    from simulation.resources import POLICIES, bench_resources, binding_shift

    try:
        step = pd.Timedelta(interval)
    except ValueError:
        fail(f"--interval {interval!r}: give a duration such as 5min or 1min")
    if not pd.Timedelta("1min") <= step <= pd.Timedelta("1h"):
        fail(f"--interval {interval!r}: between 1min and 1h")
    engine = _engine(violation_cost, budget)
    frame = binding_shift(days=days, interval=interval)
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("bench resources", total=3 + len(POLICIES))
        result = bench_resources(frame, engine=engine, on_step=lambda name: bar.update(
            task, advance=1, description=name))
    doc = {"scenario": {"name": "binding_shift", "days": days, "interval": interval},
           "policies": result.metrics, "leadtime_binding": result.binding,
           "wall_time_s": round(result.wall_time_s, 1)}
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="bench resources: one producer, cpu + memory + network "
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


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("resources")(resources)
