"""Feature rows computed from request history, stamped so they are point-in-time correct.

Every row describes an entity (a consumer, a consumer x request type, a producer, the whole
population) *after the outcome of* some request became known. A request's demand (its execution
time, its generated tokens) is only measured when it completes, so its row is stamped at
``known_at + 1 µs`` where (:func:`known_at`):

* the schema's ``target_unit`` is a time unit (``seconds``, ``s``, ``ms``, ``minutes``, ...):
  ``known_at = arrival + demand`` (the request completes when its measured time has run out);
* otherwise (``tokens``, ``bytes``, ...): ``known_at = arrival + feedback_delay``, a fixed,
  configurable bound on how long a request's outcome takes to come back
  (:data:`DEFAULT_FEEDBACK_DELAY`, 60 s, see there).

History is accumulated in ``known_at`` order, so a Feast point-in-time join (feature time <=
request time) gives a request only what requests that had *finished* before it said: never
itself, never an earlier request still in flight, never the future. Counts and rates
(``n``, ``rate_1h``, producer load) are therefore of completed requests too. The online store is
filled from the same tables, so materialising up to time T serves exactly what was known at T.

To keep the joins small, rows of busy entities are thinned to the last row per time bucket
(``throttle``); that only makes features slightly staler, never leaky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadtime.data import RequestTrace

EPSILON = pd.Timedelta(microseconds=1)
# When the target is not a duration (e.g. generated tokens), a request's demand is assumed known
# this long after it arrived. 60 s: a response of 1,900 tokens (the longest in the Azure code
# trace) streams in ~60 s at ~30 tokens/s, a slow decode rate; most finish far sooner, so the
# bound is conservative (features slightly staler, never leaky). Fixed, not tuned on any trace.
DEFAULT_FEEDBACK_DELAY = pd.Timedelta(seconds=60)
# seconds per unit of a duration target (schema ``target_unit``, case-insensitive)
TIME_UNITS = {
    "us": 1e-6, "µs": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}
POPULATION = "__population__"  # consumer id under which population features are served
ALL_PRODUCERS = "__all__"  # producer id when a trace has no producer column
UNKNOWN_CONSUMER = "__unknown__"  # consumer id when a trace has no consumer column
HEAVY_QUANTILE = 0.75  # a request is heavy when its demand is above the population's p75 so far
PROFILE_CLASSES = ("new", "heavy", "bursty", "steady")

# Features of every history view; the prefix names the view (c, ct, pop, popt).
HISTORY_STATS = ("n", "rate_1h", "demand_mean", "demand_p50", "demand_p90", "demand_last",
                 "heavy_share")
PRODUCER_STATS = ("p_n_10min", "p_n_1h", "p_demand_1h", "p_demand_mean_1h")


@dataclass(frozen=True)
class RequestFrame:
    """Requests in canonical columns: event_timestamp, consumer_id, producer_id, request_type,
    the schema's numeric columns and ``y`` (the demand target). ``resources`` holds each
    declared resource's demand (:attr:`leadtime.data.RequestSchema.resources`), row for row:
    targets of their own models, never features, so not in ``frame``."""

    frame: pd.DataFrame
    numeric: list[str]
    target: str
    has_consumer: bool
    has_producer: bool
    unit: str = ""  # the schema's target_unit: decides when a request's demand is known
    resources: pd.DataFrame | None = None  # a column per declared resource, frame's rows


def canonical(trace: RequestTrace) -> RequestFrame:
    """The trace's requests under the column names the feature views use."""
    schema = trace.schema
    raw = trace.frame
    frame = pd.DataFrame({"event_timestamp": pd.to_datetime(raw[schema.time])})
    has_consumer = "consumer_id" in raw.columns
    has_producer = "producer_id" in raw.columns
    frame["consumer_id"] = raw["consumer_id"].astype(str) if has_consumer else UNKNOWN_CONSUMER
    frame["producer_id"] = raw["producer_id"].astype(str) if has_producer else ALL_PRODUCERS
    frame["request_type"] = (
        raw["request_type"].astype(str) if "request_type" in raw.columns else "default"
    )
    frame = frame.replace({"consumer_id": {"unknown": UNKNOWN_CONSUMER},
                           "producer_id": {"unknown": ALL_PRODUCERS}})
    for extra in schema.categorical:
        if extra not in frame.columns:
            frame[extra] = raw[extra].astype(str)
    for col in schema.numeric:
        frame[col] = raw[col].astype(float)
    frame["y"] = raw[schema.target].astype(float)
    order = np.argsort(frame["event_timestamp"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    resources = (pd.DataFrame({name: raw[column].astype(float).to_numpy()[order]
                               for name, column in schema.resources.items()})
                 if schema.resources else None)
    return RequestFrame(frame, list(schema.numeric), schema.target, has_consumer, has_producer,
                        schema.target_unit, resources)


def unit_seconds(unit: str | None) -> float | None:
    """Seconds per unit when ``unit`` names a duration (``"seconds"``, ``"ms"``...), else None."""
    return TIME_UNITS.get(str(unit or "").strip().lower())


def as_delay(value: pd.Timedelta | float | int | str | None) -> pd.Timedelta:
    """A feedback delay: a Timedelta, a number of seconds or a pandas string ("90s"); None is the
    default."""
    if value is None:
        return DEFAULT_FEEDBACK_DELAY
    delay = (pd.Timedelta(seconds=float(value)) if isinstance(value, (int, float))
             else pd.Timedelta(value))
    if delay < pd.Timedelta(0):
        raise ValueError(f"feedback_delay must be >= 0, got {value!r}")
    return delay


def known_at(frame: pd.DataFrame, unit: str | None,
             feedback_delay: pd.Timedelta | float | str | None = None) -> pd.Series:
    """When each request's demand becomes known (see the module doc).

    A duration target completes at ``arrival + demand`` (a missing or negative demand counts as
    the feedback delay); any other target is known ``feedback_delay`` after arrival.
    """
    arrival = pd.to_datetime(frame["event_timestamp"])
    delay = as_delay(feedback_delay)
    scale = unit_seconds(unit)
    if scale is None:
        return arrival + delay
    seconds = frame["y"].astype(float) * scale
    lag = pd.to_timedelta(seconds.where(seconds >= 0), unit="s").fillna(delay)
    return arrival + lag


def outcome_frame(frame: pd.DataFrame, unit: str | None,
                  feedback_delay: pd.Timedelta | float | str | None = None) -> pd.DataFrame:
    """The requests re-timed at their outcome: ``event_timestamp`` is when the demand became
    known, rows sorted by it (ties keep arrival order)."""
    out = frame.assign(event_timestamp=known_at(frame, unit, feedback_delay))
    return out.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def heavy_flags(y: pd.Series) -> pd.Series:
    """1.0 where demand exceeds the population's running p75 (of that request and earlier
    ones, in the frame's order: outcome order in :func:`build_feature_tables`)."""
    threshold = y.expanding().quantile(HEAVY_QUANTILE)
    return (y > threshold).astype(float)


def history_rows(
    frame: pd.DataFrame, keys: list[str], prefix: str, throttle: str | None = None
) -> pd.DataFrame:
    """Cumulative demand statistics of each ``keys`` group after each of its requests.

    ``frame`` needs event_timestamp, y and heavy, sorted by time. ``event_timestamp`` must be
    when each request's demand became known (:func:`outcome_frame`); rows are stamped 1 µs
    after it. With no keys the whole population is one group.
    """
    data = frame[[*keys, "event_timestamp", "y", "heavy"]].copy()
    if not keys:
        data["_all"] = ""
        keys = ["_all"]
    grouped = data.groupby(keys, sort=False, observed=True)
    out = data[keys].copy()
    out[f"{prefix}_n"] = grouped.cumcount() + 1
    out[f"{prefix}_demand_mean"] = grouped["y"].cumsum() / out[f"{prefix}_n"]
    out[f"{prefix}_heavy_share"] = grouped["heavy"].cumsum() / out[f"{prefix}_n"]
    out[f"{prefix}_demand_last"] = data["y"]
    for q, name in ((0.5, "p50"), (0.9, "p90")):
        expanding = grouped["y"].expanding().quantile(q)
        out[f"{prefix}_demand_{name}"] = expanding.reset_index(level=list(range(len(keys))),
                                                              drop=True)
    ones = pd.Series(1.0, index=data.index)
    rate = (
        ones.groupby([data[k] for k in keys], sort=False, observed=True)
        .apply(lambda s: s.set_axis(data.loc[s.index, "event_timestamp"]).rolling("1h").sum()
               .set_axis(s.index))
    )
    out[f"{prefix}_rate_1h"] = rate.reset_index(level=list(range(len(keys))), drop=True)
    out["event_timestamp"] = data["event_timestamp"] + EPSILON
    if "_all" in out.columns:
        out = out.drop(columns="_all")
        keys = []
    return _thin(out, keys, throttle)


def producer_rows(frame: pd.DataFrame, throttle: str | None = None) -> pd.DataFrame:
    """Recent load of each producer after each of its requests (trailing 10 min and 1 h),
    over requests whose outcome is known (``frame`` as in :func:`history_rows`)."""
    pieces = []
    for producer, rows in frame.groupby("producer_id", sort=False):
        series = rows.set_index("event_timestamp")["y"]
        piece = pd.DataFrame(
            {
                "producer_id": producer,
                "p_n_10min": series.rolling("10min").count().to_numpy(),
                "p_n_1h": series.rolling("1h").count().to_numpy(),
                "p_demand_1h": series.rolling("1h").sum().to_numpy(),
                "p_demand_mean_1h": series.rolling("1h").mean().to_numpy(),
                "event_timestamp": rows["event_timestamp"].to_numpy() + EPSILON,
            },
            index=rows.index,
        )
        pieces.append(piece)
    out = pd.concat(pieces).sort_index()
    return _thin(out, ["producer_id"], throttle)


def _thin(rows: pd.DataFrame, keys: list[str], throttle: str | None) -> pd.DataFrame:
    """Keep each key's last row per ``throttle`` bucket (staler, never leakier)."""
    if throttle:
        bucket = rows["event_timestamp"].dt.floor(throttle)
        rows = rows.assign(_bucket=bucket).drop_duplicates([*keys, "_bucket"], keep="last")
        rows = rows.drop(columns="_bucket")
    else:
        rows = rows.drop_duplicates([*keys, "event_timestamp"], keep="last")
    return rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def profile_class(n: pd.Series, heavy_share: pd.Series, rate_1h: pd.Series) -> pd.Series:
    """A readable consumer class: new, heavy (mostly heavy requests), bursty, steady."""
    cls = np.where(n.fillna(0) < 3, "new",
                   np.where(heavy_share >= 0.5, "heavy",
                            np.where(rate_1h >= 20, "bursty", "steady")))
    return pd.Series(cls, index=n.index)


def snapshot_bucket(stamps: pd.Series, snapshots: int, longest: int) -> str:
    """Thinning bucket: about ``snapshots`` per entity over the trace, 1 s to ``longest`` s."""
    span = (stamps.max() - stamps.min()).total_seconds() if len(stamps) else 0.0
    seconds = int(min(longest, max(1, span / snapshots)))
    return f"{seconds}s"


def build_feature_tables(
    requests: RequestFrame, feedback_delay: pd.Timedelta | float | str | None = None
) -> dict[str, pd.DataFrame]:
    """Every feature view's offline table, computed from the requests alone.

    Each row is stamped when the demand it summarises was known: arrival + demand for a
    duration target, arrival + ``feedback_delay`` (default :data:`DEFAULT_FEEDBACK_DELAY`)
    otherwise.
    """
    frame = outcome_frame(requests.frame, requests.unit, feedback_delay)
    frame = frame.assign(heavy=heavy_flags(frame["y"]))
    throttle = snapshot_bucket(frame["event_timestamp"], 300, 3600)
    consumer = history_rows(frame, ["consumer_id"], "c")
    consumer["c_profile_class"] = profile_class(
        consumer["c_n"], consumer["c_heavy_share"], consumer["c_rate_1h"]
    )
    tables = {
        "consumer_profile": consumer,
        "consumer_type_profile": history_rows(frame, ["consumer_id", "request_type"], "ct"),
        "producer_load": producer_rows(
            frame, throttle=snapshot_bucket(frame["event_timestamp"], 2000, 900)),
        "population_profile": history_rows(frame, [], "pop", throttle=throttle),
        "population_type_profile": history_rows(frame, ["request_type"], "popt",
                                                 throttle=throttle),
    }
    if not requests.has_consumer:  # nobody is known: consumer views hold no rows
        tables["consumer_profile"] = consumer.iloc[0:0]
        tables["consumer_type_profile"] = tables["consumer_type_profile"].iloc[0:0]
    return tables
