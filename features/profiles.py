"""Feature rows computed from request history, stamped so they are point-in-time correct.

Every row describes an entity (a consumer, a consumer x request type, a producer, the whole
population) *after* some request was seen. It is stamped ``request time + 1 µs``, so a Feast
point-in-time join (feature time <= request time) gives a request only what strictly earlier
requests said: never itself, never a request with the same timestamp, never the future.

To keep the joins small, rows of busy entities are thinned to the last row per time bucket
(``throttle``); that only makes features slightly staler, never leaky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadtime.data import RequestTrace

EPSILON = pd.Timedelta(microseconds=1)
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
    the schema's numeric columns and ``y`` (the demand target)."""

    frame: pd.DataFrame
    numeric: list[str]
    target: str
    has_consumer: bool
    has_producer: bool


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
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    return RequestFrame(frame, list(schema.numeric), schema.target, has_consumer, has_producer)


def heavy_flags(y: pd.Series) -> pd.Series:
    """1.0 where demand exceeds the population's running p75 (of that request and earlier)."""
    threshold = y.expanding().quantile(HEAVY_QUANTILE)
    return (y > threshold).astype(float)


def history_rows(
    frame: pd.DataFrame, keys: list[str], prefix: str, throttle: str | None = None
) -> pd.DataFrame:
    """Cumulative demand statistics of each ``keys`` group after each of its requests.

    ``frame`` needs event_timestamp, y and heavy, sorted by time. With no keys the whole
    population is one group.
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
    """Recent load of each producer after each of its requests (trailing 10 min and 1 h)."""
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


def build_feature_tables(requests: RequestFrame) -> dict[str, pd.DataFrame]:
    """Every feature view's offline table, computed from the requests alone."""
    frame = requests.frame.assign(heavy=heavy_flags(requests.frame["y"]))
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
