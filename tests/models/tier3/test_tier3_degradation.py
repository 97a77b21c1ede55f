"""The generated degradation scenario: reproducible, with the ground truth it promises."""

from __future__ import annotations

import pytest

from models.tier3.degradation import ScenarioParams, generate

SMALL = ScenarioParams(consumers_per_group=4, producers=4, producers_per_group=2, hours=3,
                       warmup_hours=1, incidents=2, mean_interval_s=120, blips_per_hour=2)


def test_reproducible_and_ordered():
    a, b = generate(SMALL), generate(SMALL)
    assert a.events == b.events and len(a.events) > 1000
    times = [e["timestamp"] for e in a.events]
    assert times == sorted(times)


def test_incidents_have_first_wave_then_the_rest_of_the_group():
    scenario = generate(SMALL)
    assert len(scenario.incidents) == 2
    for inc in scenario.incidents:
        assert len(inc.first_wave) >= 2
        assert all(scenario.groups[c] == inc.group for c in inc.onsets)
        assert inc.rest_first_onset > inc.t0
        slow = [e["latency_ms"] for e in scenario.events
                if e["producer_id"] == inc.producer_id and e["consumer_id"] == inc.first_wave[0]
                and inc.t0 <= e["timestamp"] < inc.rest_first_onset]
        calm = [e["latency_ms"] for e in scenario.events
                if e["producer_id"] == inc.producer_id and e["consumer_id"] == inc.first_wave[0]
                and e["timestamp"] < inc.t0]
        if slow and calm:
            assert sorted(slow)[len(slow) // 2] > 1.5 * sorted(calm)[len(calm) // 2]


@pytest.mark.slow
def test_similarity_bench_flags_before_the_rest_of_the_group():
    from evaluation.similarity_bench import degradation_bench

    methods = degradation_bench()["methods"]
    ours = methods["leadtime"]
    assert ours["detected"] >= 6 and ours["flagged_before_rest_hit"] >= 5
    assert ours["false_flags"] < methods["two_hit"]["false_flags"]


def test_bench_over_several_seeds_reports_each_and_the_summary():
    from evaluation.similarity_bench import degradation_seeds

    document = degradation_seeds([1, 2], SMALL)
    assert document["seeds"] == [1, 2] and set(document["per_seed"]) == {"1", "2"}
    ours = document["summary"]["leadtime"]
    assert set(ours) >= {"detected", "flagged_before_rest_hit", "false_flags"}
    assert ours["false_flags"]["total"] == sum(
        m["leadtime"]["false_flags"] for m in document["per_seed"].values())
