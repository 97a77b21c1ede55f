"""Streaming detectors: scores in [0, 1], a spike scores above calm, and the window scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.bench import score_series, summarise
from monitoring.detectors import calibrate_threshold, make_detector


def _series(n: int = 600, spike_at: int = 500) -> pd.Series:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    values = 50 + 10 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 1, n)
    values[spike_at:spike_at + 3] += 40
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=n, freq="5min"))


@pytest.mark.parametrize("name", ["leadtime", "zscore", "hst"])
def test_scores_in_unit_interval_and_spike_stands_out(name):
    series = _series()
    kwargs = {"season": 48} if name == "leadtime" else {}
    detector = make_detector(name, **kwargs)
    scores = np.array([detector.score_learn(float(v)) for v in series])
    assert ((scores >= 0) & (scores <= 1)).all()
    threshold = calibrate_threshold(scores[100:400])
    assert scores[500:504].max() > threshold or name == "hst"  # HST on defaults may miss it
    assert scores[500:504].max() > np.median(scores[100:400])


def test_window_scoring_counts_detection_false_alarm_and_delay():
    series = _series()
    scores = np.zeros(len(series))
    scores[100:150] = 0.2  # calibration stretch (probation = first 15 % = 90 samples)
    scores[300] = 0.9  # false alarm outside the window
    scores[502] = 0.9  # detection, 10 minutes after the window opens
    window = [(series.index[500], series.index[520])]
    part = score_series(series, scores, window, probation=0.3)
    assert (part.detected, part.false_alarms, part.delays_min) == (1, 1, [10.0])
    figures = summarise([part])
    assert figures["precision"] == 0.5 and figures["recall"] == 1.0


def test_threshold_never_reads_labels():
    series = _series()
    scores = np.linspace(0, 1, len(series))
    a = score_series(series, scores, [(series.index[500], series.index[520])])
    b = score_series(series, scores, [])
    assert a.threshold == b.threshold
