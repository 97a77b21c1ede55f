"""Online interval recalibration: coverage held at 80 % under drift, outcomes used only once
known, late outcomes harmless, and the in-flight ledger scoring each finished request against
its interval as calibrated."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.tier2.inflight import InFlight
from models.tier2.online_calibration import WINDOW, OnlineCalibration, recalibrated_intervals, widen


def drifting(n: int = 6000, seed: int = 0):
    """Run times whose spread doubles half-way, and the interval calibrated before the drift:
    the 80 % interval of log1p(y) ~ N(3, 0.5) around the median, held fixed."""
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n) < n // 2, 0.5, 1.0)
    y = np.expm1(3.0 + sigma * rng.standard_normal(n))
    half = 1.2816 * 0.5  # the 80 % half-width before the drift
    point = np.full(n, math.expm1(3.0))
    return y, point, np.full(n, math.expm1(3.0 - half)), np.full(n, math.expm1(3.0 + half))


@pytest.mark.parametrize("delay_s", [0.0, 3600.0])  # outcomes at once, or 60 requests late
def test_recalibration_holds_coverage_where_the_calibrated_interval_loses_it(delay_s):
    y, point, lower, upper = drifting()
    arrivals = np.arange(y.size, dtype=float) * 60.0
    known = arrivals + y + delay_s  # each outcome known when the request finishes (or later)
    lo, hi = recalibrated_intervals(arrivals.tolist(), known.tolist(), ["k"] * y.size, y.tolist(),
                               point.tolist(), lower.tolist(), upper.tolist())
    late = slice(y.size // 2 + 1000, None)  # once the drift has filled the window
    static = np.mean((y[late] >= lower[late]) & (y[late] <= upper[late]))
    tracked = np.mean((y[late] >= np.array(lo)[late]) & (y[late] <= np.array(hi)[late]))
    assert static < 0.55  # the calibration no longer holds
    assert 0.76 <= tracked <= 0.84
    before = slice(WINDOW + 200, y.size // 2)  # no drift: the width stays the calibrated one
    assert np.median(np.log1p(hi[before]) - np.log1p(upper[before])) == pytest.approx(0, abs=0.1)


def test_no_outcome_is_used_before_it_is_known():
    """Every request arrives before any outcome is known: all are served as calibrated."""
    y, point, lower, upper = drifting(200)
    arrivals = np.arange(200, dtype=float)
    lo, hi = recalibrated_intervals(arrivals.tolist(), [1e9] * 200, ["k"] * 200, y.tolist(),
                               point.tolist(), lower.tolist(), upper.tolist())
    assert np.allclose(lo, lower) and np.allclose(hi, upper)


def test_keys_are_tracked_apart():
    calibration = OnlineCalibration(min_outcomes=10)
    for _ in range(10):
        calibration.update("0|a", 100.0, 1.0, 2.0)  # far above
        calibration.update("1|a", 1.5, 1.0, 2.0)  # inside
    assert calibration.delta("0|a") == pytest.approx(math.log1p(100.0) - math.log1p(2.0))
    assert calibration.delta("1|a") < 0  # narrower than calibrated
    assert calibration.outcomes()["0|a"] == {"outcomes": 10, "coverage": 0.0,
                                         "delta": calibration.delta("0|a")}


def test_narrowing_never_crosses_the_point():
    assert widen(5.0, 4.0, 6.0, -10.0) == (5.0, 5.0, 5.0)
    assert widen(5.0, 0.0, 6.0, 1.0)[1] == 0.0


@pytest.mark.parametrize("coverage, window, least", [(0.0, 500, 100), (1.0, 500, 100),
                                                      (0.8, 50, 100), (0.8, 500, 0)])
def test_bad_settings_are_refused(coverage, window, least):
    with pytest.raises(ValueError):
        OnlineCalibration(coverage, window, least)


def test_the_ledger_scores_each_finished_request_against_its_interval_as_calibrated():
    calibration = OnlineCalibration(min_outcomes=1)
    ledger = InFlight(calibration=calibration)
    ledger.announce("p", 0.0, (60.0, 30.0, 120.0), job="inside", key="1|a")
    ledger.announce("p", 0.0, (60.0, 30.0, 120.0), job="outside", key="1|a")
    ledger.announce("p", 0.0, (60.0, 30.0, 120.0), job="queued", key="1|a", queued=True)
    ledger.announce("p", 0.0, (60.0, 30.0, 120.0), job="untold", key="1|a")
    assert ledger.finished("p", "inside", at_s=90.0)
    assert ledger.finished("p", "outside", at_s=500.0)
    assert ledger.finished("p", "queued", at_s=90.0)  # its start was never told: not scored
    assert ledger.finished("p", "untold")  # no finish time: not scored
    assert calibration.outcomes()["1|a"]["outcomes"] == 2
    assert calibration.outcomes()["1|a"]["coverage"] == 0.5
    # announced while widened: the score is against the interval before the widening
    widened = calibration.delta("1|a")
    assert widened == pytest.approx(math.log1p(500.0) - math.log1p(120.0))
    served = widen(60.0, 30.0, 120.0, widened)
    ledger.announce("p", 0.0, served, job="next", key="1|a")
    assert ledger.finished("p", "next", at_s=400.0)  # inside what it was served
    assert calibration.outcomes()["1|a"]["coverage"] == pytest.approx(2 / 3)
    assert calibration.delta("1|a") == pytest.approx(widened)  # 400 s missed the calibrated one


def test_the_widening_is_the_conformal_quantile_of_the_last_window_scores():
    rng = np.random.default_rng(1)
    calibration = OnlineCalibration(window=50, min_outcomes=10)
    values = np.expm1(rng.uniform(0, 4, 300))
    scores = []
    for y in values:
        calibration.update("k", float(y), 2.0, 10.0)
        scores.append(max(math.log1p(2.0) - math.log1p(y), math.log1p(y) - math.log1p(10.0)))
        last = sorted(scores[-50:])
        if len(last) >= 10:
            k = min(len(last), math.ceil((len(last) + 1) * 0.8 - 1e-9))
            assert calibration.delta("k") == pytest.approx(last[k - 1])
