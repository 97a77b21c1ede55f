"""Tier 3's load nowcast: past-only ratios, level-conditioned quantiles, no answer too early."""

from __future__ import annotations

import numpy as np
import pytest

from models.tier3.nowcast import LoadNowcast, NowcastConfig


def feed(nowcast: LoadNowcast, values, step_s: float = 60.0, start: float = 0.0) -> float:
    t = start
    for v in values:
        t += step_s
        nowcast.update(t, float(v))
    return t


def test_no_answer_until_enough_ratios_are_known():
    nowcast = LoadNowcast(NowcastConfig(min_ratios=50, refit_every_s=60))
    feed(nowcast, [10.0] * 40)
    assert nowcast.predict() is None
    feed(nowcast, [10.0] * 40, start=40 * 60.0)
    assert nowcast.predict() is not None


def test_constant_load_predicts_itself():
    nowcast = LoadNowcast(NowcastConfig(refit_every_s=60))
    feed(nowcast, [20.0] * 300)
    answer = nowcast.predict()
    assert answer.point == pytest.approx(20.0) and answer.lower == pytest.approx(20.0)
    assert answer.upper == pytest.approx(20.0)


def test_ratio_is_the_window_peak_over_the_level_at_decision_time():
    config = NowcastConfig(lead_s=120, level_window_s=60, min_ratios=1, refit_every_s=1e9)
    nowcast = LoadNowcast(config)
    feed(nowcast, [10, 10, 30, 10, 10])  # samples at 60..300 s
    # decided after the sample at 60 s (level 10): the window runs to the first sample
    # stamped after the lead time (180 s), so it holds the samples at 120, 180 and 240 s
    _t0, level, _echo, peak = nowcast.ratios.rows()[0]
    assert level == 10 and peak / level == pytest.approx(3.0)
    assert nowcast.known_ratios == 2  # the window of 120 s is complete too (peak 30 / level 10)


def test_bounds_bracket_the_noise_and_cover_about_the_level():
    rng = np.random.default_rng(0)
    nowcast = LoadNowcast(NowcastConfig(lead_s=300, level=80, refit_every_s=3600))
    values = rng.poisson(100, 6 * 1440)
    t = feed(nowcast, values[:5 * 1440])
    hits, total = 0, 0
    answers = []
    for v in values[5 * 1440:]:
        answers.append(nowcast.predict())
        t += 60
        nowcast.update(t, float(v))
    peaks = np.lib.stride_tricks.sliding_window_view(values[5 * 1440:], 6).max(axis=1)
    for answer, peak in zip(answers, peaks):
        total += 1
        hits += answer.lower <= peak <= answer.upper
    assert answers[0].lower < answers[0].point < answers[0].upper
    assert 0.72 <= hits / total <= 0.88  # central 80 % of the window peak, from the past only


def test_quantiles_depend_on_the_level_bucket():
    # relative noise shrinks with load (Poisson): the high-level bucket gets the narrower ratio
    rng = np.random.default_rng(1)
    nowcast = LoadNowcast(NowcastConfig(refit_every_s=3600, level_window_s=600))
    low = rng.poisson(5, 720)
    high = rng.poisson(500, 720)
    feed(nowcast, np.concatenate([low, high, low, high]))
    high_answer = nowcast.predict()
    spread_high = (high_answer.upper - high_answer.lower) / high_answer.point
    feed(nowcast, rng.poisson(5, 30), start=nowcast.last_t)
    low_answer = nowcast.predict()
    spread_low = (low_answer.upper - low_answer.lower) / low_answer.point
    assert spread_low > 2 * spread_high


def test_bad_samples_are_skipped():
    nowcast = LoadNowcast()
    assert nowcast.update(60.0, 5.0)
    assert not nowcast.update(60.0, 6.0)  # not newer
    assert not nowcast.update(120.0, float("nan"))
    with pytest.raises(ValueError):
        NowcastConfig(level=100)


def bursts(days: int, period_min: int, seed: int = 3) -> np.ndarray:
    """Poisson(100) per minute with 7-minute bursts at 4x every ``period_min`` minutes, the
    phase moving by a random walk."""
    rng = np.random.default_rng(seed)
    rate = np.full(days * 1440, 100.0)
    at = float(rng.uniform(0, period_min))
    while at < rate.size:
        rate[int(at):int(at) + 7] *= 4
        at += period_min + rng.normal(0, 2)
    return rng.poisson(rate).astype(float)


def test_a_burst_on_a_period_is_echoed_before_it_shows():
    # a 100-minute period is neither a day nor a week: detected from the stream itself
    values = bursts(4, 100)
    nowcast = LoadNowcast(NowcastConfig(lead_s=300))
    t = feed(nowcast, values[:3 * 1440])
    assert nowcast.period_s == pytest.approx(6000, rel=0.05)
    assert nowcast.base == "echo" and nowcast.losses["echo"] < nowcast.losses["level"]
    covered = total = 0
    rest = values[3 * 1440:]
    for i, v in enumerate(rest[:-6]):
        answer = nowcast.predict()
        t += 60
        nowcast.update(t, float(v))
        peak = rest[i:i + 6].max()
        if peak > 250 and rest[max(0, i - 3):i].max() < 200:  # a burst ahead, none under way
            total += 1
            covered += answer.upper >= 0.8 * peak
    assert total > 10 and covered / total > 0.7


def test_a_stream_that_does_not_repeat_keeps_the_level():
    rng = np.random.default_rng(5)
    nowcast = LoadNowcast(NowcastConfig(lead_s=300))
    feed(nowcast, rng.poisson(100, 3 * 1440))
    assert nowcast.base == "level"


def test_a_checkpoint_with_lists_and_tuples_loads_into_arrays_and_answers_the_same():
    """The nowcast keeps its stream in arrays of floats, its ratios in one array, its open
    windows in :class:`leadtime.window_peak.OpenWindows` and its tables as ``RatioTable``. A
    Tier 3 checkpoint pickled when they were lists, deques of tuples and ``(edges, table)``
    loads into them, and the restored nowcast answers as the one that never stopped."""
    import copy
    import pickle
    from collections import deque

    import numpy as np

    from models.tier3.nowcast import LoadNowcast

    rng = np.random.default_rng(4)
    t = np.arange(4 * 288) * 300.0
    load = 100 + 40 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 4, t.size)
    live = LoadNowcast()
    for at, v in zip(t[:600], load[:600]):
        live.update(at, v)
    legacy = copy.deepcopy(live.__dict__)
    legacy["times"], legacy["values"] = list(live.times), list(live.values)
    legacy["ratios"] = deque(tuple(map(float, row)) for row in live.ratios.rows())
    # open windows as deques of tuples, tables as (edges, rows of per-bucket quantiles)
    pending = legacy.pop("pending")
    legacy["open"] = deque(item for _t0, item in pending.pending)
    legacy["recent"] = deque(pending.loads)
    legacy["tables"] = {base: (t.edges[0], t.factors.T) for base, t in live.tables.items()}
    assert legacy["tables"] and legacy["open"]
    restored = LoadNowcast.__new__(LoadNowcast)
    restored.__setstate__(legacy)
    restored = pickle.loads(pickle.dumps(restored))
    assert type(restored.times) is type(live.times) and len(restored.ratios) == len(live.ratios)
    for at, v in zip(t[600:], load[600:]):
        live.update(at, v)
        restored.update(at, v)
        assert restored.predict() == live.predict()
    assert live.predict() is not None
    for mine, theirs in zip(restored.phase_samples(), live.phase_samples(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
