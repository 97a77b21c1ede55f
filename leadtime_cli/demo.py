"""``leadtime demo``: the product end to end on embedded defaults, in a few minutes.

1. The Prefect flow ``baseline-daily`` fits Tier 1 on the demo trace and registers the champion
   in MLflow (``.leadtime/``).
2. The last ``--days`` of the trace are replayed through the decision loop beside the HPA,
   predictive scale-out, Crane EHPA and Knative KPA (:func:`simulation.bench.run_bench`); the
   days before are every policy's reactive warm-up and the history of the daily refits.
3. It prints the side-by-side table and writes the self-contained HTML report
   (:mod:`simulation.report`).
4. It ends with the next steps: the report, ``leadtime serve --as-of`` the end of the trace (the
   champion's own moment, so the API gives real decisions with Tier 1), the MLflow and Prefect
   UIs on the same store.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from leadtime_cli.prometheus import FROM_PROMETHEUS_HELP

DEMO_TRACE = Path("load") / "nasa_http_1995.csv"
DEMO_DAYS = 7  # days replayed and scored: a week fits the 4-minute budget on 2 cores


def demo_trace(data_dir: Path, state_dir: Path) -> tuple[Path, str | None]:
    """The NASA trace when the shared data is present, else a generated one (with a notice)."""
    real = data_dir / DEMO_TRACE
    if real.is_file():
        return real, None
    from simulation.generate import write_load_trace

    path = write_load_trace(state_dir / "generated_load.csv")
    return path, (f"{real} is absent: using a generated trace ({path}) with daily and weekly "
                  "cycles, trend and noise instead.")


def replay_window(demand, days: int):
    """(warm-up, end of the trace, its producers) for replaying the last ``days`` whole days of
    ``demand`` (:func:`simulation.traces.read_demand`)."""
    import pandas as pd

    trace = demand.path
    spans, ends = [], []
    for series in demand.series.values():
        step = pd.Timedelta(series.index.freq or series.index[1] - series.index[0])
        spans.append(series.index[-1] - series.index[0] + step)
        ends.append(series.index[-1] + step)
    whole = int(min(spans) / pd.Timedelta(days=1))
    if whole - days < 1:
        raise ValueError(f"--days {days}: {trace.name} spans {whole} whole day(s); the replay "
                         f"needs at least one day of warm-up before the days it scores "
                         f"(choose --days {max(1, whole - 1)} or fewer)")
    return pd.Timedelta(days=whole - days), max(ends), list(demand.series)


def why_these_models(choices: dict[str, str], basis: dict[str, dict[str, float]],
                     shown: int = 3) -> str:
    """One line on how the production models were chosen, with the figures that chose them:
    the table scores the later cut-offs only, the choice ranks every cut-off.

    >>> why_these_models({"web": "prophet"}, {"web": {"prophet": 0.31, "mstl": 0.33}})
    'chosen by the lowest mean WIS over every backtest cut-off, the warm-up ones the table does not score included: web prophet 0.310 (mstl 0.330)'
    """
    parts = []
    for producer, model in list(choices.items())[:shown]:
        scores = basis.get(producer, {})
        others = ", ".join(f"{m} {w:.3f}" for m, w in sorted(scores.items(), key=lambda kv: kv[1])
                           if m != model)
        parts.append(f"{producer} {model} {scores.get(model, float('nan')):.3f}"
                     + (f" ({others})" if others else ""))
    more = f"; {len(choices) - shown} more" if len(choices) > shown else ""
    return ("chosen by the lowest mean WIS over every backtest cut-off, the warm-up ones the "
            f"table does not score included: {'; '.join(parts)}{more}")


def _env_prefix(settings) -> str:
    """``LEADTIME_HOME=...`` when the state folder is not the default one (for printed commands)."""
    return "" if settings.home == Path(".leadtime") else f"LEADTIME_HOME={settings.home_dir} "


def uv_command() -> str:
    """The ``uv`` a printed command can run: the one on PATH, else the one ``make`` installed
    into ``.tools/bin`` (which is not on PATH), else plain ``uv``."""
    import shutil

    if shutil.which("uv"):
        return "uv"
    local = Path(".tools/bin/uv")
    return str(local) if local.exists() else "uv"


def mlflow_ui_command(settings) -> str:
    """How to see this store's runs and registry in the MLflow UI."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return (f"{uv_command()} run mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
            "   # then http://127.0.0.1:5000")


def prefect_ui_command(settings) -> str:
    """How to see this store's flow runs in the Prefect UI."""
    if settings.prefect_api_url:
        return f"open {settings.prefect_api_url.removesuffix('/').removesuffix('/api')}"
    home = os.environ.get("PREFECT_HOME", str(settings.home_dir / "prefect"))
    db = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL",
                        f"sqlite+aiosqlite:///{settings.home_dir / 'prefect' / 'prefect.db'}")
    return (f"PREFECT_HOME={home} PREFECT_API_DATABASE_CONNECTION_URL={db} "
            f"PREFECT_SERVER_ANALYTICS_ENABLED=false {uv_command()} run prefect server start "
            "--host 127.0.0.1 --port 4200   # then http://127.0.0.1:4200")


def _configured(settings, producers: list[str]) -> str | None:
    """The first of ``producers`` that leadtime.yaml declares (the API decides only for those)."""
    from leadtime.config import ConfigError

    try:
        declared = settings.leadtime.producers() if settings.leadtime is not None else {}
    except ConfigError:
        return None
    return next((p for p in producers if p in declared), None)


def demo(
    ctx: typer.Context,
    trace: Annotated[Path | None, typer.Option(help="Load trace (default: the NASA 1995 trace).")] = None,
    cutoffs: Annotated[int | None, typer.Option(help="Scored daily cut-offs (default: leadtime.yaml's tier1.backtest_cutoffs, 7).")] = None,
    days: Annotated[int, typer.Option(min=1, help="Last whole days of the trace replayed and "
                                                  "scored against the peers.")] = DEMO_DAYS,
    from_prometheus: Annotated[str | None, typer.Option(
        "--from-prometheus", metavar="SPAN", help=FROM_PROMETHEUS_HELP)] = None,
) -> None:
    """Fit and register Tier 1, replay the trace's last days against the peers, write the report."""
    from rich.console import Console

    from leadtime.settings import get_settings

    settings = get_settings().prepare()  # before Prefect is imported: it reads the environment
    from leadtime.validation import TraceError
    from leadtime_cli.common import fail, quiet_refusals, verbose

    began = time.perf_counter()
    console = Console()
    if from_prometheus is not None:
        from leadtime_cli.prometheus import history_trace

        trace = history_trace(from_prometheus)
    if trace is None:
        trace, notice = demo_trace(settings.data_dir, settings.home_dir)
        if notice:
            console.print(f"[yellow]notice:[/] {notice}")
    from simulation.traces import read_demand

    try:  # a missing or malformed trace is refused before any service starts
        demand = read_demand(trace)
    except TraceError as exc:
        fail(str(exc))
    import flows.baseline as baseline_flow
    from leadtime_cli.autoscale import _print_table
    from leadtime_cli.baseline import _progress, score_table

    console.print(f"[bold]leadtime demo[/]: Prefect flow [cyan]baseline-daily[/] on {trace}\n"
                  f"state folder: {settings.home_dir}  (MLflow: {settings.tracking_uri})")
    with _progress() as progress:
        jobs: dict[str, int] = {}

        def hook(stage: str, done: int, total: int) -> None:
            if stage not in jobs:
                jobs[stage] = progress.add_task(f"{stage} producers", total=total)
            progress.update(jobs[stage], completed=done)

        baseline_flow.progress_hook = hook
        try:
            with quiet_refusals(show=verbose(ctx)):
                result = baseline_flow.baseline_daily(str(trace), cutoffs=cutoffs)
        except ValueError as exc:  # TraceError and the flow's own refusals (too short, ...);
            # Prefect logged the traceback when --verbose
            fail(str(exc))
        finally:
            baseline_flow.progress_hook = None
    console.print(score_table(result["summary"], f"backtest of {result['producers']} producer(s)"))
    registration = result["registration"]
    verdict = "promoted to @champion" if registration["promoted"] else "tagged @challenger"
    console.print(f"registered [bold]{settings.baseline_model_name}[/] version "
                  f"{registration['version']}: {verdict} ({registration['reason']})")
    console.print(f"per-producer models: {result['choices']}")
    console.print(why_these_models(result["choices"], result.get("choice_wis", {})))
    console.print(f"forecast plot: {result['plot']}\n")

    from simulation.bench import run_bench
    from simulation.report import write_report

    try:
        warmup, end, producers = replay_window(demand, days)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"[bold]replay[/]: the last {days} day(s) of {trace.name} through the decision "
                  f"loop and its peers (the {warmup.days} days before: warm-up and refit history)")
    bench_began = time.perf_counter()
    with _progress() as progress:
        job = progress.add_task("reading the trace", total=None)
        try:
            bench = run_bench(trace, overrides={"warmup_s": warmup.total_seconds()}, workers=settings.workers,
                              on_total=lambda n: progress.update(job, total=n,
                                                                 description="replaying"),
                              progress=lambda label: progress.update(job, advance=1,
                                                                     description=label))
        except (TraceError, ValueError) as exc:
            fail(str(exc))
    doc = bench.to_json()
    doc["wall_time_s"] = round(time.perf_counter() - bench_began, 2)
    _print_table(doc)
    report = write_report(
        bench, settings.home_dir / "reports" / f"demo_{trace.stem}.html",
        command=f"leadtime demo --trace {trace} --days {days}", wall_time_s=doc["wall_time_s"])

    prefix = _env_prefix(settings)
    as_of = f"{end:%Y-%m-%dT%H:%M:%S}"
    producer = _configured(settings, producers)
    say = typer.echo  # unwrapped: the commands must copy and paste whole
    console.print(f"\n[bold]next steps[/] (the demo took {time.perf_counter() - began:.0f} s)")
    say(f"1. open the report (one file, no network needed):\n   {report.as_uri()}")
    say("2. real decisions from the API, as of the end of the trace (the champion's own "
        "moment; by default the API runs on the wall clock):\n"
        f"   {prefix}{uv_command()} run leadtime serve --as-of {as_of}")
    if producer is not None:
        say(f"   curl -s http://127.0.0.1:8000/v1/producers/{producer}"
            "   # its decision, each tier's answer and weight")
    else:
        say(f"   (declare {producers[0]} in {settings.config_path} for the API to decide for it)")
    say("3. the MLflow UI (runs, the registered champion and its plots):\n"
        f"   {mlflow_ui_command(settings)}\n"
        "   the Prefect UI (the baseline-daily flow run and its tasks):\n"
        f"   {prefect_ui_command(settings)}")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.command("demo")(demo)
