"""The observation contracts of Tier 3 (pydantic): performance events and producer metric samples.

**Performance event** — one completed call of a consumer to a producer:

| field | type | meaning |
|---|---|---|
| `timestamp` | ISO 8601 date-time (naive = UTC; the API requires the zone) | when the call completed |
| `consumer_id` | string, 1–200 chars | who called |
| `producer_id` | string, 1–200 chars | the backend service called |
| `latency_ms` | number ≥ 0, finite | end-to-end latency the consumer saw |
| `error` | bool (default false) | the call failed (timeout, 5xx, refused) |
| `demand` | number ≥ 0, finite (default 0) | resource demand of the call in the producer's load unit |
| `event_id` | optional string | the sender's id; the dedup key when given |

**Metric sample** — one reading of a producer metric:
`timestamp`, `producer_id`, `metric` (`load`, `latency_ms` or `cpu`), `value` (a finite number
≥ 0: every metric here is a load, a latency or a utilisation).

Unknown fields are refused, so a typo is a 422 naming the field, not silently dropped data.
Validated with a context holding ``now`` (Unix seconds; the API passes its clock's), a timestamp
must also carry its zone and lie between 1970 and ``now`` plus :data:`FUTURE_S`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_BATCH = 10_000
METRICS = ("load", "latency_ms", "cpu")
#: How far past ``now`` a timestamp may lie (clocks drift; a day is not drift).
FUTURE_S = 3600.0
#: The largest value of a latency, a demand or a metric (no real reading is near it).
MAX_VALUE = 1e15


def _utc(value: datetime, info: ValidationInfo | None = None) -> datetime:
    now = (info.context or {}).get("now") if info is not None else None
    if now is not None:
        if value.tzinfo is None:
            raise ValueError("the timestamp needs its zone, e.g. 2026-01-01T00:00:00Z")
        stamp = value.timestamp()
        if stamp < 0 or stamp > now + FUTURE_S:
            latest = datetime.fromtimestamp(now + FUTURE_S, UTC).isoformat(timespec="seconds")
            raise ValueError(f"the timestamp must lie between 1970-01-01 and {latest}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class PerformanceEvent(_Strict):
    """One completed call, as the consumer experienced it."""

    timestamp: datetime
    consumer_id: str = Field(min_length=1, max_length=200)
    producer_id: str = Field(min_length=1, max_length=200)
    latency_ms: float = Field(ge=0, le=MAX_VALUE)
    error: bool = False
    demand: float = Field(default=0.0, ge=0, le=MAX_VALUE)
    event_id: str | None = Field(default=None, max_length=200)

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _utc(value, info)

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
    value: float = Field(ge=0, le=MAX_VALUE)

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _utc(value, info)


class ObservationBatch(_Strict):
    """The body of ``POST /v1/observations``: events and/or metric samples, in any order."""

    events: list[PerformanceEvent] = Field(default_factory=list, max_length=MAX_BATCH)
    metrics: list[MetricSample] = Field(default_factory=list, max_length=MAX_BATCH)
