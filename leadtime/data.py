"""Readers for the three input contracts (see ``shared/data/README.md``).

* load trace: ``timestamp, producer_id, value`` (+ ignored extra columns), evenly spaced per
  producer, gaps allowed; an optional ``resource`` column (long format: ``cpu``, ``memory``...)
  gives one series per producer and resource, named by its resource key (``db/cpu``;
  ``load`` or blank: the producer's one load, under its id), which is what every tier learns
  and answers a declared resource under (:func:`check_resources` holds it to
  ``leadtime.yaml``);
* request trace: one row per request plus a sidecar ``*.schema.yaml`` naming the columns;
* anomaly set: ``<dir>/*.csv`` of ``timestamp,value`` plus ``windows.json``.

Every file is read as text, checked with Great Expectations (``leadtime.validation``) and either
returned whole or refused whole with a :class:`TraceError` naming the file, the column and the
first offending rows. Nothing is half-ingested.

The file must be UTF-8 text (a byte-order mark and CRLF line ends are accepted), comma-separated,
with distinct column names and as many fields on every row as in the header; a compressed file,
another encoding or another delimiter is refused with a line saying which. Timestamps are the
local clock time, with no zone; a timestamp written with a zone offset (``Z``, ``+02:00``,
``+0200``: a DST-aware exporter) is read as the local clock time it writes, the offset dropped,
and the note says so. A value must be a finite number no larger than ``MAX_VALUE`` (``NaN``,
``inf`` and ``1e308`` are refused: no load is that large, and such a value would overflow the
fits downstream).

Real telemetry has clock glitches (e.g. a daylight-saving change that stamps a dozen samples with
the same local time). A producer whose irregular rows (duplicates, out-of-order or off-grid
timestamps) are at most ``max_irregular_share`` of its rows is repaired (sorted, snapped to its
grid, duplicates averaged) and the repair is reported in ``LoadTrace.repairs``; above that share,
or with ``max_irregular_share=0`` (``--strict``), the file is refused.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from leadtime.config import LOAD, RESOURCE_NAME, resource_key, resource_of
from leadtime.validation import Check, TraceError, validate

DEFAULT_MAX_IRREGULAR_SHARE = 0.005
#: The largest load or demand accepted: far above any real series, far below float overflow.
MAX_VALUE = 1e15
NUMBER_RE = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"
ZONE_RE = r"(?:Z|[+-]\d{2}:?\d{2})"
TIMESTAMP_RE = (r"^\s*\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                rf"{ZONE_RE}?)?\s*$")
_ZONE_SUFFIX = re.compile(rf"(?<=\d){ZONE_RE}\s*$")

__all__ = [
    "AnomalySet",
    "LoadTrace",
    "RequestSchema",
    "RequestTrace",
    "TraceError",
    "check_resources",
    "infer_interval",
    "read_anomaly_set",
    "read_load_trace",
    "read_request_trace",
]


@dataclass(frozen=True)
class LoadTrace:
    """A validated load trace: one regular series per producer (NaN marks a gap)."""

    path: Path
    frame: pd.DataFrame  # columns: timestamp, producer_id, value (sorted, one row per grid step)
    intervals: dict[str, pd.Timedelta]
    repairs: list[str] = field(default_factory=list)
    excluded_outage_rows: int = 0

    @property
    def producers(self) -> list[str]:
        return list(self.intervals)

    def series(self, producer_id: str) -> pd.Series:
        """The producer's load on its full regular grid, gaps as NaN, index with a ``freq``."""
        if producer_id not in self.intervals:
            raise KeyError(
                f"{self.path.name}: no producer {producer_id!r}; "
                f"producers are: {', '.join(self.producers[:10])}"
            )
        rows = self.frame[self.frame["producer_id"] == producer_id]
        values = rows.set_index("timestamp")["value"].astype(float)
        grid = pd.date_range(values.index[0], values.index[-1], freq=self.intervals[producer_id])
        return values.reindex(grid).rename(producer_id)


SECONDS_UNITS = frozenset({"s", "sec", "secs", "second", "seconds"})


@dataclass(frozen=True)
class RequestSchema:
    """A request trace's sidecar. Besides the required keys, three optional ones describe how
    each request occupies its producer: ``duration`` (the column of its run time in seconds;
    default: the target when its unit is seconds), ``wait`` (seconds between its arrival at the
    front end and its start; default 0) and ``units`` (the capacity it holds while it runs;
    default 1). ``resources`` names, per resource of the producer (``cpu``, ``memory``...), the
    column of what each request needs of it: while it runs when the target is a run time
    (cores, GiB), else its demand of that resource as the target is its demand. Tier 2 learns
    one model per resource beside the target's (:mod:`models.tier2.intent`). A resource is a
    column name (``cpu: cpu_cores``) or ``{column: cpu_cores, unit: cores}``."""

    target: str
    categorical: list[str]
    numeric: list[str]
    time: str = "timestamp"
    target_unit: str = ""
    duration: str | None = None
    wait: str | None = None
    units: str | None = None
    resources: dict[str, str] = field(default_factory=dict)  # resource name: its column
    resource_units: dict[str, str] = field(default_factory=dict)  # resource name: its unit

    @property
    def duration_column(self) -> str | None:
        """The column holding each request's run time in seconds, if the trace has one."""
        if self.duration is not None:
            return self.duration
        return self.target if self.target_unit.strip().lower() in SECONDS_UNITS else None

    @property
    def occupancy_columns(self) -> list[str]:
        return [c for c in (self.duration, self.wait, self.units) if c is not None]

    @classmethod
    def from_yaml(cls, path: Path) -> RequestSchema:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TraceError(f"{path.name}: cannot read the schema: {exc}") from exc
        missing = [key for key in ("target", "categorical", "numeric") if key not in raw]
        if missing:
            raise TraceError(f"{path.name}: schema lacks the key(s) {', '.join(missing)}")
        resources, resource_units = _schema_resources(path, raw.get("resources"))
        return cls(
            target=str(raw["target"]),
            categorical=[str(c) for c in raw.get("categorical") or []],
            numeric=[str(c) for c in raw.get("numeric") or []],
            time=str(raw.get("time", "timestamp")),
            target_unit=str(raw.get("target_unit", "")),
            **{key: str(raw[key]) for key in ("duration", "wait", "units")
               if raw.get(key) is not None},
            resources=resources, resource_units=resource_units,
        )


def _schema_resources(path: Path, raw: Any) -> tuple[dict[str, str], dict[str, str]]:
    """A sidecar's ``resources`` (see :class:`RequestSchema`): each resource's column and unit,
    or a :class:`TraceError` in one line."""
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        raise TraceError(f"{path.name}: resources must map each resource to its column "
                         f"(resources: {{cpu: cpu_cores, memory: memory_gib}}), not {raw!r}")
    columns, units = {}, {}
    for name, spec in raw.items():
        name = str(name)
        if not re.match(RESOURCE_NAME, name) or name == LOAD:
            raise TraceError(f"{path.name}: resources: {name!r} is not a resource name (lower "
                             f"case: cpu, memory, network...; not {LOAD!r})")
        if isinstance(spec, dict) and spec.get("column"):
            columns[name], units[name] = str(spec["column"]), str(spec.get("unit", ""))
        elif isinstance(spec, str) and spec:
            columns[name], units[name] = spec, ""
        else:
            raise TraceError(f"{path.name}: resources: {name}: give its column "
                             f"({name}: <column>, or {name}: {{column: <column>, unit: <unit>}})")
    return columns, units


@dataclass(frozen=True)
class RequestTrace:
    """A validated request trace: one row per request, sorted by time."""

    path: Path
    frame: pd.DataFrame
    schema: RequestSchema


@dataclass(frozen=True)
class AnomalySet:
    """Series of an anomaly benchmark with their labelled windows (NAB convention)."""

    root: Path
    series: dict[str, pd.Series]  # key "<dir>/<file>.csv"
    windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]


def _read_text_csv(path: Path) -> pd.DataFrame:
    """The file as a frame of strings, or a :class:`TraceError` saying why it is not one."""
    path = Path(path)
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, not a CSV file")
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    data = path.read_bytes()
    if data.startswith(b"\x1f\x8b"):
        raise TraceError(f"{path.name}: is gzip-compressed; decompress it first "
                         f"(gunzip -c {path.name} > plain.csv): a trace is plain CSV text")
    if data.startswith((b"PK\x03\x04", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")):
        raise TraceError(f"{path.name}: is a compressed archive; extract the CSV first")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is dropped
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TraceError(f"{path.name}: is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                         f"{line}); save it as UTF-8") from exc
    if not text.strip():
        raise TraceError(f"{path.name}: the file is empty")
    header = next(csv.reader(io.StringIO(text.splitlines()[0])))
    names = [name.strip() for name in header]
    if len(names) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in names[0]:
                raise TraceError(f"{path.name}: uses {delimiter!r} as its delimiter; a trace is "
                                 "comma-separated (timestamp,producer_id,value)")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise TraceError(f"{path.name}: has the column(s) "
                         f"{', '.join(repr(n) for n in twice)} more than once")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                            skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise TraceError(f"{path.name}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        reason = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        raise TraceError(f"{path.name}: not a readable CSV file: {reason} "
                         "(every row needs as many fields as the header)") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise TraceError(f"{path.name}: the file has a header but no rows")
    short = frame.isna().any(axis=1).to_numpy()  # keep_default_na=False: only absent fields
    if short.any():
        lines = (np.flatnonzero(short) + 2)[:5]
        raise TraceError(f"{path.name}: {int(short.sum())} row(s) with fewer fields than the "
                         f"header ({len(names)}): line(s) {', '.join(map(str, lines))}")
    return frame


def _local_times(column: pd.Series) -> tuple[pd.Series, bool]:
    """The timestamps' text with any zone offset dropped (the local clock time written), and
    whether any had one."""
    stripped = column.str.replace(_ZONE_SUFFIX, "", regex=True)
    return stripped, bool((stripped != column).any())


_ZONE_NOTE = ("timestamps carry zone offsets: read as the local clock time written "
              "(offsets dropped; the contract is local time with no zone)")


def _require_columns(path: Path, frame: pd.DataFrame, required: list[str]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise TraceError(
            f"{Path(path).name}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(c) for c in frame.columns)}"
        )


def infer_interval(timestamps: pd.Series) -> pd.Timedelta | None:
    """The dominant positive spacing of sorted timestamps (None when fewer than two)."""
    steps = timestamps.sort_values().diff().dropna()
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        return None
    return pd.Timedelta(steps.mode().iloc[0])


def read_load_trace(
    path: str | Path,
    *,
    max_irregular_share: float = DEFAULT_MAX_IRREGULAR_SHARE,
    exclude_outages: bool = True,
) -> LoadTrace:
    """Read and validate a load trace; refuse the whole file on any defect.

    Rows flagged ``outage=1`` (when that column exists) become gaps when ``exclude_outages``.
    """
    path = Path(path)
    raw = _read_text_csv(path)
    _require_columns(path, raw, ["timestamp", "producer_id", "value"])
    raw["producer_id"] = raw["producer_id"].str.strip()
    if "resource" in raw.columns:  # long format: one series per (producer, resource)
        raw["resource"] = raw["resource"].fillna("").str.strip().replace("", LOAD)
        validate(path, raw, [Check.regex("resource", RESOURCE_NAME,
                                         "is not a resource name (lower case: cpu, memory...)")])
        raw["producer_id"] = [pid if r == LOAD else resource_key(pid, r)
                              for pid, r in zip(raw["producer_id"], raw["resource"])]
    local, zoned = _local_times(raw["timestamp"])
    parsed = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(local, errors="coerce", format="mixed"),
            "producer_id": raw["producer_id"],
            "value": pd.to_numeric(raw["value"], errors="coerce"),
        }
    )
    validate(
        path,
        raw,
        [
            Check.regex("timestamp", TIMESTAMP_RE, "is not an ISO 8601 date-time"),
            Check.regex("value", NUMBER_RE, "is not a number"),
            Check.not_blank("producer_id"),
        ],
    )
    validate(path, parsed, [Check.at_least("value", 0, "is negative (load cannot be)"),
                            Check.at_most("value", MAX_VALUE,
                                          f"is above {MAX_VALUE:g} (not a plausible load)")])

    intervals: dict[str, pd.Timedelta] = {}
    repairs: list[str] = [f"{path.name}: {_ZONE_NOTE}"] if zoned else []
    pieces: list[pd.DataFrame] = []
    for producer, rows in parsed.groupby("producer_id", sort=False):
        interval, piece, note = _regularise(path, str(producer), rows, max_irregular_share)
        intervals[str(producer)] = interval
        pieces.append(piece)
        if note:
            repairs.append(note)

    frame = pd.concat(pieces, ignore_index=True)
    excluded = 0
    if exclude_outages and "outage" in raw.columns:
        outage = pd.to_numeric(raw["outage"], errors="coerce").fillna(0) > 0
        keys = set(zip(parsed.loc[outage, "producer_id"], parsed.loc[outage, "timestamp"]))
        if keys:
            mask = [k in keys for k in zip(frame["producer_id"], frame["timestamp"])]
            excluded = int(np.sum(mask))
            frame = frame.loc[~np.asarray(mask)].reset_index(drop=True)
    return LoadTrace(path, frame, intervals, repairs, excluded)


def check_resources(trace: LoadTrace, keys: dict[str, dict[str, str]]) -> None:
    """Refuse, in one line, a trace series that ``leadtime.yaml`` does not know as a producer
    or a producer's resource (``keys``: :meth:`leadtime.config.LeadtimeConfig.resource_keys`).
    A producer the configuration does not name at all is left to the caller."""
    known = {key for resources in keys.values() for key in resources.values()}
    unknown = []
    for series in trace.producers:
        owner, resource = resource_of(series)
        if series not in known and owner in keys and resource != LOAD:
            unknown.append(f"producer {owner!r} has no resource {resource!r} in leadtime.yaml "
                           f"(its resources: {', '.join(keys[owner])})")
    if unknown:
        raise TraceError(f"{trace.path.name}: {unknown[0]}"
                         + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))


def _regularise(
    path: Path, producer: str, rows: pd.DataFrame, max_irregular_share: float
) -> tuple[pd.Timedelta, pd.DataFrame, str | None]:
    """Check one producer's spacing; snap a few irregular rows, refuse many."""
    interval = infer_interval(rows["timestamp"])
    if interval is None:
        raise TraceError(f"{path.name}: producer {producer!r} has fewer than two distinct timestamps")
    steps = rows["timestamp"].diff()
    # file line numbers: header is line 1, first data row line 2
    lines = rows.index.to_numpy() + 2
    duplicate = (steps == pd.Timedelta(0)).to_numpy()
    unordered = (steps < pd.Timedelta(0)).to_numpy()
    anchor = rows["timestamp"].iloc[0]
    offset = ((rows["timestamp"] - anchor) % interval) != pd.Timedelta(0)
    offgrid = offset.to_numpy() & ~duplicate & ~unordered
    problems = {
        "duplicate timestamps": duplicate,
        "timestamps out of order": unordered,
        f"timestamps off the {_fmt_interval(interval)} grid (mixed intervals)": offgrid,
    }
    bad = duplicate | unordered | offgrid
    if not bad.any():
        return interval, rows.reset_index(drop=True), None
    found = "; ".join(
        f"{what} at line(s) {', '.join(str(n) for n in lines[mask][:5])}"
        f"{' …' if mask.sum() > 5 else ''} ({int(mask.sum())} rows)"
        for what, mask in problems.items()
        if mask.any()
    )
    share = bad.mean()
    if share > max_irregular_share:
        raise TraceError(
            f"{path.name}: column 'timestamp', producer {producer!r}: {found}; "
            f"{share:.1%} of its rows are irregular (more than the {max_irregular_share:.1%} "
            "that is repaired automatically), so the file is refused"
        )
    snapped = anchor + ((rows["timestamp"] - anchor) / interval).round().astype(int) * interval
    repaired = (
        rows.assign(timestamp=snapped)
        .groupby("timestamp", as_index=False)
        .agg(producer_id=("producer_id", "first"), value=("value", "mean"))
        .sort_values("timestamp")
        .reset_index(drop=True)
    )
    note = f"{path.name}: producer {producer!r}: repaired {found}: snapped to the grid, duplicates averaged"
    return interval, repaired[["timestamp", "producer_id", "value"]], note


def _fmt_interval(interval: pd.Timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def read_request_trace(path: str | Path, schema_path: str | Path | None = None) -> RequestTrace:
    """Read a request trace and its schema; refuse the whole file on any defect."""
    path = Path(path)
    schema_file = Path(schema_path) if schema_path else path.with_suffix(".schema.yaml")
    if not schema_file.is_file():
        raise TraceError(f"{path.name}: no schema file {schema_file.name} beside it")
    schema = RequestSchema.from_yaml(schema_file)
    raw = _read_text_csv(path)
    occupancy = [c for c in schema.occupancy_columns if c != schema.target]
    features = {*schema.categorical, *schema.numeric, schema.time}
    leaks = sorted(c for c in schema.resources.values() if c in features)
    if leaks:
        raise TraceError(f"{path.name}: the resource column(s) {', '.join(map(repr, leaks))} "
                         "are also features or the time: a resource's demand is measured after "
                         "the request, so it cannot be an input")
    occupancy = list(dict.fromkeys(
        [*occupancy, *(c for c in schema.resources.values() if c != schema.target)]))
    required = [schema.time, schema.target, *schema.categorical, *schema.numeric, *occupancy]
    _require_columns(path, raw, list(dict.fromkeys(required)))
    numeric_re = r"^\s*$|" + NUMBER_RE  # blank numeric features are allowed (unknown)
    validate(
        path,
        raw,
        [Check.regex(schema.time, TIMESTAMP_RE, "is not an ISO 8601 date-time")]
        + [Check.regex(schema.target, NUMBER_RE, "is not a number")]
        + [Check.regex(col, numeric_re, "is not a number") for col in schema.numeric]
        + [Check.regex(col, NUMBER_RE, "is not a number") for col in occupancy],
    )
    frame = raw.copy()
    frame[schema.time] = pd.to_datetime(_local_times(raw[schema.time])[0], format="mixed")
    for col in dict.fromkeys([schema.target, *schema.numeric, *occupancy]):
        frame[col] = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
    validate(path, frame, [Check.at_least(col, 0, "is negative (a duration, a wait, units or "
                                                  "a resource's demand cannot be)") for col in occupancy])
    for col in schema.categorical:
        frame[col] = raw[col].replace("", "unknown")
    unordered = frame[schema.time].diff() < pd.Timedelta(0)
    validate(
        path,
        frame.assign(_in_time_order=~unordered),
        [
            Check.at_least(schema.target, 0, "is negative (demand cannot be)"),
            Check.at_most(schema.target, MAX_VALUE,
                          f"is above {MAX_VALUE:g} (not a plausible demand)"),
            Check.is_true("_in_time_order", schema.time, "is earlier than the row before it"),
        ],
    )
    return RequestTrace(path, frame.reset_index(drop=True), schema)


def read_anomaly_set(root: str | Path) -> AnomalySet:
    """Read every ``<dir>/<file>.csv`` listed in ``windows.json`` under ``root``."""
    root = Path(root)
    labels_file = root / "windows.json"
    if not labels_file.is_file():
        raise TraceError(f"{root}: no windows.json (the labelled anomaly windows)")
    try:
        labels: dict[str, Any] = json.loads(labels_file.read_text())
    except json.JSONDecodeError as exc:
        raise TraceError(f"{labels_file.name}: not valid JSON: {exc}") from exc
    series: dict[str, pd.Series] = {}
    windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for key, spans in labels.items():
        csv = root / key
        if not csv.is_file():
            raise TraceError(f"{labels_file.name}: names {key!r}, which does not exist")
        raw = _read_text_csv(csv)
        _require_columns(csv, raw, ["timestamp", "value"])
        validate(
            csv,
            raw,
            [
                Check.regex("timestamp", TIMESTAMP_RE, "is not an ISO 8601 date-time"),
                Check.regex("value", NUMBER_RE, "is not a number"),
            ],
        )
        index = pd.to_datetime(_local_times(raw["timestamp"])[0], format="mixed")
        series[key] = pd.Series(pd.to_numeric(raw["value"]).to_numpy(), index=index, name=key)
        parsed_spans = []
        for span in spans:
            start, end = pd.Timestamp(span[0]), pd.Timestamp(span[1])
            if end < start:
                raise TraceError(f"{labels_file.name}: window {span} of {key!r} ends before it starts")
            parsed_spans.append((start, end))
        windows[key] = parsed_spans
    if not series:
        raise TraceError(f"{labels_file.name}: lists no series")
    return AnomalySet(root, series, windows)
