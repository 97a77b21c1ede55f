"""What every command shares: one clear error line and exit code 2 for an expected refusal."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

#: Prefect's run loggers: they log a failing task or flow with its traceback.
PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
_REFUSAL_IN_MESSAGE = re.compile(r"exception:? (?:\w+\.)*(TraceError|ValueError)\b")


def fail(message: str) -> None:
    """Print a clear error and exit with status 2 (no traceback for bad input)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def duration_s(text: str | None, flag: str, positive: bool = False) -> float | None:
    """A duration flag (``5min``, ``90s``, ``1h``) in seconds, as everything below the command
    line takes it (None when not given); anything else is refused in one line."""
    import pandas as pd

    if text is None:
        return None
    try:
        seconds = pd.Timedelta(text).total_seconds()
    except ValueError as exc:
        fail(f"{flag}: {text!r} is not a duration (e.g. 5min, 90s, 1h): {exc}")
    if positive and not seconds > 0:
        fail(f"{flag} {text!r}: must be positive")
    return seconds


def configured():
    """The settings' ``leadtime.yaml``, validated (None where the file is absent); a bad file
    is refused in one line."""
    from leadtime.config import ConfigError
    from leadtime.settings import get_settings

    try:
        return get_settings().leadtime
    except ConfigError as exc:
        fail(str(exc))


def configured_engine():
    """The engine section of the settings' ``leadtime.yaml`` (the defaults where the file is
    absent): what the benchmarks replay unless a flag says otherwise. A bad file is refused."""
    configured()  # a bad file is refused in one line
    from leadtime.settings import get_settings

    return get_settings().engine


def verbose(ctx: typer.Context | None) -> bool:
    """Whether the command line asked for ``--verbose`` (the root callback's flag).

    Pass the command's ``typer.Context`` (Typer vendors Click, so Click's own context lookup
    does not see it).
    """
    return bool(ctx is not None and ctx.find_root().params.get("verbose"))


class RefusalFilter(logging.Filter):
    """Drop Prefect's records of an expected refusal (a ValueError, e.g. a ``TraceError``).

    The command reports the refusal itself, as one ``error:`` line; Prefect would first log it
    two to four times, with tracebacks. Other failures pass through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] and issubclass(record.exc_info[0], ValueError):
            return False
        return not (record.levelno >= logging.ERROR
                    and _REFUSAL_IN_MESSAGE.search(record.getMessage()))


@contextmanager
def quiet_refusals(show: bool = False) -> Iterator[None]:
    """Within the block, Prefect's run loggers drop refusal records unless ``show`` (--verbose)."""
    if show:
        yield
        return
    loggers = [logging.getLogger(name) for name in PREFECT_RUN_LOGGERS]
    refusals = RefusalFilter()
    for logger in loggers:
        logger.addFilter(refusals)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(refusals)


ViolationCostOption = Annotated[float | None, typer.Option(
    "--violation-cost", min=0.001,
    help="Price of a violating window in instance-intervals: the highest quantile sizing "
    "holds (default: leadtime.yaml's).")]
BudgetOption = Annotated[str | None, typer.Option(
    "--budget", help="Spend at most this multiple of what reacting (the HPA twin) spends, e.g. "
    "1.0, or 'none' for the price mode (default: leadtime.yaml's, 1.03 unless it says).")]


def engine_from_flags(violation_cost: float | None, budget: str | None = None):
    """The engine the benchmarks replay: the settings' ``leadtime.yaml`` (:func:`configured_engine`)
    with ``--violation-cost`` and ``--budget`` over it (a bad value: one error line)."""
    from simulation.bench import engine_spec

    spec = engine_spec(violation_cost=violation_cost, base=configured_engine())
    if budget is None:
        return spec
    if budget.strip().lower() in ("none", "null", "price"):
        return spec.model_copy(update={"sizing_budget": None})
    try:
        value = float(budget)
    except ValueError:
        fail(f"--budget {budget!r}: give a positive number (a multiple of reacting's spend) "
             "or 'none' (the price mode)")
    if not value > 0:
        fail(f"--budget {budget!r}: must be > 0")
    return spec.model_copy(update={"sizing_budget": value})


def tier2_requests(trace, demand, console, every_s: float = 86400.0):
    """A request trace's requests with Tier 2's predicted run times, fitted every ``every_s`` on
    the requests finished before, when the trace is replayed as occupancy (the benchmarks then
    tell leadtime each request through Tier 2); None for any other trace."""
    if demand.reading != "occupancy":
        return None
    from simulation.intent_replay import predict_requests

    with console.status("Tier 2: daily fits on the requests finished before") as status:
        return predict_requests(trace, every_s=every_s, progress=status.update).frame
