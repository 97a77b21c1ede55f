"""``leadtime deploy``: serve the scheduled flows to a Prefect server (visible in its UI)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    @app.command("deploy")
    def deploy(
        list_only: bool = typer.Option(False, "--list", help="Print the deployments and exit."),
    ) -> None:
        """Serve baseline-daily, intent-retrain, features-materialize and recalibrate on schedule.

        Needs a Prefect server (PREFECT_API_URL); runs until stopped. Any deployment can be run
        on demand from the UI or with `prefect deployment run '<flow>/<deployment>'`.
        """
        from leadtime.settings import get_settings

        settings = get_settings().prepare()
        from flows.deployments import SCHEDULES, build_deployments

        if list_only:
            for s in SCHEDULES:
                when = f"cron '{s.cron}'" if s.cron else f"every {s.interval_s / 60:.0f} min"
                typer.echo(f"{s.flow}/{s.deployment}: {when}")
            return
        if not settings.prefect_api_url:
            from leadtime_cli.common import fail

            fail("deploy needs a Prefect server: set PREFECT_API_URL (e.g. "
                 "http://127.0.0.1:4200/api after `prefect server start`)")
        from prefect import serve

        serve(*build_deployments(settings))
