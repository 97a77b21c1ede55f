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
    ) -> None:
        """Serve decisions, Tier 2 predictions and Tier 3 observations (OpenAPI at /docs)."""
        from leadtime_cli.common import fail

        if workers != 1:
            fail(f"--workers {workers}: leadtime serves from one process. The decision loop "
                 "owns the producer states and the Tier 2 and Tier 3 state in memory; several "
                 "workers would each hold their own and decide apart. Run one process per "
                 "fleet (it decides for 1,000 producers in milliseconds) and put replicas "
                 "behind a leader election if you need failover.")
        import uvicorn

        from leadtime.settings import get_settings

        get_settings().prepare()
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port,
                    workers=1, log_level="info")

    @bench.command("api")
    def bench_api(
        seconds: float = typer.Option(10.0, min=1, max=120, help="Length of each run."),
        rate: float = typer.Option(200.0, min=1, max=2000, help="Paced request rate."),
        clients: int = typer.Option(4, min=1, max=32, help="Closed-loop clients."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Loopback load test of GET /v1/decisions on a real server process (bounded)."""
        import json

        from leadtime.settings import get_settings
        from serving.bench import api_run

        report = api_run(get_settings().prepare(), seconds=seconds, rate=rate, clients=clients)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        for name in ("paced", "max_throughput"):
            r = report[name]
            typer.echo(f"{report['endpoint']} {name:>14}: {r['requests']} requests, "
                       f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                       f"{r['throughput_rps']:.0f} req/s")
        typer.echo(f"readyz: {report['readyz']}")
