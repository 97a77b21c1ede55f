"""The Feast feature repo: entities, sources and feature views of leadtime's Tier 2.

Definitions are built by a function because the offline parquet files live in the state
folder (``LEADTIME_HOME``), whose absolute path is only known at run time.

* entities: ``consumer`` (consumer_id), ``producer`` (producer_id), ``request_type``;
* ``consumer_profile`` / ``consumer_type_profile``: a consumer's demand history (overall and per
  request type), backed by a push source for streaming updates;
* ``producer_load``: a producer's recent load (requests and demand in the last 10 min / 1 h),
  backed by a push source;
* ``population_profile`` / ``population_type_profile``: the same statistics over everybody,
  served in place of an unknown consumer's.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64, Int64, String

from features.profiles import HISTORY_STATS, PRODUCER_STATS

CONSUMER_TTL = timedelta(days=90)
PRODUCER_TTL = timedelta(hours=1)
POPULATION_TTL = timedelta(days=1)
VIEWS = ("consumer_profile", "consumer_type_profile", "producer_load", "population_profile",
         "population_type_profile")
PUSH_SOURCES = {"consumer_profile": "consumer_profile_push", "producer_load": "producer_load_push"}


def _stats(prefix: str) -> list[Field]:
    return [Field(name=f"{prefix}_{stat}", dtype=Int64 if stat == "n" else Float64)
            for stat in HISTORY_STATS]


def feature_refs() -> list[str]:
    """Every feature the intent model may read, as ``view:feature`` references, sorted.

    Sorted because Feast's ``FeatureView.schema`` order changes with Python's hash seed: the
    model's column order (and so the fitted model) must not change from one process to the next.
    """
    return sorted(f"{view.name}:{field.name}" for view in definitions(Path("."))
                  if isinstance(view, FeatureView) for field in view.schema
                  if field.name not in ("consumer_id", "producer_id", "request_type"))


def definitions(data_dir: Path) -> list:
    """Entities, data sources and feature views reading parquet files under ``data_dir``."""
    consumer = Entity(name="consumer", join_keys=["consumer_id"], value_type=ValueType.STRING,
                      description="A client of the producers (a tenant, a consumer group).")
    producer = Entity(name="producer", join_keys=["producer_id"], value_type=ValueType.STRING,
                      description="A backend service that serves requests.")
    request_type = Entity(name="request_type", join_keys=["request_type"],
                          value_type=ValueType.STRING, description="The kind of request.")

    def source(view: str) -> FileSource:
        return FileSource(name=f"{view}_source", path=str(data_dir / f"{view}.parquet"),
                          timestamp_field="event_timestamp")

    consumer_push = PushSource(name=PUSH_SOURCES["consumer_profile"],
                               batch_source=source("consumer_profile"))
    producer_push = PushSource(name=PUSH_SOURCES["producer_load"],
                               batch_source=source("producer_load"))
    views = [
        FeatureView(
            name="consumer_profile", entities=[consumer], ttl=CONSUMER_TTL,
            schema=[*_stats("c"), Field(name="c_profile_class", dtype=String)],
            source=consumer_push, online=True,
            description="A consumer's demand history: rate, mean, quantiles, heavy share, class.",
        ),
        FeatureView(
            name="consumer_type_profile", entities=[consumer, request_type], ttl=CONSUMER_TTL,
            schema=_stats("ct"), source=source("consumer_type_profile"), online=True,
            description="A consumer's demand history for one request type.",
        ),
        FeatureView(
            name="producer_load", entities=[producer], ttl=PRODUCER_TTL,
            schema=[Field(name=name, dtype=Float64) for name in PRODUCER_STATS],
            source=producer_push, online=True,
            description="A producer's recent load: requests and demand in the last 10 min / 1 h.",
        ),
        FeatureView(
            name="population_profile", entities=[], ttl=POPULATION_TTL,
            schema=_stats("pop"), source=source("population_profile"), online=True,
            description="Everybody's demand history: the fallback for unknown consumers.",
        ),
        FeatureView(
            name="population_type_profile", entities=[request_type], ttl=POPULATION_TTL,
            schema=_stats("popt"), source=source("population_type_profile"), online=True,
            description="Everybody's demand history per request type.",
        ),
    ]
    return [consumer, producer, request_type, consumer_push, producer_push, *views]
