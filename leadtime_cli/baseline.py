"""``leadtime demo`` and ``leadtime bench forecast``: Tier 1 from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

DEMO_TRACE = Path("load") / "nasa_http_1995.csv"


def _fail(message: str) -> None:
    from leadtime_cli.common import fail

    fail(message)


def _progress():
    """A progress bar on stderr, so that ``--json`` output on stdout stays one clean document."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True))


def score_table(summary: dict[str, dict[str, float]], title: str):
    """A rich table of the backtest summary, one row per model, champion last."""
    from rich.table import Table

    table = Table(title=title)
    columns = [("model", None), ("WIS", "wis"), ("MASE", "mase"), ("sMAPE %", "smape"),
               ("cov 80%", "coverage_80"), ("cov 95%", "coverage_95"),
               ("width 80%", "width_80"), ("fit s", "fit_seconds")]
    for header, _ in columns:
        is_model = header == "model"
        table.add_column(header, justify="left" if is_model else "right", no_wrap=is_model)
    for model, metrics in summary.items():
        cells = [model] + [
            f"{metrics[key]:.1%}" if key.startswith("coverage")
            else f"{metrics[key]:.1f}" if key == "smape" else f"{metrics[key]:.3f}"
            for _, key in columns[1:]
        ]
        table.add_row(*cells, style="bold" if model == "champion" else None)
    return table


def bench_forecast(
    trace: Annotated[Path, typer.Option("--trace", help="Load-trace CSV (timestamp, producer_id, value).")],
    producer: Annotated[list[str] | None, typer.Option("--producer", help="Only this producer (repeatable).")] = None,
    cutoffs: Annotated[int | None, typer.Option(help="Scored daily cut-offs (default from settings: 7).")] = None,
    history_days: Annotated[int | None, typer.Option(help="Days of history per fit (default 28).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel worker processes (default: CPU count).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
    strict: Annotated[bool, typer.Option(help="Refuse any irregular timestamp instead of repairing a few.")] = False,
) -> None:
    """Rolling-origin backtest of every Tier 1 model (next 24 h from each daily cut-off)."""
    from rich.console import Console

    from leadtime.data import TraceError, read_load_trace
    from leadtime.settings import get_settings
    from models.tier1.backtest import summarise
    from models.tier1.pipeline import backtest_all, config_from_settings

    settings = get_settings()
    console = Console(stderr=True)
    try:
        loaded = read_load_trace(trace, max_irregular_share=0.0 if strict else 0.005)
    except TraceError as exc:
        _fail(str(exc))
    for note in loaded.repairs:
        console.print(f"[yellow]note:[/] {note}")
    chosen = producer or loaded.producers
    unknown = sorted(set(chosen) - set(loaded.producers))
    if unknown:
        _fail(f"{trace.name}: no producer(s) {', '.join(unknown)}; it has {', '.join(loaded.producers[:10])}")
    config = config_from_settings(settings, cutoffs=cutoffs, history_days=history_days)
    started = time.perf_counter()
    with _progress() as progress:
        job = progress.add_task("backtesting producers", total=len(chosen))
        try:
            frame = backtest_all((loaded.series(p) for p in chosen), config,
                                 workers=workers or settings.workers,
                                 on_done=lambda: progress.advance(job))
        except ValueError as exc:
            _fail(f"{trace.name}: {exc}")
    elapsed = time.perf_counter() - started
    summary = summarise(frame)
    fits = frame[frame["model"] != "champion"]
    document = {
        "trace": str(trace),
        "producer": chosen[0] if len(chosen) == 1 else None,
        "producers": len(chosen),
        "horizon": f"{int(config.horizon.total_seconds() // 3600)}h",
        "cutoffs": config.cutoffs,
        "models": summary,
        "champion_choices": frame[frame["model"] == "champion"]["chosen"].value_counts().to_dict(),
        "seconds": round(elapsed, 1),
        "backtest_seconds_per_producer": round(
            float(fits.groupby("producer_id")["fit_seconds"].sum().mean()), 2),
    }
    if as_json:
        typer.echo(json.dumps(document, default=float))
        return
    out = Console()
    out.print(score_table(summary, f"{trace.name}: {len(chosen)} producer(s), {config.cutoffs} "
                                   f"cut-offs, next {document['horizon']}"))
    out.print(f"champion choices (producer-days): {document['champion_choices']}; {elapsed:.0f} s "
              f"in all; {document['backtest_seconds_per_producer']} s of backtest fits per producer; "
              "'fit s' is one fit (a daily refit costs that much per producer)")


def demo_trace(data_dir: Path, state_dir: Path) -> tuple[Path, str | None]:
    """The NASA trace when the shared data is present, else a generated one (with a notice)."""
    real = data_dir / DEMO_TRACE
    if real.is_file():
        return real, None
    from simulation.generate import write_load_trace

    path = write_load_trace(state_dir / "generated_load.csv")
    return path, (f"{real} is absent: using a generated trace ({path}) with daily and weekly "
                  "cycles, trend and noise instead.")


def demo(
    ctx: typer.Context,
    trace: Annotated[Path | None, typer.Option(help="Load trace (default: the NASA 1995 trace).")] = None,
    cutoffs: Annotated[int | None, typer.Option(help="Scored daily cut-offs (default 7).")] = None,
) -> None:
    """Run the baseline-daily flow end to end on embedded defaults and show the results."""
    from rich.console import Console

    from leadtime.settings import get_settings

    settings = get_settings().prepare()  # before Prefect is imported: it reads the environment
    import flows.baseline as baseline_flow
    from leadtime_cli.common import quiet_refusals, verbose

    console = Console()
    if trace is None:
        trace, notice = demo_trace(settings.data_dir, settings.home_dir)
        if notice:
            console.print(f"[yellow]notice:[/] {notice}")
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
            _fail(str(exc))
        finally:
            baseline_flow.progress_hook = None
    console.print(score_table(result["summary"], f"backtest of {result['producers']} producer(s)"))
    registration = result["registration"]
    verdict = "promoted to @champion" if registration["promoted"] else "tagged @challenger"
    console.print(f"registered [bold]{settings.baseline_model_name}[/] version "
                  f"{registration['version']}: {verdict} ({registration['reason']})")
    console.print(f"per-producer models: {result['choices']}")
    console.print(f"forecast plot: {result['plot']}")
    console.print(f"open the MLflow UI on the same store:\n  uv run mlflow ui --backend-store-uri "
                  f"{settings.tracking_uri} --host 127.0.0.1 --port 5000")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.command("demo")(demo)
    bench.command("forecast")(bench_forecast)
