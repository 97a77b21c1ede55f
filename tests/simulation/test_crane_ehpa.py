"""Crane's EHPA: the DSP predictor and the HPA on the predicted metric, on hand-checked signals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sim_fixtures import daily_trace

from simulation.config import SimConfig, derive_config
from simulation.crane_ehpa import (
    DAY_S,
    DEFAULT_ESTIMATORS,
    WEEK_S,
    CraneEHPA,
    FFTEstimator,
    Forecast,
    MaxValueEstimator,
    best_estimator,
    dsp_forecast,
    external_per_pod_replicas,
    is_periodic,
    minute_grid,
    prediction_error,
    preprocess,
)
from simulation.generate import synthetic_load
from simulation.policies import HPA, Observation
from simulation.simulator import simulate

DAY = 1440  # minutes
WEEK = 7 * DAY


def cfg(**kw) -> SimConfig:
    base = {
        "interval_s": 60.0,
        "capacity_per_instance": 100.0,
        "target_utilisation": 0.7,
        "min_instances": 1,
        "max_instances": 200,
        "spinup_s": 120.0,
        "warmup_s": 0.0,
    }
    base.update(kw)
    return SimConfig(**base)


def minute_series(values: np.ndarray, freq: str = "1min") -> pd.Series:
    index = pd.date_range("2024-01-01", periods=values.size, freq=freq)
    return pd.Series(values, index=index, name="svc")


def sine(minutes: int, period: int = DAY, level: float = 100.0, amplitude: float = 50.0):
    return level + amplitude * np.sin(2 * np.pi * np.arange(minutes) / period)


# --- periodicity -----------------------------------------------------------------------------


def test_a_clean_daily_sine_is_periodic_and_white_noise_is_not():
    assert is_periodic(sine(7 * DAY), DAY)
    noise = np.random.default_rng(0).normal(100, 10, 7 * DAY)
    assert not is_periodic(noise, DAY)
    # one day is not enough: Crane asks for at least two whole cycles
    assert not is_periodic(sine(DAY + 600), DAY)


def test_white_noise_passes_the_daily_check_about_one_time_in_seven():
    # Crane's test only asks the daily line to beat the 6 slower ones of a 7-day window, so pure
    # noise passes with probability 1/7: a property of the upstream test, pinned here
    hits = [
        is_periodic(np.random.default_rng(seed).normal(100, 10, 7 * DAY), DAY)
        for seed in range(300)
    ]
    assert 0.08 < np.mean(hits) < 0.25


def test_a_weekly_only_pattern_is_found_at_the_weekly_check():
    weekly = sine(14 * DAY + 60, period=WEEK)
    assert not is_periodic(weekly[-14 * DAY :], DAY)  # the week's line beats the daily one
    assert is_periodic(weekly[-14 * DAY :], WEEK)
    found = dsp_forecast(weekly, 0)
    assert found.cycle_s == WEEK_S
    assert found.values.size == WEEK  # one cycle predicted, from the minute after the history
    assert found.start == weekly.size
    # with Crane's default 7-day history the weekly check can never pass (two weeks needed)
    assert dsp_forecast(weekly[-(7 * DAY + 60) :], 0).cycle_s == 0
    # ... and the daily cycle is tested first: when both pass, the daily one is used
    both = weekly + 80 * np.sin(2 * np.pi * np.arange(weekly.size) / DAY)
    assert is_periodic(both[-14 * DAY :], DAY) and is_periodic(both[-14 * DAY :], WEEK)
    assert dsp_forecast(both, 0).cycle_s == DAY_S


def test_the_policy_uses_the_weekly_cycle_when_given_two_weeks_of_history():
    series = minute_series(sine(16 * DAY, period=WEEK))
    step = 15 * DAY
    obs = Observation(step, step * 60.0, float(series.iloc[step - 1]), 2, 2, 0)
    short = CraneEHPA(cfg(), series)
    short.decide(obs)
    assert short.refreshes[0].cycle_s == 0 and short.predictive_decisions == 0
    long = CraneEHPA(cfg(), series, history_s=14 * DAY_S)
    long.decide(obs)
    assert long.refreshes[0].cycle_s == WEEK_S and long.predictive_decisions == 1


# --- estimators and their error --------------------------------------------------------------


def test_prediction_error_amplifies_under_prediction_and_falls_back_to_mae():
    actual = np.array([100.0, 100.0])
    # over by 10 %: 0.1; under by 10 %: -ln(0.9) / ln(1.25) = 0.472
    assert prediction_error(actual, np.array([110.0, 110.0])) == pytest.approx(0.1)
    assert prediction_error(actual, np.array([90.0, 90.0])) == pytest.approx(0.47217, abs=1e-5)
    # an actual value near zero: mean absolute error instead
    assert prediction_error(np.array([0.0, 10.0]), np.array([1.0, 13.0])) == pytest.approx(2.0)


def test_default_estimators_on_a_clean_cycle_pick_the_smallest_margin():
    signal = sine(7 * DAY)
    best, errors = best_estimator(DEFAULT_ESTIMATORS, signal, 7, DAY)
    # every FFT estimator rebuilds a pure sine exactly: the error is its margin
    assert errors == pytest.approx([0.01, 0.10, 0.15, 0.20] * 2, abs=1e-9)
    assert best == 0  # the first of the two 1 % ties, as Go's strict `<` keeps it


def test_max_value_wins_on_exact_repeats_and_fft_wins_after_a_spike():
    day = np.where(np.arange(DAY) % 240 < 120, 80.0, 20.0)  # a square wave: hard for an FFT
    repeats = np.tile(day, 7)
    estimators = [MaxValueEstimator(0.0), FFTEstimator()]
    best, errors = best_estimator(estimators, repeats, 7, DAY)
    assert best == 0 and errors[0] == 0.0  # the past maximum is the day itself
    spiked = repeats.copy()
    spiked[: DAY // 2] *= 10  # day 1 had a 12-hour surge: the maximum keeps it, 10x too high
    best, errors = best_estimator(estimators, spiked, 7, DAY)
    assert best == 1 and errors[0] > 4.0 > errors[1]


def test_fft_estimator_floors_non_positive_values_and_applies_the_margin():
    flat = np.full(2 * DAY, -5.0)
    assert np.allclose(FFTEstimator(margin=0.2).estimate(flat, DAY), 0.01 * 1.2)
    # a zero margin takes Crane's default (0.1), as Go treats zero fields
    assert np.allclose(FFTEstimator(margin=0.0).estimate(np.full(2 * DAY, 10.0), DAY), 11.0)


# --- pre-processing ---------------------------------------------------------------------------


def test_gaps_up_to_an_hour_are_filled_linearly_longer_ones_drop_the_past():
    window = np.arange(3 * DAY, dtype=float)
    short = window.copy()
    short[100:159] = np.nan  # 59 missing minutes: 60 minutes between samples, kept and filled
    filled, last = preprocess(short)
    assert last == window.size - 1
    assert np.allclose(filled, window[-filled.size :]) and filled.size == 3 * DAY
    long = window.copy()
    long[100:160] = np.nan  # 60 missing: 61 minutes between samples, everything before is dropped
    filled, _ = preprocess(long)
    assert filled.size == 2 * DAY  # 3 days - 160 minutes, truncated to whole days
    trailing = window.copy()
    trailing[-30:] = np.nan  # no recent samples: the prediction starts after the last one
    assert preprocess(trailing)[1] == window.size - 31
    assert preprocess(np.full(10, np.nan)) is None


def test_coarser_traces_are_held_per_minute_finer_ones_averaged():
    held = minute_grid(np.array([5.0, 7.0]), 300.0)
    assert held.tolist() == [5.0] * 5 + [7.0] * 5
    averaged = minute_grid(np.array([1.0, 3.0, np.nan, 8.0, np.nan, np.nan]), 30.0)
    assert averaged[:2].tolist() == [2.0, 8.0] and math.isnan(averaged[2])
    with pytest.raises(ValueError):
        minute_grid(np.ones(4), 45.0)


# --- the predicted metric and the HPA --------------------------------------------------------


def test_external_metric_replicas_follow_kubernetes():
    assert external_per_pod_replicas(4, 1000.0, 100.0) == 10
    assert external_per_pod_replicas(4, 420.0, 100.0) == 4  # 1.05: inside the 10 % tolerance
    assert external_per_pod_replicas(4, 200.0, 100.0) == 2
    assert external_per_pod_replicas(0, 500.0, 100.0) == 0  # the HPA leaves zero alone


def spiked_days(days: int) -> pd.Series:
    """100 every minute except 500 at 10:00, repeated exactly every day."""
    day = np.full(DAY, 100.0)
    day[600] = 500.0
    return minute_series(np.tile(day, days))


def test_predicted_metric_is_the_peak_stamped_within_the_next_hour():
    series = spiked_days(9)
    ehpa = CraneEHPA(cfg(), series, estimators=[MaxValueEstimator(0.0)])
    seen = {}
    for step in range(8 * DAY, 8 * DAY + 700):
        ehpa.decide(Observation(step, step * 60.0, float(series.iloc[step - 1]), 10, 10, 0))
        seen[step - 8 * DAY] = ehpa.predicted_metric(step * 60.0)
    # minute m's sample is stamped at the end of the minute, 60 (m + 1); the adapter keeps the
    # stamps in [now, now + 3600]: at 09:00 the 10:00 minute (stamped 10:01) is just outside
    assert seen[540] == 100.0
    assert seen[541] == 500.0  # [09:01, 10:01] includes it
    assert seen[601] == 500.0  # stamped 10:01 = now: still inside
    assert seen[602] == 100.0
    # and the HPA scales on the larger metric: the current 100 over 2 instances needs
    # ceil(2 * 50 / 70) = 2, the predicted 500 needs ceil(500 / 70) = 8
    step = 8 * DAY + 541
    fresh = CraneEHPA(cfg(), series, estimators=[MaxValueEstimator(0.0)])
    obs = Observation(step, step * 60.0, 100.0, 2, 2, 0)
    assert HPA(cfg()).decide(obs) == 2 and fresh.decide(obs) == 8


def test_a_prediction_serves_only_while_it_covers_the_window():
    ehpa = CraneEHPA(cfg(), spiked_days(2))
    ehpa.forecast = Forecast(DAY_S, 0, start=100, values=np.full(DAY, 50.0))
    last_stamp = 60.0 * (100 + DAY)
    assert ehpa.predicted_metric(last_stamp - 3600.0) == 50.0
    assert ehpa.predicted_metric(last_stamp - 3600.0 + 60.0) is None  # no longer reaches now + W
    # the TimeSeriesPrediction status copies [now, now + 2 W]: a newer prediction is only read
    # once that copy is outdated
    later = CraneEHPA(cfg(), spiked_days(2))
    later.forecast = Forecast(DAY_S, 0, start=0, values=np.full(3 * DAY, 10.0))
    assert later.predicted_metric(600.0) == 10.0
    later.forecast = Forecast(DAY_S, 0, start=0, values=np.full(3 * DAY, 20.0))
    assert later.predicted_metric(660.0) == 10.0  # the status still reaches 600 + 7200 s
    assert later.predicted_metric(600.0 + 3660.0) == 20.0  # outdated: re-read


def test_pods_metric_variant_spreads_the_peak_over_the_ready_pods():
    ehpa = CraneEHPA(cfg(), spiked_days(2), predicted_metric_type="pods")
    obs = Observation(10, 600.0, 100.0, 4, 4, 2)
    # 4 ready + 2 pending: (1000 / 4) per pod, pending at 0 -> 1000 / 6 / 70 * 6 = 14.3 -> 15
    assert ehpa.predicted_replicas(obs, 1000.0) == 15
    with pytest.raises(ValueError):
        CraneEHPA(cfg(), spiked_days(2), predicted_metric_type="object")


def test_a_non_periodic_trace_falls_back_to_the_plain_hpa_exactly():
    rng = np.random.default_rng(3)
    minutes = 9 * DAY
    ramp = 200 + 400 * np.arange(minutes) / minutes + rng.normal(0, 20, minutes)
    demand = ramp.clip(0)
    series = minute_series(demand)
    c = cfg()
    switch = 7 * DAY
    ehpa = CraneEHPA(c, series)
    crane = simulate(demand, c, ehpa, HPA(c), switch)
    plain = simulate(demand, c, HPA(c), HPA(c), switch)
    assert ehpa.refreshes and all(r.cycle_s == 0 for r in ehpa.refreshes)
    assert ehpa.predictive_decisions == 0
    assert np.array_equal(crane.ready, plain.ready)
    assert np.array_equal(crane.starting, plain.starting)
    assert np.array_equal(crane.actions, plain.actions)


# --- refresh schedule and leakage ------------------------------------------------------------


def test_prediction_is_refreshed_every_12_hours_from_past_data_only():
    series = daily_trace(days=10, freq="5min", seed=1)
    c = cfg(interval_s=pd.Timedelta("5min").total_seconds(), capacity_per_instance=30.0)
    demand = series.to_numpy()
    switch = 7 * 288
    ehpa = CraneEHPA(c, series)
    forecasts = []
    original = ehpa.refresh

    def spy(step, now_s):
        forecasts.append(original(step, now_s))
        return forecasts[-1]

    ehpa.refresh = spy
    simulate(demand, c, ehpa, HPA(c), switch)
    steps = [r.step for r in ehpa.refreshes]
    assert steps == list(range(switch, demand.size, 144))  # 12 h = 144 five-minute steps
    assert np.diff([r.time_s for r in ehpa.refreshes]).tolist() == [43200.0] * (len(steps) - 1)
    assert all(r.cycle_s == DAY_S for r in ehpa.refreshes)
    # each run saw exactly the 7 days + 1 hour of minutes before its step, held from 5 minutes
    minutes = np.repeat(demand, 5)
    for r, f in zip(ehpa.refreshes, forecasts):
        end = r.step * 5
        start = max(0, end - (7 * DAY + 60))
        again = dsp_forecast(minutes[start:end], start)
        assert f.start == end and np.array_equal(f.values, again.values)


def test_changing_the_future_does_not_change_any_decision_before_it():
    series = daily_trace(days=9, freq="1min", seed=2, base=300.0)
    c = cfg(capacity_per_instance=60.0)
    switch = 7 * DAY
    base_run = simulate(series.to_numpy(), c, CraneEHPA(c, series), HPA(c), switch)
    for cut in (switch + 700, switch + 720, switch + 1500):  # mid-cycle, at a refresh, later
        changed = series.copy()
        changed.iloc[cut:] = np.random.default_rng(cut).poisson(3000, changed.size - cut)
        ehpa = CraneEHPA(c, changed)
        run = simulate(changed.to_numpy(), c, ehpa, HPA(c), switch)
        assert np.array_equal(run.ready[: cut + 1], base_run.ready[: cut + 1])
        assert np.array_equal(run.starting[: cut + 1], base_run.starting[: cut + 1])
        assert not np.array_equal(run.ready, base_run.ready)  # the change did reach later steps


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["external", "pods"])
def test_runs_end_to_end_on_a_generated_trace(metric):
    frame = synthetic_load(producers=1, days=10, interval="5min", seed=5)
    series = frame.set_index("timestamp")["value"].asfreq("5min").rename("svc-1")
    c = derive_config(series, pd.Timedelta("5min").total_seconds())
    switch = 7 * 288
    ehpa = CraneEHPA(c, series, predicted_metric_type=metric)
    run = simulate(series.to_numpy(), c, ehpa, HPA(c), switch)
    plain = simulate(series.to_numpy(), c, HPA(c), HPA(c), switch)
    assert run.ready.size == series.size
    assert (run.ready >= c.min_instances).all() and (run.ready <= c.max_instances).all()
    assert ehpa.refreshes[0].cycle_s == DAY_S and ehpa.predictive_decisions > 0
    # scaling on the larger of the two metrics never holds fewer instances than it would need
    # for the current one alone, on average over the replay
    assert run.ready[switch:].mean() >= plain.ready[switch:].mean()
