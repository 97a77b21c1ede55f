"""Sizing: a calibrated quantile of the window peak, from the candidate with measured skill,
at any sampling interval (finer or coarser than the lead time)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loop.sizing import REACTIVE, SizingConfig, WindowPeakCalibrator

LEAD = 300.0
INTERVALS = (60.0, 300.0, 1800.0, 3600.0)  # 1, 5, 30 and 60 minutes


def covered(step: float) -> int:
    """Samples covering a decision's window at this interval (lead + one decision interval):
    the simulator's spin-up in whole intervals, plus the interval the decision is taken in."""
    return math.ceil(LEAD / step - 1e-9) + 1


def replay(peaks_of, candidates_of, days: float, config: SizingConfig, step: float = 60.0,
           seed: int = 0):
    """Passes every ``step`` seconds: each pass observes the newest load, records its
    candidates, then the next load comes. Returns the calibrator and, per pass after the first
    day, (sizing, true window peak)."""
    rng = np.random.default_rng(seed)
    steps = int(days * 86400 / step)
    width = covered(step)
    loads = peaks_of(rng, steps + width + 1)
    calibrator = WindowPeakCalibrator(LEAD + step, config)
    out = []
    for i in range(steps):
        t = step * i
        calibrator.observe(t, float(loads[i]))
        uppers = candidates_of(loads, i, rng, width)
        sizing = calibrator.sizing(t, uppers)
        calibrator.record(t, uppers)
        true_peak = float(loads[i + 1:i + 1 + width].max())  # the loads that cover the window
        if t >= 86400:
            out.append((sizing, true_peak))
    return calibrator, out


def poisson(rng, n):
    return rng.poisson(100, n).astype(float)


@pytest.mark.parametrize("step", INTERVALS)
def test_the_candidate_that_knows_the_future_sizes_with_a_factor_near_one(step):
    def candidates(loads, i, rng, width):  # tier1 knows the window's peak; reactive the present
        return {"tier1": float(loads[i + 1:i + 1 + width].max()), REACTIVE: float(loads[i])}

    days = 3 if step < 1800 else 12
    calibrator, out = replay(poisson, candidates, days, SizingConfig(quantile=0.95), step)
    sources = {s.source for s, _ in out if s is not None}
    assert sources == {"tier1"}
    assert calibrator.factors["tier1"] == pytest.approx(1.0)
    assert calibrator.losses["tier1"] < calibrator.losses[REACTIVE]


@pytest.mark.parametrize("step", INTERVALS)
def test_without_skill_the_tiers_step_aside_and_the_quantile_covers(step):
    def candidates(loads, i, rng, width):  # a tier that answers noise around the mean
        return {"tier1": float(rng.uniform(60, 160)), REACTIVE: float(loads[i])}

    days = 4 if step < 1800 else 40
    _, out = replay(poisson, candidates, days, SizingConfig(quantile=0.9), step, seed=1)
    sized = [(s, peak) for s, peak in out if s is not None]
    assert len(sized) > 0.9 * len(out)  # calibrated at every interval, coarse ones included
    if step < 1800:  # the present tells about the next minutes: the noisy tier steps aside
        assert {s.source for s, _ in sized} == {REACTIVE}
    # (at 30 and 60 minutes each window is one sample, independent of the last one: neither
    # candidate has skill, and either may size; the quantile must hold all the same)
    coverage = np.mean([peak <= s.value for s, peak in sized])
    assert 0.85 <= coverage <= 0.95  # the 90 % quantile, calibrated from the past only


@pytest.mark.parametrize("step", INTERVALS)
def test_calibration_waits_a_duration_floored_in_windows(step):
    config = SizingConfig(min_history_s=7200.0, min_windows=30, refit_every_s=0.0)
    calibrator = WindowPeakCalibrator(LEAD + step, config)
    first_sized = None
    for i in range(400):
        t = step * i
        calibrator.observe(t, 10.0)
        if first_sized is None and calibrator.sizing(t, {REACTIVE: 10.0}) is not None:
            first_sized = t
        calibrator.record(t, {REACTIVE: 10.0})
    assert first_sized is not None
    windows = first_sized / step - covered(step)  # windows closed by then
    assert windows >= 30 - 1 and first_sized >= 7200.0
    assert first_sized <= max(7200.0, 30 * step) + (covered(step) + 2) * step


def test_a_coarse_history_keeps_its_floor_of_windows():
    config = SizingConfig(history_s=86400.0, history_min_windows=150)
    calibrator = WindowPeakCalibrator(LEAD + 3600.0, config)
    for i in range(400):  # hourly: 400 windows, a day is only 24
        calibrator.observe(3600.0 * i, 10.0)
        calibrator.record(3600.0 * i, {REACTIVE: 10.0})
    assert len(calibrator.closed) == 150


def test_no_sizing_until_enough_windows_and_bad_values_are_ignored():
    calibrator = WindowPeakCalibrator(LEAD + 60.0, SizingConfig(min_windows=50, min_history_s=0))
    for i in range(30):
        calibrator.observe(60.0 * i, 10.0)
        calibrator.record(60.0 * i, {REACTIVE: 10.0, "tier1": float("nan"), "tier3": -1.0})
    assert calibrator.sizing(60.0 * 30, {REACTIVE: 10.0}) is None
    assert all(set(u) == {REACTIVE} for _, u in calibrator.open)
    calibrator.observe(60.0, 99.0)  # older than the newest: skipped
    assert calibrator.loads[-1] == (60.0 * 29, 10.0)
