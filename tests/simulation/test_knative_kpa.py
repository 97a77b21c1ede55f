"""Knative's KPA: panic mode, rate limits and the steady state, on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sim_fixtures import daily_trace

from simulation.config import SimConfig, derive_config
from simulation.generate import synthetic_load
from simulation.knative_kpa import KnativeKPA, window_average
from simulation.policies import HPA, Observation
from simulation.simulator import simulate

TARGET = 50.0  # capacity 100 at 50 % target utilisation


def cfg(**kw) -> SimConfig:
    base = {
        "interval_s": 60.0,
        "capacity_per_instance": 100.0,
        "target_utilisation": 0.5,
        "max_utilisation": 0.9,
        "min_instances": 1,
        "max_instances": 5000,
        "spinup_s": 120.0,
        "warmup_s": 0.0,
    }
    base.update(kw)
    return SimConfig(**base)


def started(kpa: KnativeKPA, dt: float = 60.0) -> KnativeKPA:
    """A KPA created with one ready pod (so it does not start in panic mode)."""
    kpa.decide(Observation(1, dt, 40.0, 1, 1, 0))
    return kpa


def obs(step: int, load: float | None, ready: int, starting: int = 0, dt: float = 60.0):
    return Observation(step, step * dt, load, ready, ready, starting)


def test_defaults_follow_knatives_config():
    kpa = KnativeKPA(cfg(target_utilisation=0.7))
    assert kpa.target == pytest.approx(70.0)  # capacity * 70 %
    assert kpa.stable_window_s == 60.0 and kpa.panic_threshold == 2.0
    assert (kpa.max_scale_up_rate, kpa.max_scale_down_rate, kpa.scale_down_delay_s) == (1000, 2, 0)
    assert KnativeKPA(cfg(), target_utilisation=0.25).target == 25.0
    with pytest.raises(ValueError):
        KnativeKPA(cfg(), target_utilisation=1.5)


@pytest.mark.parametrize(
    ("dt", "stable", "panic"),
    [("1min", 1, 1), ("5min", 1, 1), ("10s", 6, 1), ("2s", 30, 3)],
)
def test_windows_cover_whole_intervals_at_least_one(dt, stable, panic):
    kpa = KnativeKPA(cfg(interval_s=pd.Timedelta(dt).total_seconds()))
    assert (kpa.stable_intervals, kpa.panic_intervals) == (stable, panic)


def test_panic_starts_when_the_panic_pod_count_reaches_twice_the_ready_pods():
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 300.0, 4)) == 6 and not kpa.panicking  # 6 / 4 < 2
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 350.0, 4)) == 7 and not kpa.panicking  # 7 / 4 < 2
    kpa = started(KnativeKPA(cfg()))
    # 351 is less than twice the ready capacity (400), but Knative compares the *pod count*
    # ceil(351 / 50) = 8 with 2 * 4
    assert kpa.decide(obs(2, 351.0, 4)) == 8 and kpa.panicking


def test_no_scale_down_in_panic_and_exit_a_stable_window_after_the_condition_clears():
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 400.0, 4)) == 8 and kpa.panicking  # panic at t = 120 s
    # the load falls: stable mode would ask for max(ceil(100 / 50), 8 / 2) = 4
    assert kpa.decide(obs(3, 100.0, 8)) == 8 and kpa.panicking  # t = 180: 120 + 60 is not < 180
    assert kpa.decide(obs(4, 100.0, 8)) == 4 and not kpa.panicking  # t = 240: un-panic


def test_the_condition_holding_again_extends_the_panic():
    kpa = started(KnativeKPA(cfg()))
    kpa.decide(obs(2, 400.0, 4))  # panic at 120
    assert kpa.decide(obs(3, 800.0, 8)) == 16  # 16 / 8 >= 2: extended to 180, grows to 16
    assert kpa.decide(obs(4, 100.0, 16)) == 16 and kpa.panicking  # 180 + 60 is not < 240
    assert kpa.decide(obs(5, 100.0, 16)) == 8 and not kpa.panicking  # halved at most


def test_in_panic_the_count_only_rises():
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 351.0, 4)) == 8
    assert kpa.decide(obs(3, 600.0, 8)) == 12  # not over the threshold, but panicking: up to 12
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 400.0, 4)) == 8
    assert kpa.decide(obs(3, 1200.0, 8)) == 24  # over again at 180 s: extended
    assert kpa.decide(obs(4, 600.0, 24)) == 24  # stable says 12: no decrease while panicking


def test_a_new_autoscaler_starts_in_panic_at_the_current_scale():
    kpa = KnativeKPA(cfg())
    assert kpa.decide(obs(10, 50.0, 6)) == 6 and kpa.panicking  # stable would say 3
    assert kpa.decide(obs(11, 50.0, 6)) == 6
    assert kpa.decide(obs(12, 50.0, 6)) == 3 and not kpa.panicking
    one = KnativeKPA(cfg())
    assert one.decide(obs(10, 50.0, 1)) == 1 and not one.panicking


def test_max_scale_up_rate_is_a_thousand_times_the_ready_pods():
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 1e6, 1)) == 1000  # wants 20000
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 1e6, 3)) == 3000
    kpa = started(KnativeKPA(cfg(), max_scale_up_rate=2.0))
    assert kpa.decide(obs(2, 1e6, 3)) == 6


def test_max_scale_down_rate_halves_at_most_per_decision():
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, 0.0, 10)) == 5  # wants 0: floor(10 / 2)
    assert kpa.decide(obs(3, 0.0, 5)) == 2  # floor(5 / 2)
    assert kpa.decide(obs(4, 0.0, 2)) == 1
    assert kpa.decide(obs(5, 0.0, 1)) == 1  # floor(1 / 2) = 0, held at min_instances
    kpa = started(KnativeKPA(cfg(), max_scale_down_rate=4.0))
    assert kpa.decide(obs(2, 0.0, 10)) == 2


def test_the_rate_limits_count_ready_pods_not_pending_ones():
    kpa = started(KnativeKPA(cfg()))
    # 2 ready and 10 starting, the load now needs 1: down to floor(2 / 2) = 1, pending cancelled
    assert kpa.decide(obs(2, 50.0, 2, starting=10)) == 1


@pytest.mark.parametrize(
    ("before", "after"),
    [(100.0, 730.0), (100.0, 1000.0), (2000.0, 730.0), (600.0, 49.0), (600.0, 51.0)],
)
def test_steady_state_is_ceil_load_over_target(before, after):
    c = cfg()
    demand = np.array([before] * 10 + [after] * 40)
    run = simulate(demand, c, KnativeKPA(c))
    assert run.ready[-1] == max(1, math.ceil(after / TARGET))
    assert run.starting[-1] == 0


def test_no_data_leaves_the_scale_alone():
    kpa = started(KnativeKPA(cfg()))
    assert kpa.decide(obs(2, None, 7, starting=2)) == 9
    assert not kpa.panicking


def test_finer_traces_average_whole_intervals_and_the_panic_window_sees_the_last():
    c = cfg(interval_s=pd.Timedelta("10s").total_seconds())
    kpa = KnativeKPA(c)
    kpa.decide(obs(1, 40.0, 1, dt=10.0))
    for step in range(2, 6):
        assert kpa.decide(obs(step, 100.0, 4, dt=10.0)) == 2
    assert not kpa.panicking
    # stable (the last 60 s): (40 + 4 * 100 + 400) / 6 = 140 -> 3 pods; panic (the last 10 s,
    # the whole intervals covering 6 s, at least one): 400 -> 8 = 2 * 4 ready
    assert kpa.decide(obs(6, 400.0, 4, dt=10.0)) == 8 and kpa.panicking


def test_window_average_follows_knatives_partial_window_rules():
    assert window_average([10.0]) == 10.0
    assert window_average([None, 10.0, 20.0]) == 15.0  # not yet filled: the covered part
    assert window_average([10.0, 20.0, None]) == 15.0  # no recent data: the earlier part
    assert window_average([10.0, None, 20.0]) == 10.0  # a gap inside counts as 0
    assert window_average([1.0, 1.0, 2.0]) == pytest.approx(1.333333)


def test_scale_down_delay_holds_the_largest_recent_count():
    kpa = started(KnativeKPA(cfg(), scale_down_delay_s=120.0))
    assert kpa.decide(obs(2, 500.0, 10)) == 10
    assert kpa.decide(obs(3, 100.0, 10)) == 10  # wants 5; 10 was asked at 120 s, within 120 s
    assert kpa.decide(obs(4, 100.0, 10)) == 5  # at 240 s the 10 has left the window


def test_runs_end_to_end_on_generated_traces():
    frame = synthetic_load(producers=1, days=4, interval="5min", seed=2)
    series = frame.set_index("timestamp")["value"].asfreq("5min")
    c = derive_config(series, pd.Timedelta("5min").total_seconds())
    demand = series.to_numpy()
    kpa = KnativeKPA(c)
    run = simulate(demand, c, kpa, HPA(c), 288)
    assert run.ready.size == demand.size
    assert (run.ready >= c.min_instances).all() and (run.ready <= c.max_instances).all()
    assert run.actions[288:].any()
    minute = daily_trace(days=2, freq="1min", seed=3, base=400.0)
    c1 = derive_config(minute, pd.Timedelta("1min").total_seconds())
    kpa1 = KnativeKPA(c1)
    run1 = simulate(minute.to_numpy(), c1, kpa1, HPA(c1), 1440)
    # beyond the two decisions of the start-up panic, noisy minutes under a 5-minute spin-up
    # (launches not ready yet) reach the threshold again
    assert kpa1.panic_decisions > 2
    assert run1.ready.size == minute.size
