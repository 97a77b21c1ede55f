"""The ``leadtime`` command line. Commands are thin: they parse flags and call plain functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="leadtime: forecast producer load and pre-allocate capacity a spin-up lead time ahead.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
bench = typer.Typer(help="Benchmarks that print leadtime's figures side by side with baselines.",
                    no_args_is_help=True)
app.add_typer(bench, name="bench")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show libraries' INFO logs.")):
    """Keep the console for leadtime's own output unless --verbose."""
    import logging
    import os

    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when MLflow is imported
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read by dask's config
        logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
        for name in ("great_expectations", "mlflow", "alembic", "cmdstanpy", "prophet", "feast",
                     "distributed"):
            logging.getLogger(name).setLevel(logging.WARNING)


# Commands are registered from their own modules to keep this file a table of contents.
from leadtime_cli import (  # noqa: E402
    autoscale,
    baseline,
    demo,
    deploy,
    engine,
    intent,
    resources,
    scaleout,
    serve,
    suite,
    tier3,
)

for module in (baseline, demo, autoscale, intent, tier3, serve, engine, deploy, scaleout, suite,
               resources):
    module.register(app, bench)
