"""Build, fill and read the Feast feature store of one request trace.

Each trace gets its own Feast repo under ``<LEADTIME_HOME>/feast/<trace>/``: a generated
``feature_store.yaml`` (never committed: it holds absolute paths), the file registry, the
offline parquet tables and, by default, the SQLite online store. Redis is used instead when
``LEADTIME_ONLINE_STORE=redis`` (``LEADTIME_REDIS_URL``, default ``127.0.0.1:6379``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from features.profiles import (
    RequestFrame,
    build_feature_tables,
    canonical,
    profile_class,
)
from leadtime.data import RequestTrace
from leadtime.settings import Settings

PROJECT = "leadtime"
ENTITY_KEYS = ("consumer_id", "producer_id", "request_type")


def trace_slug(name: str) -> str:
    """A file-system and Feast friendly name for a trace (``alibaba_genai_lora``)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", Path(name).stem).strip("_").lower() or "trace"


def repo_dir(settings: Settings, trace: str) -> Path:
    return settings.home_dir / "feast" / trace_slug(trace)


def online_store_config(settings: Settings, repo: Path) -> dict[str, Any]:
    """SQLite under the repo by default; Redis when the settings (or environment) say so."""
    kind = settings.online_store
    if kind == "redis":
        return {"type": "redis", "connection_string": settings.redis_url}
    if kind != "sqlite":
        raise ValueError(f"online store {kind!r} is not supported (use sqlite or redis)")
    return {"type": "sqlite", "path": str(repo / "online.db")}


def write_config(settings: Settings, trace: str) -> Path:
    """Write ``feature_store.yaml`` for ``trace`` from the settings; return the repo folder."""
    repo = repo_dir(settings, trace)
    (repo / "data").mkdir(parents=True, exist_ok=True)
    config = {
        "project": PROJECT,
        "provider": "local",
        "registry": {"path": str(repo / "registry.db"), "cache_ttl_seconds": 0},
        "online_store": online_store_config(settings, repo),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def open_store(repo: Path):
    """A ``FeatureStore`` over an existing repo folder."""
    os.environ.setdefault("FEAST_USAGE", "False")
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


@dataclass(frozen=True)
class Ingested:
    repo: Path
    requests: RequestFrame
    rows: dict[str, int]


def ingest(settings: Settings, trace: RequestTrace,
           feedback_delay: pd.Timedelta | float | str | None = None) -> Ingested:
    """Compute every feature table from ``trace``, write the parquet files, ``feast apply``.

    Rows are stamped when their demand was known (``features.profiles.known_at``; the
    ``feedback_delay`` applies to targets that are not durations).
    """
    from features.definitions import definitions

    repo = write_config(settings, trace.path.name)
    requests = canonical(trace)
    tables = build_feature_tables(requests, feedback_delay)
    for view, table in tables.items():
        # tz-aware UTC stamps: Feast's file store would otherwise convert them row by row
        table = table.assign(event_timestamp=as_utc(table["event_timestamp"]))
        table.to_parquet(repo / "data" / f"{view}.parquet", index=False)
    store = open_store(repo)
    store.apply(definitions(repo / "data"))
    return Ingested(repo, requests, {view: len(table) for view, table in tables.items()})


def as_utc(stamps: pd.Series) -> pd.Series:
    """Trace times (naive, local) as the UTC-aware stamps Feast expects; the clock is kept."""
    stamps = pd.to_datetime(stamps)
    return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")


def materialize(repo: Path, end: datetime | None = None) -> datetime:
    """Load the latest feature rows up to ``end`` (default: the newest row) into the online store.

    Rows are stamped when their demand became known, so materialising up to ``end`` serves
    exactly what was known at ``end``: requests still in flight then are not in it.
    """
    store = open_store(repo)
    if end is None:
        newest = max(
            pd.read_parquet(path, columns=["event_timestamp"])["event_timestamp"].max()
            for path in (repo / "data").glob("*.parquet")
            if len(pd.read_parquet(path, columns=["event_timestamp"]))
        )
        end = pd.Timestamp(newest).to_pydatetime() + timedelta(seconds=1)
    store.materialize(start_date=datetime(1970, 1, 2), end_date=end)
    return end


def historical_features(repo: Path, requests: pd.DataFrame, chunk_rows: int = 2500) -> pd.DataFrame:
    """Point-in-time correct features for each request (Feast ``get_historical_features``).

    ``requests`` needs event_timestamp and the entity keys. Requests are joined in time-ordered
    chunks so the file offline store's merge stays small; the result keeps the input order.
    """
    from features.definitions import feature_refs

    store = open_store(repo)
    refs = feature_refs()
    keys = ["event_timestamp", *ENTITY_KEYS]
    wanted = requests[keys].assign(event_timestamp=as_utc(requests["event_timestamp"]))
    entity = wanted.drop_duplicates().sort_values("event_timestamp").reset_index(drop=True)
    # arrow strings: dask hashes object columns value by value on every step
    entity = entity.astype({key: "string[pyarrow]" for key in ENTITY_KEYS})
    names = [ref.split(":", 1)[1] for ref in refs]
    views = sorted({ref.split(":", 1)[0] for ref in refs})
    joined = entity.copy()
    joined["event_timestamp"] = as_utc(joined["event_timestamp"])
    joined = joined.astype({key: object for key in ENTITY_KEYS})
    for view in views:  # one view per call: mixing entityless views misaligns rows
        view_refs = [ref for ref in refs if ref.startswith(f"{view}:")]
        pieces = []
        for start in range(0, len(entity), chunk_rows):
            chunk = entity.iloc[start:start + chunk_rows]
            pieces.append(store.get_historical_features(entity_df=chunk, features=view_refs).to_df())
        part = pd.concat(pieces)
        part["event_timestamp"] = as_utc(part["event_timestamp"])
        part = part.astype({key: object for key in ENTITY_KEYS})
        cols = [ref.split(":", 1)[1] for ref in view_refs]
        joined = joined.merge(part[[*keys, *cols]].drop_duplicates(keys), on=keys, how="left")
    wanted = wanted.astype({key: object for key in ENTITY_KEYS})
    out = wanted.merge(joined, on=keys, how="left", validate="m:1")
    if len(out) != len(requests):
        raise RuntimeError("point-in-time join changed the number of requests")
    return fill_population(out[names])


def online_features(store, rows: list[dict[str, str]]) -> pd.DataFrame:
    """The latest features for each request's (consumer, producer, request type)."""
    from features.definitions import feature_refs

    entity_rows = [{key: str(row.get(key) or "") for key in ENTITY_KEYS} for row in rows]
    response = store.get_online_features(features=feature_refs(), entity_rows=entity_rows)
    frame = pd.DataFrame(response.to_dict())
    names = [ref.split(":", 1)[1] for ref in feature_refs()]
    return fill_population(frame[names])


CONSUMER_FROM_POPULATION = {
    "demand_mean": "demand_mean", "demand_p50": "demand_p50", "demand_p90": "demand_p90",
    "demand_last": "demand_p50", "heavy_share": "heavy_share",
}


def fill_population(frame: pd.DataFrame) -> pd.DataFrame:
    """Give consumers without history the population's features and flag them unknown.

    The same function runs on training sets and on served requests, so a new consumer looks
    the same to the model in both places.
    """
    out = frame.copy()
    for col in out.columns:
        if col.endswith("_profile_class"):
            continue
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    known = out["c_n"].fillna(0) > 0
    out["consumer_known"] = known.astype(float)
    for stat, pop_stat in CONSUMER_FROM_POPULATION.items():
        out[f"c_{stat}"] = out[f"c_{stat}"].where(known, out[f"pop_{pop_stat}"])
        type_pop = out[f"popt_{pop_stat}"].fillna(out[f"pop_{pop_stat}"])
        out[f"ct_{stat}"] = out[f"ct_{stat}"].where(out["ct_n"].fillna(0) > 0, type_pop)
    for col in ("c_n", "c_rate_1h", "ct_n", "ct_rate_1h"):
        out[col] = out[col].fillna(0.0)
    for col in ("p_n_10min", "p_n_1h", "p_demand_1h"):
        out[col] = out[col].fillna(0.0)  # no row within the TTL: no recent load
    out["c_profile_class"] = out["c_profile_class"].where(
        known, profile_class(out["c_n"], out["c_heavy_share"], out["c_rate_1h"])
    ).astype(str)
    return out
