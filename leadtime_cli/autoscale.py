"""``leadtime bench autoscale``: replay a trace under every scaling policy and compare them."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from leadtime.config import PRODUCER_DEFAULTS
from leadtime_cli.common import BudgetOption, ViolationCostOption, duration_s

POLICY_ORDER = ("static_peak", "hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa",
                "leadtime", "oracle")  # simulation.policies.POLICIES, without importing it
PEERS = ("hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa")  # what leadtime must beat
DEFAULT_MODEL = "champion"


# options shared by ``bench autoscale`` and ``bench frontier``
TraceOption = Annotated[
    Path, typer.Option("--trace", help="Load trace CSV, or request trace CSV with its .schema.yaml.")
]
SpinupOption = Annotated[str, typer.Option(
    help="Instance spin-up delay, e.g. 5m, 90s (default: leadtime.yaml's spinup_lead_time_s).")]
# the producers' default spin-up, as the CLI writes durations
DEFAULT_SPINUP = f"{PRODUCER_DEFAULTS.spinup_lead_time_s:g}s"
ModelOption = Annotated[
    str, typer.Option(help="Tier 1 refit daily: champion (the model baseline-daily's backtest "
                           "chooses, on the past only), or seasonal_naive, prophet, mstl.")
]
IntervalOption = Annotated[
    str | None, typer.Option(help="Sampling interval for request traces (default 5m).")
]
ReadingOption = Annotated[
    str | None, typer.Option(help="How a request trace becomes load: occupancy (each request "
                                  "holds capacity for its run time; the default when the "
                                  "schema gives run times) or binned (each request's demand "
                                  "in its arrival interval).")
]


def autoscale(
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="Load trace CSV, or request trace CSV with its .schema.yaml.")] = None,
    from_prometheus: Annotated[str | None, typer.Option(
        "--from-prometheus", metavar="SPAN",
        help="Read the load from Prometheus instead of --trace: the last SPAN (e.g. 35d) of "
             "each producer's load_query in leadtime.yaml, from LEADTIME_PROMETHEUS_URL.")] = None,
    producer: Annotated[
        str | None,
        typer.Option(help="Simulate only this producer (default: all, totals reported)."),
    ] = None,
    spinup: SpinupOption = DEFAULT_SPINUP,
    model: ModelOption = DEFAULT_MODEL,
    level: Annotated[
        int | None,
        typer.Option(
            help="Prediction interval (80 or 95) whose upper bound leadtime allocates for "
                 "(default: leadtime.yaml's engine.level, 80)."
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, help="leadtime's load-score gate on pre-allocation (default: the "
                                    "engine's, 0.6): higher saves instances, risks more."),
    ] = None,
    interval: IntervalOption = None,
    reading: ReadingOption = None,
    warmup: Annotated[
        str | None,
        typer.Option(help="Reactive warm-up, not scored (default 7d, less on short traces)."),
    ] = None,
    dry_run: Annotated[
        str | None,
        typer.Option(help="How much of the warm-up leadtime's loop watches in dry run before "
                          "it acts, learning its calibration (default 7d: all of it; 0: none)."),
    ] = None,
    capacity: Annotated[
        float | None,
        typer.Option(
            help="Load one instance serves per interval (default: p95 needs 9 at the target)."
        ),
    ] = None,
    min_instances: Annotated[int | None, typer.Option(help="Fewest instances (default 1).")] = None,
    max_instances: Annotated[
        int | None, typer.Option(help="Most instances (default: twice what the peak needs).")
    ] = None,
    target_utilisation: Annotated[
        float | None, typer.Option(help="Utilisation the policies aim at (default 0.7).")
    ] = None,
    max_utilisation: Annotated[
        float | None, typer.Option(help="Utilisation beyond which load queues (default 0.9).")
    ] = None,
    slo_ms: Annotated[float | None, typer.Option(help="p99 latency SLO (default 500 ms).")] = None,
    service_time_ms: Annotated[
        float | None, typer.Option(help="Mean service time of a request (default 100 ms).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes for the daily fits (default: settings.workers; 1 = serial)."),
    ] = None,
    violation_cost: ViolationCostOption = None,
    budget: BudgetOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of the table.")
    ] = False,
    plot: Annotated[
        bool, typer.Option("--plot/--no-plot", help="Save a PNG of load, capacity and violations.")
    ] = True,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write one self-contained interactive HTML page "
                                      "(charts, decision reasons, the table) to this path; it "
                                      "replays leadtime once more to record its reasons."),
    ] = None,
) -> None:
    """Replay a trace under every scaling policy and print their scores side by side."""
    from leadtime.validation import TraceError
    from leadtime_cli.common import fail

    if level is not None and level not in (80, 95):
        fail("--level must be 80 or 95")
    if (trace is None) == (from_prometheus is None):
        fail("give one of --trace and --from-prometheus")
    if from_prometheus is not None:
        from leadtime_cli.prometheus import history_trace

        trace = history_trace(from_prometheus)
    assert trace is not None
    overrides = {
        "capacity_per_instance": capacity,
        "min_instances": min_instances,
        "max_instances": max_instances,
        "target_utilisation": target_utilisation,
        "max_utilisation": max_utilisation,
        "slo_ms": slo_ms,
        "service_time_ms": service_time_ms,
        "warmup_s": duration_s(warmup, "--warmup"),
        "dry_run_s": duration_s(dry_run, "--dry-run"),
    }
    spinup_s = duration_s(spinup, "--spinup")
    interval_s = duration_s(interval, "--interval")

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from leadtime.settings import get_settings
    from leadtime_cli.common import engine_from_flags
    from simulation.bench import engine_spec, plot_bench, run_bench

    err = Console(stderr=True)
    began = time.perf_counter()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("reading and validating the trace", total=None)
            result = run_bench(
                trace,
                producer=producer,
                spinup_s=spinup_s,
                model=model,
                level=level,
                threshold=threshold,
                interval_s=interval_s, reading=reading,
                overrides=overrides,
                workers=workers if workers is not None else get_settings().workers,
                engine=engine_spec(level, threshold,
                                   base=engine_from_flags(violation_cost, budget)),
                on_total=lambda n: bar.update(task, total=n, description="simulating"),
                progress=lambda label: bar.update(task, advance=1, description=label),
            )
    except TraceError as exc:
        fail(str(exc))
    except ValueError as exc:  # a bad override (e.g. target above max utilisation)
        fail(str(exc))

    plot_path: Path | None = None
    if plot:
        name = f"autoscale_{trace.stem}_{producer or 'all'}.png".replace("/", "_")
        plot_path = plot_bench(result, get_settings().prepare().plots_dir / name)

    doc = result.to_json()
    doc["wall_time_s"] = round(time.perf_counter() - began, 2)
    if plot_path is not None:
        doc["plot"] = str(plot_path)
    if report is not None:
        doc["report"] = str(write_html_report(result, report, doc["wall_time_s"]))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    _print_table(doc)


def write_html_report(result, path: Path, wall_time_s: float | None = None) -> Path:
    """The ``--report`` page of a bench result (see :mod:`simulation.report`)."""
    import shlex

    from simulation.report import write_report

    argv = sys.argv[1:] if Path(sys.argv[0]).name == "leadtime" else None
    return write_report(result, path, wall_time_s=wall_time_s,
                        command=shlex.join(["leadtime", *argv]) if argv else None)


def _print_table(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from simulation.report import COLUMNS

    console = Console(width=None if sys.stdout.isatty() else 140)  # piped: do not cut columns
    who = doc["producer"] or f"all {doc['settings']['producers_simulated']} producers (totals)"
    table = Table(title=f"autoscale on {Path(doc['trace']).name}: {who}")
    table.add_column("policy", no_wrap=True)
    columns = COLUMNS
    for _, header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for policy in POLICY_ORDER:
        row = doc["policies"].get(policy)
        if row is None:
            continue
        cells = ["-" if row[key] is None else fmt.format(row[key]) for key, _, fmt in columns]
        table.add_row(policy, *cells)
    console.print(table)
    s = doc["settings"]
    console.print(
        f"model {s['model']} (upper {s['interval_level_pct']}%, gate {s['threshold']}) refit daily "
        f"({s['fits']} fits, {s['fit_seconds']} s), "
        f"spin-up {s['spinup']}, warm-up {s['warmup']} (not scored), SLO p99 <= {s['slo_ms']} ms, "
        f"target {s['target_utilisation']}, max {s['max_utilisation']} utilisation; "
        f"wall time {doc['wall_time_s']} s"
    )
    for note in doc.get("notes", []):
        console.print(f"note: {note}")
    if doc.get("plot"):
        console.print(f"plot: {doc['plot']}")
    if doc.get("report"):
        console.print(f"report: {doc['report']}")


HELP = (
    "Replay a trace against simulated producers under static_peak, hpa (Kubernetes), "
    "forecast_scale_out (AWS predictive scaling), crane_ehpa (Crane's Effective HPA), "
    "knative_kpa (Knative's KPA), leadtime and a perfect-knowledge oracle.\n\n"
    "Predictive policies refit their Tier 1 model daily on data before the simulated day; the "
    "warm-up days are reactive for every policy and not scored. Metrics: slo_violation_pct, "
    "underprovisioned_pct, instance_hours, cost_vs_oracle, p99_latency_ms, scaling_actions, "
    "slo_misses, slo_miss_minutes (definitions in simulation/metrics.py and the README)."
)


def frontier(
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="Load trace CSV, or request trace CSV with its .schema.yaml (default: "
                        "a --scenario).")] = None,
    scenario: Annotated[str | None, typer.Option(
        help="A generated scenario, when no --trace: a request scenario (consumer_jobs; "
        "consumer_jobs_direct without its queue; consumer_jobs_contract, the direct one in the "
        "input contract's keys alone) or one of bench suite's load scenarios (e.g. "
        "intermittent_bursts).")] = None,
    producer: Annotated[
        str | None,
        typer.Option(help="The producer to sweep (needed when the trace has several)."),
    ] = None,
    spinup: SpinupOption = DEFAULT_SPINUP,
    model: ModelOption = DEFAULT_MODEL,
    interval: IntervalOption = None,
    reading: ReadingOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    plot: Annotated[bool, typer.Option(help="Save a PNG of the frontiers.")] = True,
) -> None:
    """Sweep each policy's risk knob and compare violations at equal instance-hours, each
    policy read along its Pareto front (the fewest violations any of its settings gets at no
    more instance-hours). On a request trace with run times (replayed as occupancy) leadtime
    hears each request through Tier 2, fitted daily on the requests finished before each day,
    as in the loop, and the same loop without Tier 2 is swept beside it: Tier 2's worth at
    equal cost."""
    import tempfile

    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from leadtime.settings import get_settings
    from leadtime.validation import TraceError
    from leadtime_cli.common import configured_engine, fail, tier2_requests
    from simulation.bench import WITHOUT_TIER2, engine_spec, plot_frontier, violations_at_cost
    from simulation.bench import frontier as sweep
    from simulation.config import derive_config
    from simulation.request_scenarios import REQUEST_SCENARIOS
    from simulation.scenarios import SCENARIOS, write_scenario
    from simulation.traces import read_demand

    began = time.perf_counter()
    err = Console(stderr=True)
    if (trace is None) == (scenario is None):
        fail("give one of --trace or --scenario")
    if scenario is not None and scenario not in {**REQUEST_SCENARIOS, **SCENARIOS}:
        fail(f"unknown --scenario {scenario!r}: choose a request scenario "
             f"({', '.join(REQUEST_SCENARIOS)}) or a load scenario ({', '.join(SCENARIOS)})")
    scratch = tempfile.TemporaryDirectory(prefix="leadtime-frontier-")
    if trace is None and scenario in REQUEST_SCENARIOS:
        trace = REQUEST_SCENARIOS[scenario](Path(scratch.name))
    elif trace is None:
        trace = write_scenario(scenario, Path(scratch.name))
    requests = None
    try:
        demand = read_demand(trace, producer, duration_s(interval, "--interval"),
                             reading)
        if len(demand.series) != 1:
            fail(f"{trace.name} has {len(demand.series)} producers: choose one with --producer "
                 f"({', '.join(list(demand.series)[:5])}...)")
        name, series = next(iter(demand.series.items()))
        cfg = derive_config(series, pd.Timedelta(series.index.freq).total_seconds(),
                            spinup_s=duration_s(spinup, "--spinup"))
        requests = tier2_requests(trace, demand, err)
        with err.status("sweeping the policies' risk knobs") as status:
            rows = sweep(series, cfg, model, progress=lambda label: status.update(label),
                         engine=engine_spec(base=configured_engine()), requests=requests)
    except (TraceError, KeyError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    finally:
        scratch.cleanup()
    # every reading at equal cost is along a policy's Pareto front: the fewest violations any of
    # its settings gets at no more instance-hours
    lead = {f"{r['knob']}={r['value']:g}": r for r in rows if r["policy"] == "leadtime"}
    iso = {
        label: {p: violations_at_cost(rows, p, r["cost_vs_oracle"], front=True) for p in PEERS}
        for label, r in lead.items()
    }
    # the other way round: leadtime along its points at each reactive policy's default cost
    defaults = {r["policy"]: r for r in rows
                if r["knob"] == "target_utilisation" and r["value"] == cfg.target_utilisation}
    at_default = {p: {"cost_vs_oracle": r["cost_vs_oracle"], "violations_pct": r["slo_violation_pct"],
                      "leadtime": violations_at_cost(rows, "leadtime", r["cost_vs_oracle"],
                                                     front=True)}
                  for p, r in defaults.items()}
    # Tier 2's worth: leadtime with it at each point's cost of the same loop without it
    tier2 = {f"{r['knob']}={r['value']:g}": {
        "cost_vs_oracle": r["cost_vs_oracle"], "without_tier2_pct": r["slo_violation_pct"],
        "leadtime_pct": violations_at_cost(rows, "leadtime", r["cost_vs_oracle"], front=True)}
        for r in rows if r["policy"] == WITHOUT_TIER2}
    doc = {"trace": scenario or str(trace), "producer": name, "model": model,
           "tier2": requests is not None, "points": rows,
           "at_leadtime_cost": iso, "leadtime_at_default_cost": at_default,
           "tier2_at_equal_cost": tier2,
           "wall_time_s": round(time.perf_counter() - began, 2)}
    if plot:
        path = get_settings().prepare().plots_dir / f"frontier_{trace.stem}_{name}.png"
        doc["plot"] = str(plot_frontier(rows, f"{trace.name}: {name}", path))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=float))
        return
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"risk/cost frontier on {trace.name}: {name}")
    for header in ("policy", "knob", "SLO viol %", "vs oracle"):
        table.add_column(header, justify="left" if header in ("policy", "knob") else "right")
    for r in rows:
        table.add_row(r["policy"], f"{r['knob']}={r['value']}", f"{r['slo_violation_pct']:.2f}",
                      f"{r['cost_vs_oracle']:.3f}")
    console.print(table)
    for label, others in iso.items():
        r = lead[label]
        said = ", ".join(f"{p} {v:.2f}%" if v is not None else f"{p} (outside its range)"
                         for p, v in others.items())
        console.print(f"at leadtime {label}'s cost ({r['cost_vs_oracle']:.3f}x oracle): "
                      f"leadtime {r['slo_violation_pct']:.2f}% vs {said} violations")
    for policy, point in at_default.items():
        said = (f"{point['leadtime']:.2f}%" if point["leadtime"] is not None
                else "outside its measured range")
        console.print(f"at {policy}'s default cost (target {cfg.target_utilisation:g}, "
                      f"{point['cost_vs_oracle']:.3f}x oracle): {policy} "
                      f"{point['violations_pct']:.2f}% vs leadtime {said} (interpolated)")
    for label, point in tier2.items():
        with_it = point["leadtime_pct"]
        said = ("leadtime with Tier 2 outside its measured range" if with_it is None else
                f"with Tier 2 {with_it:.2f}% "
                f"({_fewer(with_it, point['without_tier2_pct'])})")
        console.print(f"Tier 2 at equal cost, leadtime without it at {label} "
                      f"({point['cost_vs_oracle']:.3f}x oracle): "
                      f"{point['without_tier2_pct']:.2f}%, {said}")
    console.print(f"wall time {doc['wall_time_s']} s")
    if doc.get("plot"):
        console.print(f"plot: {doc['plot']}")


def _fewer(with_it: float, without: float) -> str:
    """How many fewer violations ``with_it`` has than ``without``, in words.

    >>> _fewer(14.0, 21.0), _fewer(5.0, 5.0), _fewer(3.0, 0.0)
    ('33 % fewer', 'as many', '3.00 points more')
    """
    if abs(with_it - without) < 1e-9:
        return "as many"
    if with_it > without:
        return f"{with_it - without:.2f} points more"
    return f"{100 * (1 - with_it / without):.0f} % fewer"


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("autoscale", help=HELP)(autoscale)
    bench.command("frontier")(frontier)
