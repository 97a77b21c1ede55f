"""CLI of Tier 2 (intent): bench intent, bench serve, intent retrain / serve, features materialize."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leadtime.validation import TraceError

REQUESTS_HELP = "Request trace CSV (with its *.schema.yaml beside it)."
RequestsOption = Annotated[Path, typer.Option("--requests", help=REQUESTS_HELP)]


def register(app: typer.Typer, bench: typer.Typer) -> None:
    from leadtime_cli.common import fail

    intent = typer.Typer(help="Tier 2: per-request demand prediction.", no_args_is_help=True)
    features = typer.Typer(help="The Feast feature store.", no_args_is_help=True)
    app.add_typer(intent, name="intent")
    app.add_typer(features, name="features")

    @bench.command("intent")
    def bench_intent(
        requests: Annotated[Path | None, typer.Option(
            "--requests", help=REQUESTS_HELP + " (default: a --scenario)")] = None,
        scenario: Annotated[str | None, typer.Option(
            help="A generated request scenario when no --requests (consumer_jobs, "
                 "consumer_jobs_direct, consumer_jobs_contract; cpu_memory_jobs declares CPU and "
                 "memory: one model each)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    ) -> None:
        """Time-based holdout: the intent model side by side with its baselines (and, for a
        trace that declares resources, each resource's model beside its baselines)."""
        import tempfile

        from evaluation.intent_bench import format_table, run_bench
        from leadtime.settings import get_settings
        from simulation.request_scenarios import REQUEST_SCENARIOS

        if (requests is None) == (scenario is None):
            fail("give one of --requests or --scenario")
        if scenario is not None and scenario not in REQUEST_SCENARIOS:
            fail(f"unknown --scenario {scenario!r}: choose {', '.join(REQUEST_SCENARIOS)}")
        with tempfile.TemporaryDirectory(prefix="leadtime-intent-") as scratch:
            try:
                path = requests or REQUEST_SCENARIOS[scenario](Path(scratch))
                document = run_bench(get_settings().prepare(), path)
            except TraceError as exc:
                fail(str(exc))
        typer.echo(json.dumps(document, indent=2) if as_json else format_table(document))

    @bench.command("serve")
    def bench_serve(
        requests: Annotated[Path, typer.Option(
            "--requests", help=REQUESTS_HELP + " (payloads)")],
        seconds: Annotated[float, typer.Option(min=1, max=120, help="Length of each run.")] = 10.0,
        rate: Annotated[float, typer.Option(min=1, max=2000, help="Paced request rate.")] = 200.0,
        clients: Annotated[int, typer.Option(min=1, max=32, help="Closed-loop clients.")] = 4,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Predict latency/throughput on loopback vs `mlflow models serve` vs in-process."""
        from evaluation.api_bench import format_report, run
        from leadtime.settings import get_settings

        try:
            report = run(get_settings(), requests, seconds=seconds, rate=rate, clients=clients)
        except (TraceError, LookupError, RuntimeError) as exc:
            fail(str(exc))
        typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))

    @intent.command("retrain")
    def retrain(requests: RequestsOption) -> None:
        """Run the `intent-retrain` flow: validate, features, train, evaluate, register."""
        from flows.intent import intent_retrain

        try:
            result = intent_retrain(str(requests))
        except TraceError as exc:
            fail(str(exc))
        intent_scores = result["holdout"]["models"]["intent"]
        typer.echo(f"leadtime-intent v{result['version']}: "
                   f"{'champion' if result['promoted'] else 'challenger'} ({result['reason']}); "
                   f"holdout MAE {intent_scores['mae']:.3f}, "
                   f"coverage_80 {intent_scores['coverage_80']:.3f}")
        for name, entry in (result["holdout"].get("resources") or {}).items():
            scores = entry["intent"]
            typer.echo(f"  resource {name}: holdout MAE {scores['mae']:.3f} {entry['unit']}, "
                       f"coverage_80 {scores['coverage_80']:.3f}")

    @intent.command("serve")
    def serve(host: str = typer.Option("127.0.0.1", help="Bind address (loopback by default)."),
              port: int = typer.Option(8000)) -> None:
        """Serve /v1/requests/predict with uvicorn."""
        import uvicorn

        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port)

    @features.command("materialize")
    def materialize(requests: RequestsOption) -> None:
        """Run the `features-materialize` flow for a request trace."""
        from flows.materialize import features_materialize

        try:
            result = features_materialize(str(requests))
        except TraceError as exc:
            fail(str(exc))
        typer.echo(json.dumps(result, indent=2))
