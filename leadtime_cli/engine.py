"""``leadtime bench engine``: how long the pre-allocation engine takes to decide for a fleet."""

from __future__ import annotations

import json
import statistics
import time
from typing import Annotated

import typer

BUDGET_MS = 20.0  # target: one decision pass for 1,000 producers in under 20 ms


def synthetic_fleet(producers: int, pools: int):
    """Configs, tier predictions, states and pools for a fleet of ``producers`` in ``pools``."""
    from leadtime.config import producer_config
    from leadtime.engine import ProducerState, TierPrediction

    def tier(value: float) -> TierPrediction:
        return TierPrediction(value, 0.9 * value, 1.1 * value)

    ids = [f"p{i}" for i in range(producers)]
    configs = {pid: producer_config(pid, 10.0, max_instances=50) for pid in ids}
    predictions = {pid: {"tier1": tier(10 + i % 50), "tier2": None, "tier3": tier(12)}
                   for i, pid in enumerate(ids)}
    states = {pid: ProducerState(1 + i % 20, float(i % 40), 1e4, 0.0) for i, pid in enumerate(ids)}
    groups = {f"pool{k}": ids[k::pools] for k in range(pools)}
    return configs, predictions, states, groups


def bench_engine(
    producers: Annotated[int, typer.Option(help="Producers in the fleet.")] = 1000,
    pools: Annotated[int, typer.Option(help="Pools they are spread over.")] = 10,
    runs: Annotated[int, typer.Option(help="Timed runs (after one warm-up).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Time one full engine pass (allocate, threshold, redirect, selection) against the budget."""
    from leadtime.config import ENGINE_DEFAULTS
    from leadtime.engine import decide_all
    from loop.collector import FleetCollector

    fleet = synthetic_fleet(producers, pools)
    options = {"weights": ENGINE_DEFAULTS.weights, "threshold": ENGINE_DEFAULTS.threshold}
    collector = FleetCollector()  # the fleet's state frozen out of collections, as served
    decide_all(*fleet, **options)
    collector.after_pass()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        decide_all(*fleet, **options)
        times.append(1000 * (time.perf_counter() - began))
        collector.after_pass()  # the loop's, outside the engine's time (bench loop times it)
    collector.release()
    result = {"producers": producers, "pools": pools, "runs": runs,
              "best_ms": round(min(times), 2), "median_ms": round(statistics.median(times), 2),
              "p90_ms": round(sorted(times)[int(0.9 * (runs - 1))], 2),
              "budget_ms": BUDGET_MS * producers / 1000}
    if as_json:
        typer.echo(json.dumps(result))
        return
    verdict = "within" if result["median_ms"] <= result["budget_ms"] else "OVER"
    typer.echo(f"engine, {producers} producers in {pools} pools: best {result['best_ms']} ms, "
               f"median {result['median_ms']} ms, p90 {result['p90_ms']} ms "
               f"({verdict} the {result['budget_ms']:.0f} ms budget)")


def bench_loop(
    producers: Annotated[str, typer.Option(
        help="Fleet sizes, comma-separated (e.g. 1000,10000,50000).")] = "1000,10000",
    pools: Annotated[int, typer.Option(help="Pools the producers are dealt into.")] = 100,
    passes: Annotated[int, typer.Option(help="Timed passes per size, after the warm-up.")] = 10,
    interval: Annotated[float, typer.Option(
        "--interval-s", help="The loop's decision interval (seconds of its replay clock).")] = 300.0,
    steady_days: Annotated[float, typer.Option(
        help="Also trace one producer's state after this many days of the loop, by part: "
        "what each producer of a fleet holds once it has run that long (0: skip).")] = 3.0,
    warm_hours: Annotated[float, typer.Option(
        help="Run the loop at least this many hours of its clock before timing (0: until "
        "sizing calibrates, about four). A fleet's records fill for days (the sizing keeps two "
        "days of windows), and a pass costs more as they fill: 72 gives a pass at "
        "steady state.")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Time whole passes of the decision loop at fleet size: every tier source, sizing, the HPA
    twins, the decision log on disk and the /metrics export (evaluation/loop_bench.py)."""
    from rich.console import Console

    from evaluation.loop_bench import format_table, run_loop_bench
    from leadtime_cli.common import fail

    try:
        sizes = [int(x) for x in producers.split(",") if x.strip()]
    except ValueError:
        fail(f"--producers {producers!r}: give fleet sizes like 1000,10000")
    if not sizes or min(sizes) < 1:
        fail(f"--producers {producers!r}: give fleet sizes like 1000,10000")
    if not steady_days >= 0:
        fail(f"--steady-days {steady_days!r}: give a number of days, or 0 to skip")
    if not warm_hours >= 0:
        fail(f"--warm-hours {warm_hours!r}: give a number of hours, or 0 for the least")
    err = Console(stderr=True)
    with err.status("building the loop") as status:
        document = run_loop_bench(sizes, pools, passes, interval,
                                  progress=lambda m: status.update(m), steady_days=steady_days,
                                  warm_s=warm_hours * 3600.0)
    typer.echo(json.dumps(document, indent=2) if as_json else format_table(document))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    bench.command("engine")(bench_engine)
    bench.command("loop")(bench_loop)
