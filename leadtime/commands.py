"""Registers every CLI command; each lives beside the code it drives."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    from leadtime.cli_baseline import register as register_baseline

    register_baseline(app, bench)
    from leadtime.cli_autoscale import register as register_autoscale

    register_autoscale(app, bench)
    from leadtime.cli_intent import register as register_intent

    register_intent(app, bench)
    from leadtime.cli_tier3 import register as register_tier3

    register_tier3(app, bench)
    from leadtime.cli_serve import register as register_serve

    register_serve(app, bench)
    from leadtime.cli_engine import register as register_engine

    register_engine(app, bench)
    from leadtime.cli_deploy import register as register_deploy

    register_deploy(app, bench)
    from leadtime.cli_scaleout import register as register_scaleout

    register_scaleout(app, bench)
