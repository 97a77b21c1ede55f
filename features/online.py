"""Fast online feature reads for serving: Feast's online store behind a short in-process cache.

``features.store.online_features`` builds a pandas frame per call and fills the population
features column by column: fine for tests and batch jobs, ~20 ms per request. The serving hot
path uses :class:`OnlineFeatureReader` instead:

* one ``FeatureStore`` per process, read with Feast's own ``get_online_features`` (one call for
  all the views, only for the entity keys the cache does not hold);
* :func:`fill_population_row`, the plain-dict twin of ``store.fill_population`` (the tests
  check they agree), so a new consumer looks the same to the model as in training;
* a bounded TTL cache keyed by (consumer, producer, request type): features are at most
  ``ttl_seconds`` staler than the online store, which is itself refreshed by materialisation
  or pushes every few minutes; the profiles move slowly, so a few seconds cost nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from features.store import CONSUMER_FROM_POPULATION, ENTITY_KEYS

DEFAULT_TTL_SECONDS = 5.0
DEFAULT_MAX_ENTRIES = 20_000
NAN = float("nan")


class TTLCache:
    """A small thread-safe LRU cache whose entries expire ``ttl`` seconds after being set."""

    def __init__(self, maxsize: int, ttl: float, clock=time.monotonic) -> None:
        if maxsize < 1 or ttl < 0:
            raise ValueError("maxsize must be >= 1 and ttl >= 0")
        self.maxsize, self.ttl, self.clock = maxsize, ttl, clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._data.get(key)
            if item is None or item[0] <= self.clock():
                if item is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[1]

    def set(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = (self.clock() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def _number(value: Any) -> float:
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _missing(value: float) -> bool:
    return math.isnan(value)


def fill_population_row(values: dict[str, Any]) -> dict[str, Any]:
    """One request's online features with population fallbacks (see ``store.fill_population``).

    ``values`` maps every feature name to its online value (None when the store has none).
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = value if name.endswith("_profile_class") else _number(value)
    c_n = out.get("c_n", NAN)
    known = not _missing(c_n) and c_n > 0
    out["consumer_known"] = 1.0 if known else 0.0
    ct_n = out.get("ct_n", NAN)
    type_known = not _missing(ct_n) and ct_n > 0
    for stat, pop_stat in CONSUMER_FROM_POPULATION.items():
        pop = out.get(f"pop_{pop_stat}", NAN)
        if not known:
            out[f"c_{stat}"] = pop
        type_pop = out.get(f"popt_{pop_stat}", NAN)
        if not type_known:
            out[f"ct_{stat}"] = pop if _missing(type_pop) else type_pop
    for col in ("c_n", "c_rate_1h", "ct_n", "ct_rate_1h", "p_n_10min", "p_n_1h", "p_demand_1h"):
        if col in out and _missing(out[col]):
            out[col] = 0.0
    # an unknown consumer has no history (c_n = 0): profile_class() calls it "new"
    out["c_profile_class"] = str(out.get("c_profile_class")) if known else "new"
    return out


def entity_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return tuple(str(row.get(key) or "") for key in ENTITY_KEYS)  # type: ignore[return-value]


class OnlineFeatureReader:
    """Per-process reader of the Feast online store with a short TTL cache (thread-safe)."""

    def __init__(self, store, refs: list[str] | None = None,
                 ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        from features.definitions import feature_refs

        self.store = store
        self.refs = list(refs or feature_refs())
        self.names = [ref.split(":", 1)[1] for ref in self.refs]
        self.cache = TTLCache(max_entries, ttl_seconds)
        self._read_lock = threading.Lock()  # one online-store reader at a time (SQLite)

    def cached(self, rows: list[dict[str, Any]]) -> bool:
        """True when every row's features are in the cache (the read would not block)."""
        return all(self.cache.get(entity_key(row)) is not None for row in rows)

    def read(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each row's features (population-filled), from the cache or the online store."""
        keys = [entity_key(row) for row in rows]
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        missing: list[tuple[str, str, str]] = []
        for key in keys:
            if key in found or key in missing:
                continue
            hit = self.cache.get(key)
            if hit is None:
                missing.append(key)
            else:
                found[key] = hit
        if missing:
            for key, features in zip(missing, self._fetch(missing), strict=True):
                self.cache.set(key, features)
                found[key] = features
        return [found[key] for key in keys]

    def _fetch(self, keys: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
        entity_rows = [dict(zip(ENTITY_KEYS, key, strict=True)) for key in keys]
        with self._read_lock:
            columns = self.store.get_online_features(
                features=self.refs, entity_rows=entity_rows).to_dict()
        return [fill_population_row({name: columns[name][i] for name in self.names})
                for i in range(len(keys))]
