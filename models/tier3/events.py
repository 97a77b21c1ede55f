"""The observation contracts of Tier 3 (pydantic): performance events and producer metric samples.

**Performance event** — one completed call of a consumer to a producer:

| field | type | meaning |
|---|---|---|
| `timestamp` | ISO 8601 date-time (zone optional; naive = UTC) | when the call completed |
| `consumer_id` | string, 1–200 chars | who called |
| `producer_id` | string, 1–200 chars | the backend service called |
| `latency_ms` | number ≥ 0, finite | end-to-end latency the consumer saw |
| `error` | bool (default false) | the call failed (timeout, 5xx, refused) |
| `demand` | number ≥ 0, finite (default 0) | resource demand of the call in the producer's load unit |
| `event_id` | optional string | the sender's id; the dedup key when given |

**Metric sample** — one reading of a producer metric:
`timestamp`, `producer_id`, `metric` (`load`, `latency_ms` or `cpu`), `value` (finite number).

Unknown fields are refused, so a typo is a 422 naming the field, not silently dropped data.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 10_000
METRICS = ("load", "latency_ms", "cpu")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class PerformanceEvent(_Strict):
    """One completed call, as the consumer experienced it."""

    timestamp: datetime
    consumer_id: str = Field(min_length=1, max_length=200)
    producer_id: str = Field(min_length=1, max_length=200)
    latency_ms: float = Field(ge=0)
    error: bool = False
    demand: float = Field(default=0.0, ge=0)
    event_id: str | None = Field(default=None, max_length=200)

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    def key(self) -> str:
        """Deduplication key: the sender's id, else a digest of the whole event."""
        if self.event_id:
            return "id:" + self.event_id
        raw = (f"{self.timestamp.isoformat()}|{self.consumer_id}|{self.producer_id}|"
               f"{self.latency_ms!r}|{self.error}|{self.demand!r}")
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


class MetricSample(_Strict):
    """One reading of a producer metric."""

    timestamp: datetime
    producer_id: str = Field(min_length=1, max_length=200)
    metric: Literal["load", "latency_ms", "cpu"]
    value: float

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    def key(self) -> str:
        return f"m|{self.producer_id}|{self.metric}|{self.timestamp.isoformat()}"


class ObservationBatch(_Strict):
    """The body of ``POST /v1/observations``: events and/or metric samples, in any order."""

    events: list[PerformanceEvent] = Field(default_factory=list, max_length=MAX_BATCH)
    metrics: list[MetricSample] = Field(default_factory=list, max_length=MAX_BATCH)
