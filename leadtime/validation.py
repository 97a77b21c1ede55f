"""Data validation with Great Expectations 1.x, turned into clear refusals.

A ``Check`` is a small description of one column rule; ``validate`` runs a list of them as one
GX expectation suite over a pandas DataFrame (``data_sources`` → ``suites`` →
``validation_definitions``) and raises :class:`TraceError` naming the file, the column and the
first offending file lines when any fails. GX is imported lazily: it is slow to import and never
needed on the serving hot path.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

SHOW_ROWS = 5


class TraceError(ValueError):
    """Input refused as a whole; the message names the file, the column and the rows."""


@dataclass(frozen=True)
class Check:
    """One column rule, described so it can be built as a GX expectation and explained."""

    kind: str  # "regex" | "at_least" | "at_most" | "not_blank" | "is_true"
    column: str
    problem: str  # how an offending value is described, e.g. "is not a number"
    value: Any = None
    report_column: str | None = None  # the user-facing column when ``column`` is derived

    @classmethod
    def regex(cls, column: str, pattern: str, problem: str) -> Check:
        return cls("regex", column, problem, pattern)

    @classmethod
    def at_least(cls, column: str, minimum: float, problem: str) -> Check:
        return cls("at_least", column, problem, minimum)

    @classmethod
    def at_most(cls, column: str, maximum: float, problem: str) -> Check:
        return cls("at_most", column, problem, maximum)

    @classmethod
    def not_blank(cls, column: str) -> Check:
        return cls("not_blank", column, "is blank", r"\S")

    @classmethod
    def is_true(cls, column: str, report_column: str, problem: str) -> Check:
        return cls("is_true", column, problem, None, report_column)

    def expectation(self):  # -> gx.expectations.Expectation
        import great_expectations as gx

        if self.kind in ("regex", "not_blank"):
            return gx.expectations.ExpectColumnValuesToMatchRegex(column=self.column, regex=self.value)
        if self.kind == "at_least":
            return gx.expectations.ExpectColumnValuesToBeBetween(column=self.column, min_value=self.value)
        if self.kind == "at_most":
            return gx.expectations.ExpectColumnValuesToBeBetween(column=self.column, max_value=self.value)
        if self.kind == "is_true":
            return gx.expectations.ExpectColumnValuesToBeInSet(column=self.column, value_set=[True])
        raise ValueError(f"unknown check kind {self.kind!r}")


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _context():
    """One ephemeral GX context per process, with a pandas data source for in-memory frames."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in list(logging.root.manager.loggerDict):  # GX sets INFO on some of its loggers
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("leadtime").add_dataframe_asset("frame")
    return context, asset.add_batch_definition_whole_dataframe("whole")


_definitions: dict[tuple[Check, ...], Any] = {}


def _definition(checks: tuple[Check, ...]):
    """The GX validation definition for a set of checks, built once per process."""
    import great_expectations as gx

    if checks not in _definitions:
        context, batch = _context()
        name = f"checks-{len(_definitions)}"
        suite = context.suites.add(
            gx.ExpectationSuite(name=name, expectations=[c.expectation() for c in checks])
        )
        _definitions[checks] = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
    return _definitions[checks]


def validate(path: Path | str, frame: pd.DataFrame, checks: list[Check]) -> None:
    """Run ``checks`` on ``frame`` as one GX suite; raise TraceError describing every failure."""
    name = Path(path).name
    with _lock:
        definition = _definition(tuple(checks))
        result = definition.run(
            batch_parameters={"dataframe": frame.reset_index(drop=True)},
            result_format={"result_format": "COMPLETE"},
        )
    failures = []
    for check, outcome in zip(checks, result.results, strict=True):
        if outcome.success:
            continue
        info = outcome.result or {}
        rows = list(info.get("unexpected_index_list") or [])
        values = list(info.get("unexpected_list") or [])
        count = int(info.get("unexpected_count") or len(rows))
        shown = ", ".join(
            f"line {int(row) + 2} ({value!r})" for row, value in zip(rows[:SHOW_ROWS], values)
        )
        more = f" and {count - SHOW_ROWS} more" if count > SHOW_ROWS else ""
        column = check.report_column or check.column
        failures.append(f"column {column!r}: {count} row(s) where the value {check.problem}: {shown}{more}")
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            failures.append(f"column {column!r}: {outcome.exception_info.get('exception_message')}")
    if failures:
        raise TraceError(f"{name}: refused, nothing was loaded: " + "; ".join(failures))
