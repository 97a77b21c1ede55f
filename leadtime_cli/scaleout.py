"""``leadtime bench scaleout``: Tier 1 fitting time over Dask at 1, 2, … workers, projected."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    @bench.command("scaleout")
    def scaleout(
        producers: int = typer.Option(100, min=2, max=2000, help="Producers (generated, 14 days at 5 min)."),
        workers: str = typer.Option("1,2", help="Worker counts of the local Dask cluster to try."),
        model: str = typer.Option("prophet", help="Model fitted per producer."),
        project_producers: int = typer.Option(10_000, help="Fleet size to project to."),
        project_workers: int = typer.Option(32, help="Cluster size to project to."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Time the daily fit of N producers on a local Dask cluster; project to a big cluster.

        The projection uses the worker-seconds per producer measured at the largest worker count
        (which already includes that count's parallel overhead) and assumes it holds at scale.
        """
        from leadtime.settings import get_settings

        settings = get_settings().prepare()
        from flows.scaleout import measure
        from simulation.generate import write_load_trace

        counts = sorted({int(w) for w in workers.split(",")})
        trace = write_load_trace(settings.home_dir / f"scaleout_{producers}.csv",
                                 producers=producers, days=14, interval="5min")
        runs = [measure(str(trace), w, model) for w in counts]
        first, last = runs[0], runs[-1]
        efficiency = (first["fit_seconds"] / last["fit_seconds"]) / (last["workers"] / first["workers"]) \
            if last["workers"] > first["workers"] else 1.0
        per_producer = last["seconds_per_producer"]
        projected = per_producer * project_producers / project_workers
        report = {"producers": producers, "model": model, "runs": runs,
                  "parallel_efficiency": efficiency,
                  "projection": {"producers": project_producers, "workers": project_workers,
                                 "seconds": projected}}
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        for r in runs:
            typer.echo(f"{r['workers']} worker(s): {r['producers']} producers fitted in "
                       f"{r['fit_seconds']:.1f} s ({r['seconds_per_producer']:.2f} worker-s per "
                       f"producer; {r['wall_seconds']:.1f} s with cluster start-up)")
        typer.echo(f"parallel efficiency {efficiency:.0%}; projected {project_producers:,} "
                   f"producers on {project_workers} workers: {projected / 60:.1f} min")
