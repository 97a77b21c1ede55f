"""Tier 2's source for the engine: announced request demand per producer."""

from __future__ import annotations

import pytest

from models.tier2.announced import AnnouncedDemand


def test_projects_the_last_window_in_the_producers_load_unit():
    announced = AnnouncedDemand()
    announced.add(1000.0, [("a", 2.0, 1.0, 4.0), ("a", 4.0, 2.0, 6.0), ("b", 9.0, 8.0, 10.0)])
    announced.add(1200.0, [("a", 6.0, 3.0, 9.0)])
    # window 300 s at now=1250 keeps all three of a's requests: 12 demand units in 300 s
    out = announced.predict({"a": 300.0}, {"a": 60.0}, now=1250.0)
    assert set(out) == {"a"}  # b has no scale: not turned into load
    assert out["a"].point == pytest.approx(12.0 / 300.0 * 60.0)
    assert (out["a"].lower, out["a"].upper) == pytest.approx((6.0 / 5, 19.0 / 5))
    # a 100 s window keeps only the latest request
    assert announced.predict({"a": 100.0}, {"a": 60.0}, now=1250.0)["a"].point == pytest.approx(3.6)


def test_silence_is_zero_only_after_something_was_announced():
    announced = AnnouncedDemand(keep_s=600.0)
    assert announced.predict({"a": 300.0}, {"a": 1.0}, now=0.0) == {}  # never heard of: no answer
    announced.add(0.0, [("a", 5.0, 4.0, 6.0)])
    assert announced.predict({"a": 300.0}, {"a": 1.0}, now=1000.0)["a"].point == 0.0
    announced.add(2000.0, [("a", 1.0, 1.0, 1.0)])  # the old entry is dropped after keep_s
    assert announced.producers() == ["a"]


def test_requests_of_one_second_share_a_bucket():
    announced = AnnouncedDemand()
    announced.add(50.2, [("a", 1.0, 0.5, 2.0)] * 10_000)
    announced.add(50.9, [("a", 1.0, 0.5, 2.0)])
    assert len(announced._by_producer["a"]) == 1  # memory bounded by seconds, not requests
    assert announced.predict({"a": 10.0}, {"a": 10.0}, now=51.0)["a"].point == pytest.approx(10_001)
