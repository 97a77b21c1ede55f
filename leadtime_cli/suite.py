"""``leadtime bench suite`` and ``leadtime bench ablation`` (see :mod:`simulation.suite`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

SHOWN = ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime", "oracle")
SHORT = {"hpa": "hpa", "forecast_scale_out": "fso", "crane_ehpa": "crane", "knative_kpa": "kpa",
         "leadtime": "leadtime", "oracle": "oracle"}

ViolationCostOption = Annotated[float | None, typer.Option(
    "--violation-cost", min=0.001,
    help="Price of a violating window in instance-intervals (default: leadtime.yaml's).")]


def _engine(violation_cost: float | None):
    from simulation.bench import engine_spec

    return engine_spec(violation_cost=violation_cost)


def suite(
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", help="Only these scenarios (repeatable; default: all).")] = None,
    real: Annotated[bool, typer.Option(
        help="Also the visible real traces under data_dir (NASA, each NAB producer).")] = True,
    violation_cost: ViolationCostOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Every policy on every scenario and real trace, at the defaults: one table, the totals,
    and the traces where leadtime loses."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from leadtime.settings import get_settings
    from leadtime_cli.common import fail
    from simulation.scenarios import SCENARIOS
    from simulation.suite import run_suite

    chosen = tuple(scenario) if scenario else tuple(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        fail(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("suite", total=None)
        doc = run_suite(get_settings().data_dir, _engine(violation_cost), chosen, real,
                        progress=lambda name: bar.update(task, advance=1, description=name),
                        on_total=lambda n: bar.update(task, total=n))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=float))
        return
    print_suite(doc)


def print_suite(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="bench suite: SLO violations % (instance-hours / hpa), defaults only")
    table.add_column("trace", no_wrap=True)
    for policy in SHOWN:
        table.add_column(SHORT[policy], justify="right", no_wrap=True)
    table.add_column("hpa @ lt cost", justify="right")
    table.add_column("leadtime loses to")
    for row in doc["traces"]:
        cells = [f"{row['policies'][p]['slo_violation_pct']:.2f} "
                 f"({row['policies'][p]['cost_vs_hpa']:.2f})" for p in SHOWN]
        at = row["reactive_at_leadtime_cost"]["hpa"]
        table.add_row(row["trace"], *cells, "-" if at is None else f"{at:.2f}",
                      ", ".join(row["leadtime_loses_to"]) or "-")
    totals = doc["totals"]
    table.add_row("[bold]mean[/]", *[f"{totals[p]['mean_slo_violation_pct']:.2f} "
                                     f"({totals[p]['mean_cost_vs_hpa']:.2f})" for p in SHOWN],
                  "", "")
    console.print(table)
    losses = doc["losses"]
    console.print(f"leadtime loses on {len(losses)} of {len(doc['traces'])} traces"
                  + (f": {', '.join(losses)}" if losses else "")
                  + f"; wall time {doc['wall_time_s']} s")
    console.print("hpa @ lt cost: the HPA's violations at leadtime's instance-hours, interpolated "
                  "along its target-utilisation frontier (0.5-0.9; '-' outside it)")
    for note in doc["notes"]:
        console.print(f"note: {note}")


def ablation(
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="Load trace CSV (default: a --scenario).")] = None,
    producer: Annotated[str | None, typer.Option(
        help="The producer (needed when the trace has several).")] = None,
    scenario: Annotated[str, typer.Option(help="A suite scenario, when no --trace.")] =
        "periodic_drift",
    violation_cost: ViolationCostOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """leadtime with parts switched off on one trace: Tier 1 only, Tier 3 only, Tier 1+3 at
    fixed weights, Tier 1+3 recalibrated (the default)."""
    from rich.console import Console
    from rich.table import Table

    from leadtime.validation import TraceError
    from leadtime_cli.common import fail
    from simulation.suite import ablation as run_ablation

    try:
        if trace is not None:
            from simulation.traces import read_demand

            demand = read_demand(trace, producer)
            if len(demand.series) != 1:
                fail(f"{trace.name} has {len(demand.series)} producers: choose one with "
                     f"--producer ({', '.join(list(demand.series)[:5])}...)")
            series = next(iter(demand.series.values()))
        else:
            from simulation.scenarios import scenario as make

            series = make(scenario)
        err = Console(stderr=True)
        with err.status("replaying the variants") as status:
            rows = run_ablation(series, _engine(violation_cost),
                                progress=lambda v: status.update(v))
    except (TraceError, KeyError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    label = str(trace) if trace is not None else f"scenario {scenario}"
    if as_json:
        typer.echo(json.dumps({"trace": label, "variants": rows}, indent=2))
        return
    table = Table(title=f"bench ablation on {label}")
    for header in ("variant", "SLO viol %", "inst-hours / hpa", "sized by (share of passes)"):
        table.add_column(header, justify="left" if header.startswith(("variant", "sized"))
                         else "right")
    for r in rows:
        sources = r.get("sizing_sources", {})
        total = sum(sources.values()) or 1
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in
                           sorted(sources.items(), key=lambda kv: -kv[1]))
        table.add_row(r["variant"], f"{r['slo_violation_pct']:.2f}", f"{r['cost_vs_hpa']:.2f}",
                      shares or "-")
    Console().print(table)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("suite")(suite)
    bench.command("ablation")(ablation)
