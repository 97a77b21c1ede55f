"""Streaming detectors: scores in [0, 1], a spike scores above calm, windows follow the sampling
interval, and the window scoring."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from evaluation.anomaly_bench import alarm_stream, score_series, summarise, window_counts
from monitoring import knncad
from monitoring.detectors import (
    KNNCADDetector,
    ResidualDetector,
    RiverDetector,
    ZScoreDetector,
    calibrate_threshold,
    interval_of,
    make_detector,
)


def _series(n: int = 2000, spike_at: int = 1700, freq: str = "5min", seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 50 + 10 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 1, n)
    values[spike_at:spike_at + 3] += 40
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=n, freq=freq))


def _stream(detector, series: pd.Series) -> np.ndarray:
    return np.array([detector.score_learn(float(v)) for v in series])


@pytest.mark.parametrize("name", ["leadtime", "zscore", "hst", "residual"])
def test_scores_in_unit_interval_and_spike_stands_out(name):
    series = _series()
    # leadtime rests after any alert (tested below); here its scores themselves are compared
    kwargs = {"rest_share": 0.0} if name == "leadtime" else {}
    scores = _stream(make_detector(name, interval_s=300, **kwargs), series)
    assert ((scores >= 0) & (scores <= 1)).all()
    threshold = calibrate_threshold(scores[1000:1600])
    assert scores[1700:1704].max() > threshold or name == "hst"  # HST on defaults may miss it
    assert scores[1700:1704].max() > np.median(scores[1000:1600])


def test_leadtime_is_knncad_alerts_on_a_spike_then_rests():
    series = _series()
    assert isinstance(make_detector("leadtime", interval_s=300), KNNCADDetector)
    calm = _stream(KNNCADDetector(interval_s=300, rest_share=0.0), series)
    assert calm[1700] >= KNNCADDetector.alarm  # the first spiked sample alerts at once
    detector = KNNCADDetector(interval_s=300)
    scores = _stream(detector, series)
    alerts = np.flatnonzero(scores >= detector.alarm)
    assert len(alerts) and detector.rest == 115
    first = alerts[0]
    assert (scores[first + 1:first + 1 + detector.rest] == detector.rest_score).all()


def test_leadtime_scores_steady_noise_low():
    """On stationary noise the conformal score is roughly uniform: alerts are rare."""
    rng = np.random.default_rng(1)
    detector = KNNCADDetector(interval_s=300)
    scores = np.array([detector.score_learn(v) for v in rng.normal(10, 1, 4000)])
    live = scores[detector.reference + detector.dim:]
    assert 0.3 < float(np.median(live)) < 0.7
    assert float(np.mean(live >= detector.alarm)) < 0.01


def test_leadtime_scores_a_value_beyond_the_past_range_one():
    detector = KNNCADDetector(interval_s=3600, rest_share=0.0)
    for v in np.random.default_rng(2).uniform(0, 1, detector.reference + detector.dim + 50):
        detector.score_learn(float(v))
    assert detector.score_learn(5.0) == 1.0


def test_windows_scale_with_the_sampling_interval():
    five, hour, minute = (KNNCADDetector(interval_s=s) for s in (300, 3600, 60))
    assert (five.dim, five.reference, five.rest) == (19, 576, 115)  # NAB's knncad on 5-min data
    assert (minute.dim, minute.reference) == (95, 2880)  # same durations, 5x the samples
    assert (hour.dim, hour.reference) == (3, 200)  # the sample floors on a coarse series
    assert [ZScoreDetector(interval_s=s).window for s in (300, 3600, 60)] == [288, 24, 1440]
    assert [ResidualDetector(interval_s=s).season for s in (300, 1800)] == [288, 48]
    hst = RiverDetector(interval_s=1800)
    assert hst._model.steps["HalfSpaceTrees"].window_size == 48
    with pytest.raises(ValueError, match="interval"):
        KNNCADDetector(interval_s=0)


def test_same_durations_at_two_intervals_see_the_same_history():
    """A series sampled every 10 min gives the detector the same time spans as at 5 min."""
    fine = KNNCADDetector(interval_s=300)
    coarse = KNNCADDetector(interval_s=600)
    assert coarse.reference * 2 == fine.reference and coarse.dim * 2 in (fine.dim - 1, fine.dim + 1)


def test_interval_is_read_from_the_start_of_the_series():
    index = pd.date_range("2024-01-01", periods=30, freq="30min").append(
        pd.date_range("2024-01-02", periods=500, freq="1min"))
    assert interval_of(index) == 1800.0


def test_knncad_example_runs():
    assert doctest.testmod(knncad).failed == 0


def test_window_scoring_counts_detection_false_alarm_and_delay():
    series = _series(600, 500)
    scores = np.zeros(len(series))
    scores[100:150] = 0.2  # calibration stretch (probation = first 15 % = 90 samples)
    scores[300] = 0.9  # false alarm outside the window
    scores[502] = 0.9  # detection, 10 minutes after the window opens
    window = [(series.index[500], series.index[520])]
    part = score_series(series, scores, window, probation=0.3)
    assert (part.detected, part.false_alarms, part.delays_min) == (1, 1, [10.0])
    figures = summarise([part])
    assert figures["precision"] == 0.5 and figures["recall"] == 1.0


@pytest.mark.parametrize("floor", [0.0, 0.5, 0.9, 0.99])
def test_vectorised_window_counts_equal_score_series(floor):
    series = _series(3000, 2500, seed=4)
    rng = np.random.default_rng(4)
    scores = rng.uniform(0, 1, len(series)) ** 3
    windows = [(series.index[i], series.index[i + 60]) for i in (700, 1500, 2480)]
    part = score_series(series, scores, windows, floor=floor)
    assert window_counts(alarm_stream(series, scores, windows), floor) == (
        part.windows, part.detected, part.false_alarms)


def test_threshold_never_reads_labels():
    series = _series(600, 500)
    scores = np.linspace(0, 1, len(series))
    a = score_series(series, scores, [(series.index[500], series.index[520])])
    b = score_series(series, scores, [])
    assert a.threshold == b.threshold


def test_knncad_keeps_values_not_windows_and_loads_checkpoints_that_kept_windows():
    """KNN-CAD keeps the values its overlapping windows are cut from. A Tier 3 checkpoint
    pickled when the detector kept the windows themselves (the reference rows, the oldest at
    ``_pos_train``, and the windows waiting to join) loads into the same detector: it scores
    the rest of the series exactly as the detector that never stopped."""
    import copy
    import pickle
    from collections import deque

    import numpy as np

    from monitoring.knncad import KNNCADDetector

    rng = np.random.default_rng(5)
    t = np.arange(2400)
    series = 100 + 30 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 3, t.size)
    series[rng.integers(1500, 2400, 8)] += 90
    for cut in (10, 300, 700, 1500):  # too few values, collecting, before the first join, after
        live = KNNCADDetector(interval_s=300)
        for v in series[:cut]:
            live.score_learn(v)
        P, dim = live.reference, live.dim
        legacy = {k: v for k, v in copy.deepcopy(live.__dict__).items()
                  if k not in ("_values", "_count", "_joined")}
        newest = live._count - dim + 1
        if live._joined:
            legacy["_train"] = live._reference_windows()
            legacy["_pos_train"] = live._joined % P
            legacy["_pending"] = deque(live._window(g) for g in range(live._joined + 1, newest + 1))
        else:
            legacy["_collect"] = [live._window(g) for g in range(1, newest + 1)]
            legacy["_pending"] = deque()
        legacy["_buf"] = deque(live._window(newest) if newest >= 1 else
                               series[:cut], maxlen=dim)
        restored = KNNCADDetector.__new__(KNNCADDetector)
        restored.__setstate__(legacy)
        assert not {"_train", "_pending", "_collect", "_buf"} & set(restored.__dict__)
        again = pickle.loads(pickle.dumps(restored))
        rest = series[cut:]
        expected = [live.score_learn(v) for v in rest]
        assert [restored.score_learn(v) for v in rest] == expected, cut
        assert [again.score_learn(v) for v in rest] == expected, cut
    assert max(expected) >= KNNCADDetector().alarm  # the spikes still raise an alert


def test_knncad_keeps_one_number_per_reference_window_and_loads_checkpoints_with_images():
    """The reference's images under the metric (``P x dim`` numbers, 2.2 MiB at one sample a
    minute) are not kept: a distance needs only each reference window's norm and one
    correlation of the reference's values. The distances are the images' to rounding, and a
    Tier 3 checkpoint pickled with the images loads and scores as the detector that never
    stopped."""
    import pickle

    import numpy as np

    from monitoring.knncad import KNNCADDetector

    rng = np.random.default_rng(9)
    t = np.arange(1600)
    series = 50 + 20 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 2, t.size)
    series[rng.integers(1000, 1600, 6)] += 60
    live = KNNCADDetector(interval_s=300)
    for v in series[:1200]:
        live.score_learn(v)
    assert not hasattr(live, "_z") and live._zn.shape == (live.reference,)
    images = live._reference_windows() @ live._chol  # rows as the reference's rows
    item = live._window(live._count - live.dim + 1)
    z = item @ live._chol
    by_images = np.maximum(live._zn + z @ z - 2.0 * (images @ z), 0.0)
    # in the windows' age order: window J - P + 1 + i sits in row (J + i) % P
    rows = (live._joined + np.arange(live.reference)) % live.reference
    assert np.allclose(live._distances(item), by_images[rows],
                       rtol=1e-9, atol=1e-9 * by_images.max())
    state = dict(live.__dict__, _z=images)  # what a checkpoint held before
    restored = KNNCADDetector.__new__(KNNCADDetector)
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    assert "_z" not in restored.__dict__
    rest = series[1200:]
    assert [restored.score_learn(v) for v in rest] == [live.score_learn(v) for v in rest]
    assert len(pickle.dumps(live)) < 40_000  # values, norms, scores and the metric
