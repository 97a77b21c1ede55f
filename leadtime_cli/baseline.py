"""``leadtime bench forecast``: the Tier 1 backtest from the command line (and the score
table and progress bar ``leadtime demo`` shares)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer


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
    cutoffs: Annotated[int | None, typer.Option(help="Scored daily cut-offs (default: leadtime.yaml's tier1.backtest_cutoffs, 7).")] = None,
    history_days: Annotated[int | None, typer.Option(help="Days of history per fit (default: leadtime.yaml's tier1.history_s, 28 days).")] = None,
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
    config = config_from_settings(settings, cutoffs=cutoffs,
                                  history_s=None if history_days is None else history_days * 86400.0)
    from models.tier1.backtest import history_requirement, history_shortfall

    short = {p: why for p in chosen if (why := history_shortfall(loaded.series(p), config))}
    if len(short) == len(chosen):  # refused before anything is fitted, as baseline-daily does
        shown = "; ".join(list(short.values())[:3]) + ("; …" if len(short) > 3 else "")
        _fail(f"{trace.name}: too short: {shown}; {history_requirement(config)}")
    for why in short.values():
        console.print(f"[yellow]note:[/] left out {why}")
    chosen = [p for p in chosen if p not in short]
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
        "horizon": f"{int(config.horizon_s // 3600)}h",
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


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("forecast")(bench_forecast)
