"""``leadtime serve``: the HTTP API on the embedded defaults (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
        port: int = typer.Option(8000, help="TCP port."),
        workers: int = typer.Option(
            1, help="Worker processes: 1. The decision loop, the reported states and the Tier "
            "2/3 state live in one process, so more workers would each decide alone."),
        keda_port: int | None = typer.Option(
            None, min=1, max=65535, help="Also serve KEDA's external scaler (gRPC "
            "externalscaler.ExternalScaler) on this port: a ScaledObject's trigger with "
            "producerId drives its Deployment to leadtime's target instances."),
        keda_host: str = typer.Option("127.0.0.1", help="Interface of the KEDA scaler."),
        as_of: str | None = typer.Option(
            None, "--as-of", metavar="TIMESTAMP", help="Run the decision loop as of this moment "
            "(ISO 8601, UTC unless it gives an offset), its clock advancing with wall time: "
            "e.g. the end of the demo trace, which `leadtime demo` prints. Default: the wall "
            "clock."),
        shard: str | None = typer.Option(
            None, "--shard", metavar="I/N", help="Decide only for the pools whose name hashes "
            "to shard I of N (0-based), so N processes share one leadtime.yaml, e.g. a "
            "StatefulSet whose pod index is I (docs/operations.md)."),
        shard_pools: str | None = typer.Option(
            None, "--shard-pools", metavar="POOL,...", help="Decide only for these pools "
            "(instead of the hash)."),
    ) -> None:
        """Serve decisions, Tier 2 predictions and Tier 3 observations (OpenAPI at /docs)."""
        from leadtime_cli.common import fail

        if workers != 1:
            fail(f"--workers {workers}: leadtime serves from one process. The decision loop "
                 "owns the producer states and the Tier 2 and Tier 3 state in memory; several "
                 "workers would each hold their own and decide apart. Run one process per "
                 "fleet, or one per shard of its pools (--shard I/N), and put replicas "
                 "behind a leader election if you need failover.")
        import os

        import uvicorn

        from leadtime.settings import get_settings

        if keda_port is not None:  # read by create_app in the server (settings from env)
            os.environ["LEADTIME_KEDA_PORT"] = str(keda_port)
            os.environ["LEADTIME_KEDA_HOST"] = keda_host
            get_settings.cache_clear()

        if shard is not None:  # read by the decision runtime in the server (settings from env)
            index, _, count = shard.partition("/")
            if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
                fail(f"--shard {shard!r}: expected I/N with 0 <= I < N, e.g. 0/4")
            os.environ["LEADTIME_SHARD_INDEX"], os.environ["LEADTIME_SHARD_COUNT"] = index, count
            get_settings.cache_clear()
        if shard_pools is not None:
            os.environ["LEADTIME_SHARD_POOLS"] = shard_pools
            get_settings.cache_clear()

        if as_of is not None:  # read by the decision runtime in the server (settings from env)
            from datetime import datetime

            try:
                moment = datetime.fromisoformat(as_of)
            except ValueError:
                fail(f"--as-of {as_of!r} is not an ISO 8601 timestamp (e.g. 1995-09-01T00:00:00)")
            os.environ["LEADTIME_AS_OF"] = moment.isoformat()
            get_settings.cache_clear()
            typer.echo(f"decision loop clock: as of {moment.isoformat()}"
                       f"{'' if moment.tzinfo else ' UTC'}, advancing with wall time")

        get_settings().prepare()
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port,
                    workers=1, log_level="info")

    @bench.command("api")
    def bench_api(
        producers: int = typer.Option(
            100, min=1, max=10_000, help="Producers in the generated leadtime.yaml (4 pools)."),
        seconds: int = typer.Option(10, min=1, max=120, help="Length of each run, in seconds."),
        rate: float = typer.Option(200.0, min=1, max=2000, help="Paced request rate (req/s)."),
        connections: str = typer.Option("4,32", "--connections", "--clients",
                                        help="Closed-loop connections, one run per count "
                                             "(comma-separated, 1-256 each)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Load test of GET /v1/decisions on a real server process, driven by wrk (loopback).

        Starts the API (one worker, 127.0.0.1, a free port) on a generated leadtime.yaml and a
        temporary LEADTIME_HOME, reports one state per producer, then runs wrk twice: paced at
        --rate on a fixed schedule (latency from each request's due time, so queueing counts)
        and closed loop at each --connections count. Target: p99 at most 5 ms at 200 req/s
        with 100 producers, and throughput at the most connections at least 90 % of that at
        the fewest. Needs wrk (apt-get install wrk).
        """
        import json

        from evaluation.api_bench import LoadGeneratorMissing, api_run, find_wrk, format_api_report
        from leadtime_cli.common import fail

        try:
            counts = tuple(int(n) for n in connections.split(","))
        except ValueError:
            fail(f"--connections takes counts like 4,32; got {connections!r}")
        if not counts or not all(1 <= n <= 256 for n in counts):
            fail(f"--connections counts must be 1..256; got {connections!r}")
        try:
            wrk = find_wrk()
        except LoadGeneratorMissing as exc:
            fail(str(exc))
        try:
            report = api_run(producers=producers, seconds=seconds, rate=rate,
                             connections=counts, wrk=wrk)
        except RuntimeError as exc:
            fail(str(exc))
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        typer.echo(format_api_report(report))
