"""Demand per interval from either input contract, through the project's validating readers.

* a **load trace** gives each producer's load per interval directly (NaN marks gaps and
  excluded outages);
* a **request trace** (recognised by its ``*.schema.yaml`` sidecar) is binned: demand per
  interval = the sum of the requests' target (e.g. ``demand``) per producer and interval;
  intervals without requests have zero demand. Traces without a ``producer_id`` column are one
  producer named after the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leadtime.data import read_load_trace, read_request_trace
from leadtime.validation import TraceError
from simulation.config import short_duration

DEFAULT_REQUEST_INTERVAL = pd.Timedelta(minutes=5)


@dataclass(frozen=True)
class Demand:
    """Regular demand series per producer (index with a ``freq``, gaps as NaN)."""

    path: Path
    kind: str  # "load" | "requests"
    series: dict[str, pd.Series]
    notes: list[str] = field(default_factory=list)

    @property
    def producers(self) -> list[str]:
        return list(self.series)


def is_request_trace(path: Path) -> bool:
    return path.with_suffix(".schema.yaml").is_file()


def read_demand(
    path: str | Path, producer: str | None = None, interval: pd.Timedelta | None = None
) -> Demand:
    """Read ``path`` (load or request trace) into demand series; ``producer`` picks one.

    ``interval`` bins request traces (default 5 minutes); load traces keep their own interval.
    Raises :class:`TraceError` for bad files and unknown producers.
    """
    path = Path(path)
    if is_request_trace(path):
        return _from_requests(path, producer, interval or DEFAULT_REQUEST_INTERVAL)
    trace = read_load_trace(path)
    names = [producer] if producer is not None else trace.producers
    series: dict[str, pd.Series] = {}
    for name in names:
        try:
            series[name] = trace.series(name)
        except KeyError as exc:
            raise TraceError(str(exc.args[0])) from exc
    notes = list(trace.repairs)
    if trace.excluded_outage_rows:
        notes.append(f"{trace.excluded_outage_rows} outage rows treated as gaps (not scored)")
    return Demand(path, "load", series, notes)


def _from_requests(path: Path, producer: str | None, interval: pd.Timedelta) -> Demand:
    trace = read_request_trace(path)
    frame, schema = trace.frame, trace.schema
    if "producer_id" in frame.columns:
        keys = frame["producer_id"].astype(str)
    else:
        keys = pd.Series(path.stem, index=frame.index)
    if producer is not None and producer not in set(keys):
        raise TraceError(
            f"{path.name}: no producer {producer!r}; producers are: "
            f"{', '.join(sorted(set(keys))[:10])}"
        )
    times = frame[schema.time].dt.floor(interval)
    grid = pd.date_range(times.min(), times.max(), freq=interval)
    series: dict[str, pd.Series] = {}
    sums = frame[schema.target].fillna(0.0).groupby([keys, times]).sum()
    for name in [producer] if producer is not None else sorted(set(keys)):
        values = sums.loc[name]
        series[name] = values.reindex(grid, fill_value=0.0).astype(float).rename(name)
    unit = schema.target_unit or schema.target
    note = f"request trace binned to {short_duration(interval)}: demand = sum of {schema.target} ({unit})"
    return Demand(path, "requests", series, [note])
