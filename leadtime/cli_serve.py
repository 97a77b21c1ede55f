"""``leadtime serve``: the HTTP API on the embedded defaults (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
        port: int = typer.Option(8000, help="TCP port."),
        workers: int = typer.Option(1, help="Worker processes."),
    ) -> None:
        """Serve decisions, Tier 2 predictions and Tier 3 observations (OpenAPI at /docs)."""
        import uvicorn

        from leadtime.settings import get_settings

        get_settings().prepare()
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="info")
