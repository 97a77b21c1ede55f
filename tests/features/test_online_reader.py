"""The serving feature path: plain-dict population fill, TTL cache, cached online reads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.definitions import feature_refs
from features.online import OnlineFeatureReader, TTLCache, fill_population_row
from features.store import fill_population

NAMES = [ref.split(":", 1)[1] for ref in feature_refs()]


def _raw_rows(n: int = 40, seed: int = 0) -> list[dict]:
    """Online values as Feast returns them: numbers or None, some consumers unknown."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {}
        for name in NAMES:
            if name == "c_profile_class":
                row[name] = str(rng.choice(["heavy", "steady", "bursty"]))
            else:
                row[name] = float(rng.integers(1, 50))
        if i % 3 == 0:  # unknown consumer: no consumer rows at all
            for name in NAMES:
                if name.startswith("c_"):
                    row[name] = None
        if i % 4 == 0:  # consumer never sent this type
            for name in NAMES:
                if name.startswith("ct_"):
                    row[name] = None
        if i % 5 == 0:  # no recent producer load, no type population
            for name in NAMES:
                if name.startswith(("p_", "popt_")):
                    row[name] = None
        rows.append(row)
    return rows


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_row_fill_matches_the_training_fill():
    raw = _raw_rows()
    expected = fill_population(pd.DataFrame(raw)[NAMES])
    for i, row in enumerate(raw):
        got = fill_population_row(row)
        assert set(got) == set(expected.columns)
        for col in expected.columns:
            assert _same(got[col], expected[col].iat[i]), (i, col, got[col], expected[col].iat[i])


def test_ttl_cache_expires_and_stays_bounded():
    now = [0.0]
    cache = TTLCache(maxsize=2, ttl=5.0, clock=lambda: now[0])
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1
    cache.set("c", 3)  # evicts the least recently used ("b")
    assert cache.get("b") is None and len(cache) == 2
    now[0] = 6.0
    assert cache.get("a") is None and cache.get("c") is None


class _FakeResponse:
    def __init__(self, columns):
        self.columns = columns

    def to_dict(self):
        return self.columns


class _FakeStore:
    def __init__(self, raw):
        self.raw, self.calls = raw, []

    def get_online_features(self, features, entity_rows):
        self.calls.append(len(entity_rows))
        rows = [self.raw[int(row["consumer_id"])] for row in entity_rows]
        return _FakeResponse({name: [row[name] for row in rows] for name in NAMES})


def test_reader_reads_each_key_once_within_the_ttl():
    raw = _raw_rows(6)
    store = _FakeStore(raw)
    reader = OnlineFeatureReader(store, ttl_seconds=60)
    rows = [{"consumer_id": str(i % 3), "producer_id": "p", "request_type": "t"}
            for i in range(6)]
    assert not reader.cached(rows)
    first = reader.read(rows)
    assert store.calls == [3]  # one Feast call, each distinct key once
    assert reader.cached(rows)
    again = reader.read(rows)
    assert store.calls == [3] and again == first
    assert first[0] == fill_population_row(raw[0])


def test_feature_order_does_not_depend_on_the_hash_seed():
    # Feast's schema order follows Python's hash seed; the model's columns must not
    assert feature_refs() == sorted(feature_refs())
