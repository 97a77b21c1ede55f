"""The recalibration method: inverse-error weights pick the clearly better tier."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from loop.recalibrate import inverse_error_weights, join_window_peaks, recalibrate
from monitoring.accuracy import combined_error, tier_errors


def joined_case(windows: int = 40, seed: int = 0) -> pd.DataFrame:
    """tier1 within ±2 %, tier2 noisy (±30), tier3 biased +30 %: tier1 is clearly better."""
    rng = np.random.default_rng(seed)
    rows, did = [], 0
    for w in range(windows):
        for p, base in (("a", 100.0), ("b", 400.0)):
            actual = base + 0.2 * base * math.sin(w / 5)
            did += 1
            rows += [(did, p, w * 60.0, "tier1", actual + rng.normal(0, 0.01 * base), actual),
                     (did, p, w * 60.0, "tier2", actual + rng.normal(0, 0.3 * base), actual),
                     (did, p, w * 60.0, "tier3", actual * 1.3, actual)]
    return pd.DataFrame(rows, columns=["decision_id", "producer_id", "window_start", "tier",
                                       "point", "actual"])


def test_recalibration_picks_the_clearly_better_tier():
    result = recalibrate(joined_case())
    assert max(result.weights, key=result.weights.get) == "tier1"
    assert result.weights["tier1"] > 0.8
    assert sum(result.weights.values()) == pytest.approx(1.0)
    assert result.candidate_score < result.current_score  # would have predicted better
    assert result.retrain == []


def test_errors_are_scaled_per_producer():
    errors = tier_errors(joined_case())
    assert errors["tier3"] == pytest.approx(0.3, rel=1e-6)  # +30 % on both producers
    assert errors["tier1"] < errors["tier2"] < errors["tier3"] or errors["tier1"] < errors["tier3"]


def test_tiers_without_evidence_keep_their_weight():
    weights = inverse_error_weights({"tier1": 0.1, "tier3": 0.3})
    assert weights["tier2"] == pytest.approx(0.3)
    assert weights["tier1"] == pytest.approx(0.7 * 0.75) and weights["tier3"] == pytest.approx(0.7 * 0.25)


def test_join_takes_the_window_peak_and_missing_tiers_renormalise():
    preds = pd.DataFrame({"decided_at": [0.0, 0.0, 600.0], "producer_id": ["a", "a", "a"],
                          "lead_s": 300.0, "tier": ["tier1", "tier3", "tier1"],
                          "point": [10.0, 20.0, 10.0]})
    observed = pd.DataFrame({"producer_id": "a", "at": [0.0, 60.0, 120.0, 300.0, 360.0],
                             "load": [50.0, 7.0, 10.0, 4.0, 99.0]})
    joined = join_window_peaks(preds, observed)
    # decision 1's window is (0, 300]: its peak is 10 (the 50 was known at decision time, the
    # 99 after the window); decision 2's window is not over yet: left out
    assert len(joined) == 2 and set(joined["actual"]) == {10.0}
    assert (joined["window_start"] == 300.0).all()
    # tier2 missing: tier1/tier3 renormalised 0.4/0.3 → 4/7, 3/7 → point = 10·4/7 + 20·3/7
    expected = abs(10 * 4 / 7 + 20 * 3 / 7 - 10) / 10
    assert combined_error(joined, {"tier1": 0.4, "tier2": 0.3, "tier3": 0.3}) == pytest.approx(expected)


def test_join_over_a_fleet_reads_each_window_peak_by_its_definition():
    """Many producers, their observations shuffled and gapped, leads of one, five and fifteen
    minutes: every joined peak is the maximum of the loads stamped in the window and the first
    one stamped at or after its end, read one window at a time."""
    rng = np.random.default_rng(3)
    producers = [f"p{i}" for i in range(40)]
    observed = pd.DataFrame({"producer_id": np.repeat(producers, 300),
                             "at": np.tile(np.arange(300) * 60.0, len(producers)),
                             "load": rng.random(300 * len(producers))})
    observed.loc[rng.random(len(observed)) < 0.05, "load"] = np.nan
    observed = observed.sample(frac=1.0, random_state=3).iloc[:-200]
    decided = np.arange(0.0, 300 * 60.0, 300.0)
    preds = pd.DataFrame({"decided_at": np.tile(decided, len(producers) + 1),
                          "producer_id": np.repeat([*producers, "unseen"], len(decided)),
                          "lead_s": rng.choice([60.0, 300.0, 900.0], len(decided) * 41),
                          "tier": "tier1", "point": 1.0})
    joined = join_window_peaks(preds, observed)
    assert "unseen" not in set(joined["producer_id"]) and len(joined) > 0.8 * len(preds)
    for row in joined.sample(300, random_state=0).itertuples():
        seen = observed[observed["producer_id"] == row.producer_id].sort_values("at")
        at, load = seen["at"].to_numpy(), seen["load"].to_numpy()
        end = row.decided_at + row.lead_s
        inside = load[(at > row.decided_at) & (at < end)]
        covering = load[at >= end][:1]  # the first sample at or after the end covers it
        assert row.actual == np.nanmax(np.concatenate([inside, covering]))


def test_drift_flags_a_tier_for_retraining():
    case = joined_case()
    late = case["window_start"] >= case["window_start"].quantile(0.8)
    case.loc[late & (case["tier"] == "tier1"), "point"] *= 1.5
    assert "tier1" in recalibrate(case).retrain


def test_nothing_joined_is_an_error():
    with pytest.raises(ValueError, match="no logged prediction"):
        recalibrate(joined_case().iloc[0:0])


def test_great_expectations_refuses_bad_weights_naming_the_problem():
    from leadtime.validation import TraceError
    from loop.weights_registry import validate_weights_gx

    validate_weights_gx({"tier1": 0.5, "tier2": 0.2, "tier3": 0.3})
    with pytest.raises(TraceError, match="negative"):
        validate_weights_gx({"tier1": 1.2, "tier2": -0.2, "tier3": 0.0})
    with pytest.raises(TraceError, match="sum to 1"):
        validate_weights_gx({"tier1": 0.5, "tier2": 0.2, "tier3": 0.2})
    with pytest.raises(TraceError, match="finite"):
        validate_weights_gx({"tier1": float("nan"), "tier2": 0.5, "tier3": 0.5})
    with pytest.raises(TraceError, match="tier1, tier2, tier3"):
        validate_weights_gx({"tier9": 1.0})
