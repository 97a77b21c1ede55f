"""``/metrics``' per-producer series: their count at each detail level, as documented."""

from __future__ import annotations

from collections import Counter

import pytest

from leadtime.config import DEFAULT_WEIGHTS, producer_config
from leadtime.engine import ProducerState, TierPrediction, decide_all
from monitoring.metrics import AUTO_FULL_UP_TO, DECISION_SERIES, FULL_SERIES, PassCollector


def fleet(n: int):
    producers = {f"p{i}": producer_config(f"p{i}", 10.0) for i in range(n)}
    answer = TierPrediction(40.0, 30.0, 60.0)
    tiers = {pid: {"tier1": answer, "tier2": answer, "tier3": answer} for pid in producers}
    states = {pid: ProducerState(instances=4, current_load=30.0) for pid in producers}
    decided = decide_all(producers, tiers, states, {"pool": list(producers)},
                         weights=DEFAULT_WEIGHTS, threshold=0.0)
    return decided, tiers, {pid: 30.0 for pid in producers}


def series_per_producer(detail: str, n: int) -> Counter:
    decided, tiers, loads = fleet(n)
    collector = PassCollector(detail)
    collector.set(decided, tiers, loads, {}, [], 0.0)
    count: Counter = Counter()
    for family in collector.collect():
        for sample in family.samples:
            if "producer_id" in sample.labels:
                count[sample.labels["producer_id"]] += 1
    return count


@pytest.mark.parametrize(("detail", "n", "each"), [
    ("decisions", 3, DECISION_SERIES), ("full", 3, FULL_SERIES), ("auto", 3, FULL_SERIES),
    ("auto", AUTO_FULL_UP_TO + 1, DECISION_SERIES)])
def test_each_producer_gets_the_documented_number_of_series(detail, n, each):
    count = series_per_producer(detail, n)
    assert len(count) == n and set(count.values()) == {each}


def test_a_bad_detail_level_is_refused_at_start():
    with pytest.raises(ValueError, match="auto, full or decisions"):
        PassCollector("everything")
