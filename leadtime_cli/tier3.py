"""CLI of Tier 3: bench anomaly, bench similarity, tier3 status / checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from leadtime.validation import TraceError


def register(app: typer.Typer, bench: typer.Typer) -> None:
    from leadtime_cli.common import fail

    tier3 = typer.Typer(help="Tier 3: consumer-experience similarity and anomaly risk.",
                        no_args_is_help=True)
    app.add_typer(tier3, name="tier3")

    @bench.command("anomaly")
    def bench_anomaly(
        set_dir: Path = typer.Option(..., "--set", help="Anomaly set folder (with windows.json)."),
        as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
        reference: Path | None = typer.Option(
            None, "--reference",
            help="NAB's published outputs (<detector>/<category>/<detector>_<file>.csv) scored "
                 "beneath ours; default: <data_dir>/anomaly/nab-reference."),
        leave_one_out: bool = typer.Option(
            False, "--loco",
            help="Also leave one category out: thresholds chosen on the other categories only, "
                 "figures on the held-out one, each category in turn (JSON key 'loco')."),
    ) -> None:
        """Window F1, delay, false alarms and NAB scores: leadtime vs z-score vs HST, and NAB's own.

        NAB scores (standard, low-FP, low-FN profiles) use NAB's threshold optimisation over the
        set; beneath them, NAB's published numenta, windowedGaussian and null on the same files.
        With --loco, the same detectors with every threshold chosen on the other categories only.
        """
        from evaluation.anomaly_bench import format_table, run_anomaly_bench

        try:
            document = run_anomaly_bench(set_dir, reference=reference, leave_one_out=leave_one_out)
        except (TraceError, ValueError) as exc:
            fail(str(exc))
        typer.echo(json.dumps(document, indent=2) if as_json else format_table(document))

    @bench.command("similarity")
    def bench_similarity(
        requests: Path | None = typer.Option(
            None, "--requests", help="Request trace for part (a); default: the shared Alibaba trace."),
        seed: int = typer.Option(7, help="Seed of the generated degradation scenario."),
        seeds: str | None = typer.Option(
            None, "--seeds", help="Run only part (b) over several seeds, e.g. '4-10' or '1,2,3': "
                                  "per seed and mean/median."),
        as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    ) -> None:
        """(a) online (consumer, producer) demand MAE; (b) early warning on a degradation scenario."""
        from evaluation.similarity_bench import format_table, run_similarity_bench
        from leadtime.settings import get_settings
        from models.tier3.degradation import ScenarioParams

        if seeds is not None:
            from evaluation.similarity_bench import degradation_seeds, format_seeds_table

            try:
                chosen = _parse_seeds(seeds)
            except ValueError as exc:
                fail(f"--seeds {seeds!r}: {exc}")
            document = degradation_seeds(chosen, workers=min(2, len(chosen)))
            typer.echo(json.dumps(document, indent=2, default=str) if as_json
                       else format_seeds_table(document))
            return
        path = requests or get_settings().data_dir / "requests" / "alibaba_genai_lora.csv"
        try:
            document = run_similarity_bench(path, ScenarioParams(seed=seed))
        except (TraceError, ValueError) as exc:
            fail(str(exc))
        typer.echo(json.dumps(document, indent=2, default=str) if as_json else format_table(document))

    def _parse_seeds(text: str) -> list[int]:
        out: list[int] = []
        for part in text.split(","):
            a, _, b = part.strip().partition("-")
            out.extend(range(int(a), int(b) + 1) if b else [int(a)])
        if not out:
            raise ValueError("no seed")
        return out

    @tier3.command("status")
    def status() -> None:
        """Restore the last checkpoint and say how many events a restart now would lose."""
        from leadtime.settings import get_settings
        from models.tier3.service import Tier3Service

        service, info = Tier3Service.restore(get_settings())
        typer.echo(info.message())
        typer.echo(f"producers: {', '.join(service.state.producers()) or '-'}")
