"""Tier 2 for the engine: the demand already announced to each producer.

Every request predicted through ``POST /v1/requests/predict`` with a ``producer_id`` is recorded
here with its predicted demand (point, lower, upper). Tier 2's answer for a producer is, as in
``docs/design.md``, the announced demand of the last window projected over the next one: the predicted
demand that arrived per second over the last spin-up lead time, times the producer's
``tier2_load_per_demand`` (how much of the producer's load unit one unit of demand per second
is; e.g. 1.0 when the load is busy CPU-seconds per second and the intent target is CPU-seconds).

Bounds are the sums of the requests' bounds: conservative, since the errors of different requests
partly cancel. A producer for which nothing has been announced since start gets no answer (not a
zero: the front end may simply not be reporting it), and the engine renormalises over the other
tiers; one with announcements but none in the last window gets a real zero.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping

from leadtime.engine import TierPrediction


class AnnouncedDemand:
    """Per-producer sums of predicted request demand per second, thread-safe, kept ``keep_s``.

    Requests are summed into one-second buckets, so memory is bounded by ``keep_s`` buckets per
    producer whatever the request rate, and by ``max_producers`` producers: announcements for a
    new producer beyond it are not recorded (``add`` counts only what it recorded). The API
    records only producers of ``leadtime.yaml``, so the bound is a second line of defence.

    >>> demand = AnnouncedDemand(max_producers=1)
    >>> demand.add(100.0, [("a", 2.0, 1.0, 3.0), ("b", 5.0, 4.0, 6.0)])
    1
    >>> demand.producers()
    ['a']
    """

    def __init__(self, keep_s: float = 3600.0, max_producers: int = 100_000) -> None:
        self.keep_s = keep_s
        self.max_producers = max_producers
        self._lock = threading.Lock()
        self._by_producer: dict[str, deque[list[float]]] = {}  # [second, point, lower, upper]

    def add(self, now: float, items: Iterable[tuple[str, float, float, float]]) -> int:
        """Record ``(producer_id, point, lower, upper)`` predictions made at ``now``."""
        second = float(math.floor(now))
        added = 0
        with self._lock:
            for producer_id, point, lower, upper in items:
                ring = self._by_producer.get(producer_id)
                if ring is None:
                    if len(self._by_producer) >= self.max_producers:
                        continue
                    ring = self._by_producer[producer_id] = deque()
                if ring and ring[-1][0] == second:
                    bucket = ring[-1]
                    bucket[1] += point
                    bucket[2] += lower
                    bucket[3] += upper
                else:
                    ring.append([second, point, lower, upper])
                added += 1
                while ring and ring[0][0] < second - self.keep_s:
                    ring.popleft()
        return added

    def producers(self) -> list[str]:
        with self._lock:
            return sorted(self._by_producer)

    def predict(
        self, windows_s: Mapping[str, float], scales: Mapping[str, float], now: float
    ) -> dict[str, TierPrediction]:
        """Tier 2 for every producer with a scale and at least one announcement since start:
        the demand of the one-second buckets in ``(now - window, now]``, per second, scaled."""
        out: dict[str, TierPrediction] = {}
        with self._lock:
            for producer_id, scale in scales.items():
                ring = self._by_producer.get(producer_id)
                if ring is None:
                    continue
                window = max(windows_s.get(producer_id, 300.0), 1.0)
                since = now - window
                point = lower = upper = 0.0
                for second, p, lo, up in reversed(ring):
                    if second <= since:
                        break
                    point += p
                    lower += lo
                    upper += up
                rate = scale / window
                out[producer_id] = TierPrediction(point * rate, lower * rate, upper * rate)
        return out
