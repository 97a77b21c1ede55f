"""The NAB score reproduces NAB's published results, and agrees with NAB's own sweeper loop.

On the shared copy of NAB's published outputs (``numenta``, ``windowedGaussian``, ``null`` on
``realAWSCloudwatch`` and ``realKnownCause``), scored at NAB's thresholds: every per-file Score,
TP, TN, FP, FN and Total_Count, and every row of the ``S(t)_<profile>`` columns. Hand-made cases
(never skipped) check the sigmoid, the optimiser, the normalisation and the vectorised sweep
against a literal transcription of NAB's ``Sweeper`` (``nab/sweeper.py``).
"""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring import nab_score
from monitoring.nab_score import (
    PROFILE_NAMES,
    PROFILES,
    load_profiles,
    load_windows,
    nab_scores,
    normalized_score,
    optimize_threshold,
    scaled_sigmoid,
    score_by_threshold,
    score_contributions,
    score_file,
    sweep_file,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REFERENCE = SHARED_DATA / "anomaly" / "nab-reference"
WINDOWS = SHARED_DATA / "anomaly" / "nab" / "windows.json"
DETECTORS = ("numenta", "windowedGaussian", "null")
TOLERANCE = 1e-6


# --- NAB's published results ------------------------------------------------------------------

@pytest.fixture(scope="module")
def published():
    """NAB's published outputs, profiles, thresholds and windows; skip when the copy is absent."""
    if not (REFERENCE / "thresholds.json").is_file() or not WINDOWS.is_file():
        pytest.skip(f"NAB's published results not found under {SHARED_DATA / 'anomaly'} "
                    "(nab-reference/ and nab/windows.json)")
    outputs = {}
    for detector in DETECTORS:
        outputs[detector] = {
            f"{path.parent.name}/{path.name.removeprefix(detector + '_')}": pd.read_csv(path)
            for path in sorted((REFERENCE / detector).glob("*/*.csv"))
        }
    return {
        "outputs": outputs,
        "profiles": load_profiles(REFERENCE / "profiles.json"),
        "thresholds": json.loads((REFERENCE / "thresholds.json").read_text()),
        "windows": load_windows(WINDOWS),
    }


def _published_rows(detector: str, profile: str) -> pd.DataFrame:
    rows = pd.read_csv(REFERENCE / detector / f"{detector}_{profile}_scores.csv")
    return rows[rows["File"].notna() & (rows["File"] != "Totals")].reset_index(drop=True)


def test_profiles_file_is_the_built_in_table(published):
    assert published["profiles"] == PROFILES
    assert set(PROFILE_NAMES) == set(PROFILES)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("detector", DETECTORS)
def test_every_published_file_row_is_reproduced(published, detector, profile):
    threshold = published["thresholds"][detector][profile]["threshold"]
    cost = published["profiles"][profile]
    rows = _published_rows(detector, profile)
    assert len(rows) == len(published["outputs"][detector]) == 24
    worst = 0.0
    for row in rows.itertuples():
        output = published["outputs"][detector][row.File]
        mine = score_file(output["timestamp"], output["anomaly_score"],
                          published["windows"][row.File], threshold, cost)
        assert (mine.tp, mine.tn, mine.fp, mine.fn, mine.total_count) == (
            row.TP, row.TN, row.FP, row.FN, row.Total_Count), row.File
        worst = max(worst, abs(mine.score - row.Score))
    assert worst < TOLERANCE


@pytest.mark.parametrize("detector", DETECTORS)
def test_published_per_row_scores_are_reproduced(published, detector):
    checked = 0
    for name, output in published["outputs"][detector].items():
        for profile, cost in published["profiles"].items():
            column = f"S(t)_{profile}"
            if column not in output:
                continue
            sweep = sweep_file(output["timestamp"], output["anomaly_score"],
                               published["windows"][name], cost)
            threshold = published["thresholds"][detector][profile]["threshold"]
            shares = score_contributions(sweep, threshold)
            np.testing.assert_allclose(shares, output[column].to_numpy(), rtol=0, atol=TOLERANCE,
                                       err_msg=f"{name} {column}")
            checked += 1
    assert checked == 3 * len(published["outputs"][detector])


def test_null_detector_normalises_to_zero_and_optimiser_never_loses(published):
    """At NAB's thresholds the scores are those of the published rows; re-optimising on this
    subset of NAB can only raise them."""
    windows = published["windows"]
    results = {detector: nab_scores(published["outputs"][detector], windows,
                                    published["profiles"])
               for detector in DETECTORS}
    n_windows = sum(len(windows[name]) for name in published["outputs"]["null"])
    for profile, cost in published["profiles"].items():
        null_raw = _published_rows("null", profile)["Score"].sum()
        perfect = cost.tp_weight * n_windows
        assert results["null"][profile].normalized_score == pytest.approx(0.0, abs=1e-9)
        for detector in ("numenta", "windowedGaussian"):
            result = results[detector][profile]
            assert result.null_score == pytest.approx(null_raw, abs=1e-9)
            assert result.perfect_score == perfect
            at_nab_threshold = normalized_score(_published_rows(detector, profile)["Score"].sum(),
                                                null_raw, perfect)
            assert result.normalized_score >= at_nab_threshold - 1e-9
            assert result.files["Score"].sum() == pytest.approx(result.raw_score, abs=1e-9)


# --- hand-made cases (never skipped) -----------------------------------------------------------

def test_module_examples_run():
    assert doctest.testmod(nab_score).failed == 0


def test_scaled_sigmoid_matches_nab_formula():
    for x in (-1.0, -0.5, -0.01, 0.0, 0.4, 1.0, 2.99, 3.0):
        assert float(scaled_sigmoid(x)) == pytest.approx(2 / (1 + math.exp(5 * x)) - 1, abs=1e-15)
    assert float(scaled_sigmoid(3.0001)) == -1.0 and float(scaled_sigmoid(np.inf)) == -1.0


def _toy_set():
    """File A: one window (rows 8-11), a detection at row 9 (0.8), a later one at row 10 (0.75)
    and a false alarm at row 15 (0.9). File B: no window, a false alarm at row 12 (0.7)."""
    stamps = pd.date_range("2024-01-01", periods=20, freq="5min")
    a = np.full(20, 0.1)
    a[[9, 10, 15]] = [0.8, 0.75, 0.9]
    b = np.full(20, 0.1)
    b[12] = 0.7
    return {"toy/a.csv": (stamps, a, [(stamps[8], stamps[11])]), "toy/b.csv": (stamps, b, [])}


def test_optimiser_on_a_tiny_set():
    standard = PROFILES["standard"]
    true_positive = (2 / (1 + math.exp(-5 * 0.75)) - 1) / (2 / (1 + math.exp(-5)) - 1)
    late_alarm = 0.11 * (2 / (1 + math.exp(5 * 4 / 3)) - 1)  # 4 rows past a 4-row window
    curve = score_by_threshold(_toy_set(), standard)
    assert curve["threshold"].tolist() == [1.1, 0.9, 0.8, 0.75, 0.7, 0.1]
    assert curve["score"].iloc[:5].tolist() == pytest.approx(
        [-1.0, -1.0 + late_alarm, true_positive + late_alarm, true_positive + late_alarm,
         true_positive + late_alarm - 0.11])
    # 0.8 and 0.75 tie (a later detection in a detected window adds nothing): the higher wins.
    threshold, score = optimize_threshold(_toy_set(), standard)
    assert threshold == 0.8 and score == pytest.approx(true_positive + late_alarm)
    a = score_file(*_toy_set()["toy/a.csv"], 0.8, standard)
    assert (a.tp, a.tn, a.fp, a.fn) == (1, 12, 1, 3)  # rows 0-2 are probationary


def test_normalisation_puts_null_at_zero_and_perfect_at_hundred():
    assert normalized_score(-7.0, -7.0, 3.0) == 0.0
    assert normalized_score(3.0, -7.0, 3.0) == 100.0
    assert normalized_score(-2.0, -7.0, 3.0) == 50.0
    toy = _toy_set()
    perfect = {name: (stamps, np.zeros(len(stamps)), windows)
               for name, (stamps, _, windows) in toy.items()}
    perfect["toy/a.csv"][1][8] = 1.0  # the first row of the only window
    detections = {name: pd.DataFrame({"timestamp": s, "anomaly_score": v})
                  for name, (s, v, _) in perfect.items()}
    windows = {name: w for name, (_, _, w) in toy.items()}
    for result in nab_scores(detections, windows).values():
        assert result.normalized_score == pytest.approx(100.0)
    constant = {name: (s, np.full(len(s), 0.5)) for name, (s, _, _) in toy.items()}
    for profile, result in nab_scores(constant, windows).items():
        assert result.normalized_score == 0.0
        assert result.null_score == -PROFILES[profile].fn_weight
    scores = nab_score.benchmark_nab_scores(detections, windows)
    assert set(scores) == set(PROFILE_NAMES)


def test_window_limits_must_be_timestamps_of_the_file():
    stamps = pd.date_range("2024-01-01", periods=10, freq="5min")
    with pytest.raises(ValueError, match="not a timestamp"):
        score_file(stamps, np.zeros(10), [(stamps[2] + pd.Timedelta("1min"), stamps[5])], 0.5,
                   PROFILES["standard"])


# --- a literal transcription of NAB's Sweeper, as an oracle for the vectorised version ---------

def _nab_scaled_sigmoid(x):
    return -1.0 if x > 3.0 else 2 * (1 / (1 + math.exp(-(-5 * x)))) - 1.0


def _nab_sweep(timestamps, scores, windows, cost, name, probation=0.15):
    """``Sweeper.calcSweepScore``, line for line."""
    timestamps, windows = list(timestamps), list(windows)
    points, max_tp = [], _nab_scaled_sigmoid(-1.0)
    probationary = min(math.floor(probation * len(timestamps)), probation * 5000)
    cur = cur_name = cur_width = cur_right = prev_width = prev_right = None
    for i, (t, score) in enumerate(zip(timestamps, scores)):
        if windows and t == windows[0][0]:
            cur = windows.pop(0)
            cur_name = f"{name}|{cur[0]}"
            cur_right = timestamps.index(cur[1])
            cur_width = float(cur_right - timestamps.index(cur[0]) + 1)
        if cur is not None:
            value = _nab_scaled_sigmoid(-(cur_right - i + 1) / cur_width) * cost.tp_weight / max_tp
        elif prev_right is None:
            value = -1.0 * cost.fp_weight
        else:
            value = _nab_scaled_sigmoid(abs(prev_right - i) / (prev_width - 1)) * cost.fp_weight
        points.append((score, value, cur_name if i >= probationary else "probationary"))
        if cur is not None and t == cur[1]:
            prev_right, prev_width = i, cur_width
            cur = cur_name = cur_width = cur_right = None
    return points


def _nab_score_by_threshold(points, cost):
    """``Sweeper.calcScoreByThreshold``, line for line."""
    rows = sorted([p for p in points if p[2] != "probationary"], key=lambda p: p[0], reverse=True)
    parts = {"fp": 0}
    for _, _, window in rows:
        if window is not None:
            parts[window] = -cost.fn_weight
    curve, threshold = [], 1.1
    tn = sum(window is None for _, _, window in rows)
    fn, tp, fp = len(rows) - tn, 0, 0
    for score, value, window in rows:
        if score != threshold:
            curve.append((threshold, sum(parts.values()), tp, tn, fp, fn))
            threshold = score
        if window is not None:
            tp, fn = tp + 1, fn - 1
            parts[window] = max(parts[window], value)
        else:
            fp, tn = fp + 1, tn - 1
            parts["fp"] += value
    curve.append((threshold, sum(parts.values()), tp, tn, fp, fn))
    return curve


def _random_file(rng, n_rows, n_windows, repeat_a_timestamp=False):
    stamps = list(pd.date_range("2024-03-01", periods=n_rows, freq="1h"))
    if repeat_a_timestamp:  # like NAB's files at a daylight-saving change
        stamps[n_rows // 3] = stamps[n_rows // 3 - 1]
    edges = np.sort(rng.choice(np.arange(2, n_rows - 1), size=2 * n_windows, replace=False))
    windows = [(stamps[edges[2 * k]], stamps[edges[2 * k + 1]]) for k in range(n_windows)]
    scores = np.round(rng.random(n_rows), 1)  # rounded: many ties between thresholds
    return stamps, scores, windows


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_vectorised_sweep_equals_nab_sweeper_loop(profile):
    cost = PROFILES[profile]
    rng = np.random.default_rng(7)
    files = {f"f{k}.csv": _random_file(rng, int(rng.integers(30, 120)), int(rng.integers(0, 4)),
                                        repeat_a_timestamp=k == 2)
             for k in range(6)}
    pooled = []
    for name, (stamps, scores, windows) in files.items():
        points = _nab_sweep(stamps, scores, windows, cost, name)
        sweep = sweep_file(stamps, scores, windows, cost)
        np.testing.assert_allclose(sweep.sweep_scores, [p[1] for p in points], rtol=0, atol=1e-12)
        for threshold, score, tp, tn, fp, fn in _nab_score_by_threshold(points, cost):
            mine = score_file(stamps, scores, windows, threshold, cost)
            assert (mine.tp, mine.tn, mine.fp, mine.fn) == (tp, tn, fp, fn)
            assert mine.score == pytest.approx(score, abs=1e-12)
        pooled.extend(points)
    expected = pd.DataFrame(_nab_score_by_threshold(pooled, cost),
                            columns=["threshold", "score", "tp", "tn", "fp", "fn"])
    curve = score_by_threshold(files, cost)
    pd.testing.assert_frame_equal(curve, expected, check_dtype=False, atol=1e-12, rtol=0)
    best = max(range(len(expected)), key=lambda i: (expected["score"][i], -i))
    assert optimize_threshold(files, cost) == pytest.approx(
        (expected["threshold"][best], expected["score"][best]))


def test_repeated_timestamps_follow_nab_row_order():
    """NAB walks rows, not time: a repeated timestamp inside a window, and a window end that
    repeats (the window ends at its first occurrence), score as NAB's sweeper scores them."""
    stamps = list(pd.date_range("2024-03-01", periods=40, freq="1h"))
    stamps[20] = stamps[19]
    stamps[34] = stamps[33]
    windows = [(stamps[15], stamps[25]), (stamps[27], stamps[33])]
    scores = np.round(np.random.default_rng(3).random(40), 1)
    cost = PROFILES["reward_low_FN_rate"]
    points = _nab_sweep(stamps, scores, windows, cost, "dst.csv")
    sweep = sweep_file(stamps, scores, windows, cost)
    np.testing.assert_allclose(sweep.sweep_scores, [p[1] for p in points], rtol=0, atol=1e-12)
    assert sweep.window_of_row[33] == 1 and sweep.window_of_row[34] == -1
    for threshold, score, tp, tn, fp, fn in _nab_score_by_threshold(points, cost):
        mine = score_file(stamps, scores, windows, threshold, cost)
        assert (mine.score, mine.tp, mine.tn, mine.fp, mine.fn) == pytest.approx(
            (score, tp, tn, fp, fn), abs=1e-12)
