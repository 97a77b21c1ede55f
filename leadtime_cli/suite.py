"""``leadtime bench suite`` and ``leadtime bench ablation`` (see :mod:`simulation.suite`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from leadtime_cli.common import BudgetOption, ViolationCostOption, duration_s
from leadtime_cli.common import engine_from_flags as _engine

AlsoAtOption = Annotated[list[str] | None, typer.Option(
    "--also-at", help="Also every trace sampled more finely, resampled to this interval "
    "(repeatable, e.g. 60min): what holds at one sampling must hold at coarser ones too.")]
SHOWN = ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime", "oracle")
SHORT = {"hpa": "hpa", "forecast_scale_out": "fso", "crane_ehpa": "crane", "knative_kpa": "kpa",
         "leadtime": "leadtime", "oracle": "oracle"}

def suite(
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", help="Only these scenarios (repeatable; default: all).")] = None,
    real: Annotated[bool, typer.Option(
        help="Also the visible real traces under data_dir (NASA, each NAB producer).")] = True,
    violation_cost: ViolationCostOption = None,
    budget: BudgetOption = None,
    also_at: AlsoAtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Every policy on every scenario and real trace, at the defaults: one table, the totals
    (per sampling interval too), and the traces where leadtime loses."""
    from simulation.suite import run_suite

    engine = _engine(violation_cost, budget)
    intervals = _intervals(also_at)
    doc = _over_traces("suite", scenario, lambda data_dir, chosen, **bar: run_suite(
        data_dir, engine, chosen, real, also_at_s=intervals, **bar))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=float))
        return
    print_suite(doc)


def _intervals(also_at: list[str] | None) -> tuple[float, ...]:
    """``--also-at`` durations in seconds."""
    return tuple(duration_s(text, "--also-at", positive=True) for text in also_at or [])


def _over_traces(label: str, scenario: list[str] | None, job) -> dict:
    """Run ``job(data_dir, scenarios, progress=..., on_total=...)`` over the chosen scenarios
    (all by default; unknown names refused) with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from leadtime.settings import get_settings
    from leadtime_cli.common import fail
    from simulation.scenarios import SCENARIOS

    chosen = tuple(scenario) if scenario else tuple(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        fail(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=None)
        return job(get_settings().data_dir, chosen,
                   progress=lambda name: bar.update(task, advance=1, description=name),
                   on_total=lambda n: bar.update(task, total=n))


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
    if len(doc.get("by_interval", {})) > 1:
        per = Table(title="mean per sampling interval: SLO violations % (instance-hours / hpa)")
        per.add_column("interval")
        per.add_column("traces", justify="right")
        for policy in SHOWN:
            per.add_column(SHORT[policy], justify="right", no_wrap=True)
        for interval, part in doc["by_interval"].items():
            totals = part["totals"]
            per.add_row(interval, str(part["traces"]), *[
                f"{totals[p]['mean_slo_violation_pct']:.2f} "
                f"({totals[p]['mean_cost_vs_hpa']:.2f})" for p in SHOWN])
        console.print(per)
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
    scenario: Annotated[str, typer.Option(
        help="A suite scenario, or a generated request scenario (consumer_jobs; "
             "consumer_jobs_direct without its queue; consumer_jobs_contract, the direct one "
             "in the input contract's keys alone), when no --trace.")] = "periodic_drift",
    tier2_every: Annotated[str, typer.Option(
        "--tier2-every", help="How often Tier 2's intent model is refitted in the replay "
                              "(on the requests finished before), e.g. 1d, 7d.")] = "1d",
    violation_cost: ViolationCostOption = None,
    budget: BudgetOption = None,
    plot: Annotated[bool, typer.Option(
        help="Save a PNG of every variant and peer: violations against instance-hours.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """leadtime with parts switched off on one trace, the peers beside it: Tier 1 only, Tier 3
    only, Tier 1+3 at fixed weights, Tier 1+3 recalibrated (the default), and on a request trace
    with run times (replayed as occupancy) Tier 2 only and Tier 1+2+3 fixed and recalibrated,
    Tier 2 fitted daily on the requests finished before each day."""
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from leadtime.validation import TraceError
    from leadtime_cli.common import fail, tier2_requests
    from simulation.request_scenarios import REQUEST_SCENARIOS
    from simulation.suite import ablation as run_ablation
    from simulation.suite import plot_ablation

    err = Console(stderr=True)
    requests = None
    every_s = duration_s(tier2_every, "--tier2-every", positive=True)
    scratch = tempfile.TemporaryDirectory(prefix="leadtime-ablation-")
    label = str(trace) if trace is not None else f"scenario {scenario}"
    if trace is None and scenario in REQUEST_SCENARIOS:
        trace = REQUEST_SCENARIOS[scenario](Path(scratch.name))
    try:
        if trace is not None:
            from simulation.traces import read_demand

            demand = read_demand(trace, producer)
            if len(demand.series) != 1:
                fail(f"{trace.name} has {len(demand.series)} producers: choose one with "
                     f"--producer ({', '.join(list(demand.series)[:5])}...)")
            series = next(iter(demand.series.values()))
            requests = tier2_requests(trace, demand, err, every_s)
        else:
            from simulation.scenarios import scenario as make

            series = make(scenario)
        with err.status("replaying the peers and the variants") as status:
            rows = run_ablation(series, _engine(violation_cost, budget),
                                progress=lambda v: status.update(v), requests=requests)
    except (TraceError, KeyError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    finally:
        scratch.cleanup()
    plot_path = None
    if plot:
        from leadtime.settings import get_settings

        stem = trace.stem if trace is not None else scenario
        plot_path = plot_ablation(rows, f"bench ablation on {label}",
                                  get_settings().prepare().plots_dir / f"ablation_{stem}.png")
    if as_json:
        keys = ("name", "tiers", "slo_violation_pct", "instance_hours", "cost_vs_hpa",
                "sizing_sources")
        typer.echo(json.dumps({
            "trace": label,
            "variants": [{k: r[k] for k in keys} for r in rows if r["kind"] == "leadtime"],
            "policies": {r["name"]: {k: r[k] for k in keys[2:5]}
                         for r in rows if r["kind"] == "peer"},
            **({"plot": str(plot_path)} if plot_path else {})}, indent=2))
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
        table.add_row(r["name"], f"{r['slo_violation_pct']:.2f}", f"{r['cost_vs_hpa']:.2f}",
                      shares or "-")
    console = Console()
    console.print(table)
    if plot_path:
        console.print(f"plot: {plot_path}")


def defaults(
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", help="Only these scenarios (repeatable; default: all).")] = None,
    real: Annotated[bool, typer.Option(
        help="Also the visible real traces under data_dir (NASA, each NAB producer).")] = True,
    also_at: AlsoAtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Choose the engine's defaults by leave-one-trace-out: every alternative on every trace of
    the suite, each trace scored with the alternative chosen on all the others."""
    from rich.console import Console
    from rich.table import Table

    from simulation.defaults import run_defaults

    intervals = _intervals(also_at)
    doc = _over_traces("defaults", scenario, lambda data_dir, chosen, **bar: run_defaults(
        data_dir, scenarios=chosen, real=real, also_at_s=intervals, **bar))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=float))
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="bench defaults: each alternative on every trace (in sample)")
    for header in ("alternative", "traces meeting the bar", "mean SLO viol %",
                   "mean inst-hours / hpa"):
        table.add_column(header, justify="left" if header == "alternative" else "right")
    total = len(doc["traces"])
    for a in doc["alternatives"]:
        table.add_row(a["alternative"], f"{a['traces_met']} / {total}",
                      f"{a['mean_slo_violation_pct']:.2f}", f"{a['mean_cost_vs_hpa']:.2f}")
    console.print(table)
    held = Table(title="leave one trace out: the alternative chosen on the others, scored here")
    for header in ("trace", "chosen", "SLO viol %", "hpa viol %", "inst-hours / hpa", "meets"):
        held.add_column(header, justify="left" if header in ("trace", "chosen") else "right")
    for r in doc["leave_one_trace_out"]:
        held.add_row(r["trace"], r["chosen"], f"{r['slo_violation_pct']:.2f}",
                     f"{r['hpa_slo_violation_pct']:.2f}", f"{r['cost_vs_hpa']:.2f}",
                     "yes" if r["meets"] else "no")
    console.print(held)
    console.print(f"held out: the chosen default meets the bar on {doc['held_out_met']} of "
                  f"{total} traces; wall time {doc['wall_time_s']} s")
    console.print("the bar: instance-hours <= 1.05x the HPA's; violations below the HPA's (at "
                  "most +0.2 points where the HPA has under 0.5 %); no peer with fewer "
                  "violations at no more instance-hours")
    for note in doc["notes"]:
        console.print(f"note: {note}")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("suite")(suite)
    bench.command("ablation")(ablation)
    bench.command("defaults")(defaults)
