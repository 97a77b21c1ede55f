"""Sizing: a calibrated quantile of the window peak, from the candidate with measured skill."""

from __future__ import annotations

import numpy as np
import pytest

from loop.sizing import REACTIVE, SizingConfig, WindowPeakCalibrator

LEAD = 300.0


def replay(peaks_of, candidates_of, steps: int, config: SizingConfig, seed: int = 0):
    """Minute passes: each pass records its candidates, then the next load is observed. Returns
    the calibrator and, per pass after the first day, (sizing, true window peak)."""
    rng = np.random.default_rng(seed)
    loads = peaks_of(rng, steps + 10)
    calibrator = WindowPeakCalibrator(LEAD, config)
    out = []
    for i in range(steps):
        t = 60.0 * i
        calibrator.observe(t, float(loads[i]))
        uppers = candidates_of(loads, i, rng)
        sizing = calibrator.sizing(t, uppers)
        calibrator.record(t, uppers)
        true_peak = float(loads[i + 1:i + 6].max())  # the loads known in (t, t + lead]
        if i >= 1440:
            out.append((sizing, true_peak))
    return calibrator, out


def test_the_candidate_that_knows_the_future_sizes_with_a_factor_near_one():
    def loads(rng, n):
        return rng.poisson(100, n).astype(float)

    def candidates(loads, i, rng):  # tier1 knows the window's peak; reactive sees the present
        return {"tier1": float(loads[i + 1:i + 6].max()), REACTIVE: float(loads[i])}

    calibrator, out = replay(loads, candidates, 3 * 1440, SizingConfig(quantile=0.95))
    sources = {s.source for s, _ in out if s is not None}
    assert sources == {"tier1"}
    assert calibrator.factors["tier1"] == pytest.approx(1.0)
    assert calibrator.losses["tier1"] < calibrator.losses[REACTIVE]


def test_without_skill_the_tiers_step_aside_and_the_quantile_covers():
    def loads(rng, n):
        return rng.poisson(100, n).astype(float)

    def candidates(loads, i, rng):  # a tier that answers noise around the mean
        return {"tier1": float(rng.uniform(60, 160)), REACTIVE: float(loads[i])}

    _, out = replay(loads, candidates, 4 * 1440, SizingConfig(quantile=0.9), seed=1)
    sized = [(s, peak) for s, peak in out if s is not None]
    assert {s.source for s, _ in sized} == {REACTIVE}
    coverage = np.mean([peak <= s.value for s, peak in sized])
    assert 0.85 <= coverage <= 0.95  # the 90 % quantile, calibrated from the past only


def test_no_sizing_until_enough_windows_and_bad_values_are_ignored():
    calibrator = WindowPeakCalibrator(LEAD, SizingConfig(min_windows=50))
    for i in range(30):
        calibrator.observe(60.0 * i, 10.0)
        calibrator.record(60.0 * i, {REACTIVE: 10.0, "tier1": float("nan"), "tier3": -1.0})
    assert calibrator.sizing(60.0 * 30, {REACTIVE: 10.0}) is None
    assert all(set(u) == {REACTIVE} for _, u in calibrator.open)
    calibrator.observe(60.0, 99.0)  # older than the newest: skipped
    assert calibrator.loads[-1] == (60.0 * 29, 10.0)
