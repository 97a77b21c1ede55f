"""Demand per interval from either input contract, through the project's validating readers.

* a **load trace** gives each producer's load per interval directly (NaN marks gaps and
  excluded outages);
* a **request trace** (recognised by its ``*.schema.yaml`` sidecar) is read one of two ways:

  - ``occupancy`` (the default when the schema gives each request's run time, see
    :class:`leadtime.data.RequestSchema`): each request holds its units on its producer from its
    arrival plus its wait for its run time, and the load per interval is the mean units held
    (:mod:`simulation.occupancy`);
  - ``binned`` (the default otherwise, e.g. a target in tokens): demand per interval = the sum of
    the requests' target per producer and interval, each request's whole demand in its arrival
    interval.

  Intervals without requests have zero load. Traces without a ``producer_id`` column are one
  producer named after the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leadtime.data import read_load_trace, read_request_trace
from leadtime.validation import TraceError
from simulation.config import short_duration

DEFAULT_REQUEST_INTERVAL_S = 300.0  # five minutes


@dataclass(frozen=True)
class Demand:
    """Regular demand series per producer (index with a ``freq``, gaps as NaN)."""

    path: Path
    kind: str  # "load" | "requests"
    series: dict[str, pd.Series]
    notes: list[str] = field(default_factory=list)
    reading: str | None = None  # a request trace's: "occupancy" or "binned"

    @property
    def producers(self) -> list[str]:
        return list(self.series)


def is_request_trace(path: Path) -> bool:
    return path.with_suffix(".schema.yaml").is_file()


READINGS = ("occupancy", "binned")


def read_demand(
    path: str | Path, producer: str | None = None, interval_s: float | None = None,
    reading: str | None = None,
) -> Demand:
    """Read ``path`` (load or request trace) into demand series; ``producer`` picks one.

    ``interval_s`` (seconds) samples request traces (default 5 minutes); load traces keep
    their own interval. ``reading`` is how a request trace becomes load (see the module
    docstring; default: occupancy when the schema gives run times, else binned). Raises
    :class:`TraceError` for bad files, unknown producers and an occupancy reading of a trace
    without run times.
    """
    path = Path(path)
    if reading is not None and reading not in READINGS:
        raise TraceError(f"unknown reading {reading!r}; choose {' or '.join(READINGS)}")
    if is_request_trace(path):
        return _from_requests(path, producer, interval_s or DEFAULT_REQUEST_INTERVAL_S, reading)
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


def _from_requests(path: Path, producer: str | None, interval_s: float,
                   reading: str | None = None) -> Demand:
    trace = read_request_trace(path)
    duration = trace.schema.duration_column
    if reading == "occupancy" and duration is None:
        raise TraceError(
            f"{path.name}: an occupancy reading needs each request's run time: the schema's "
            f"target is in {trace.schema.target_unit or 'no unit'!r}, not seconds, and it names "
            "no `duration` column; use the binned reading")
    if (reading or ("occupancy" if duration is not None else "binned")) == "occupancy":
        return _occupancy(trace, producer, interval_s)
    interval = pd.Timedelta(seconds=interval_s)
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
    return Demand(path, "requests", series, [note], "binned")


def _keys(trace) -> pd.Series:
    frame = trace.frame
    if "producer_id" in frame.columns:
        return frame["producer_id"].astype(str)
    return pd.Series(trace.path.stem, index=frame.index)


def request_runs(trace) -> pd.DataFrame:
    """Per request, in the trace's order: ``producer_id``, ``arrival_s`` (Unix seconds),
    ``start_s`` (after its wait), ``end_s`` (after its run time) and the ``units`` it holds;
    and ``units_<resource>``, what it holds of each resource its schema declares.
    Needs a run time (:attr:`leadtime.data.RequestSchema.duration_column`)."""
    frame, schema = trace.frame, trace.schema
    arrival = (pd.to_datetime(frame[schema.time]) - pd.Timestamp(0)).dt.total_seconds().to_numpy()
    run = frame[schema.duration_column].fillna(0.0).to_numpy(float)
    wait = frame[schema.wait].fillna(0.0).to_numpy(float) if schema.wait else 0.0
    units = frame[schema.units].fillna(0.0).to_numpy(float) if schema.units else 1.0
    return pd.DataFrame({"producer_id": _keys(trace).to_numpy(), "arrival_s": arrival,
                         "start_s": arrival + wait, "end_s": arrival + wait + run,
                         "units": units,
                         **{f"units_{name}": frame[column].fillna(0.0).to_numpy(float)
                            for name, column in schema.resources.items()}})


def _occupancy(trace, producer: str | None, interval_s: float) -> Demand:
    """Each producer's mean units held per interval (:func:`simulation.occupancy.occupancy`),
    on a grid from the first arrival's interval to the interval of the last request's end."""
    from simulation.occupancy import occupancy

    schema, path = trace.schema, trace.path
    runs = request_runs(trace)
    keys = runs["producer_id"]
    if producer is not None and producer not in set(keys):
        raise TraceError(f"{path.name}: no producer {producer!r}; producers are: "
                         f"{', '.join(sorted(set(keys))[:10])}")
    arrivals = runs["arrival_s"].to_numpy()
    wait = runs["start_s"].to_numpy() - arrivals
    duration = runs["end_s"].to_numpy() - runs["start_s"].to_numpy()
    units = runs["units"].to_numpy(float)
    interval = pd.Timedelta(seconds=interval_s)
    step = interval.total_seconds()
    first = np.floor(arrivals.min() / step) * step
    last = np.floor((arrivals + wait + duration).max() / step) * step
    edges = np.arange(first, last + 2 * step - 1e-9, step)
    grid = pd.to_datetime(edges[:-1], unit="s")
    grid = pd.DatetimeIndex(grid, freq=interval)
    series: dict[str, pd.Series] = {}
    for name in [producer] if producer is not None else sorted(set(keys)):
        mine = (keys == name).to_numpy()
        load = occupancy(arrivals[mine], duration[mine], edges, wait[mine], units[mine])
        series[name] = pd.Series(load, index=grid, name=name)
    held = f"{schema.units} units" if schema.units else "one unit"
    waited = f" after its {schema.wait} (s)" if schema.wait else ""
    note = (f"request trace replayed as occupancy at {short_duration(interval)}: each request "
            f"holds {held} from its arrival{waited} for its {schema.duration_column} (s); "
            "load = mean units held per interval")
    return Demand(path, "requests", series, [note], "occupancy")
