"""The HPA twin reproduces the simulator's ``hpa`` fleet and instance-hours, pass for pass."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from loop.hpa_twin import HpaTwin, HpaTwinConfig
from simulation.config import SimConfig, derive_config
from simulation.metrics import score
from simulation.policies import HPA
from simulation.simulator import simulate, slo_need


def bursty(interval: str, days: int, seed: int, gaps: bool = False) -> pd.Series:
    """Poisson load on a daily cycle with bursts (a few intervals at 3-6 x); NaN gaps."""
    dt = pd.Timedelta(interval)
    n = int(pd.Timedelta(days=days) / dt)
    rng = np.random.default_rng(seed)
    phase = np.arange(n) * dt.total_seconds() / 86400.0
    rate = 200.0 * (1.2 + np.sin(2 * np.pi * phase)) * dt.total_seconds() / 60.0
    for start in rng.choice(n - 10, size=max(3, n // 100), replace=False):
        rate[start:start + rng.integers(1, 8)] *= rng.uniform(3, 6)
    load = rng.poisson(rate).astype(float)
    if gaps:  # a gap at the start (no first load) and a few in the middle
        load[:3] = np.nan
        for start in rng.choice(np.arange(10, n - 10), size=5, replace=False):
            load[start:start + rng.integers(1, 4)] = np.nan
    index = pd.date_range("2024-01-01", periods=n, freq=dt)
    return pd.Series(load, index=index, name="bursty")


def twin_config(cfg: SimConfig, **kw) -> HpaTwinConfig:
    return HpaTwinConfig(
        capacity_per_instance=cfg.capacity_per_instance,
        target_utilisation=cfg.target_utilisation,
        min_instances=cfg.min_instances,
        max_instances=cfg.max_instances,
        spinup_s=cfg.spinup_s,
        tolerance=cfg.hpa_tolerance,
        scale_down_window_s=cfg.hpa_scale_down_window_s,
        sync_period_s=cfg.hpa_sync_period_s,
        **kw,
    )


def drive(twin: HpaTwin, demand: np.ndarray, dt: float, start: int = 0, stop: int | None = None):
    """Pass ``t`` at ``t * dt`` with the load of interval ``t - 1`` (None at 0 and in gaps);
    the fleet (ready, starting) after each pass, (-1, -1) until the first load sizes it."""
    out = []
    for t in range(start, demand.size if stop is None else stop):
        load = None if t == 0 or not math.isfinite(demand[t - 1]) else float(demand[t - 1])
        twin.step(t * dt, load)
        out.append((twin.ready, twin.starting) if twin.sized else (-1, -1))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


CASES = {
    "1min": ("1min", 3, {}, False),
    "1min-gaps-min3": ("1min", 3, {"min_instances": 3}, True),
    "1min-spinup-90s": ("1min", 2, {"spinup_s": 90.0}, False),
    # a spin-up longer than the scale-down window: launches still pending are terminated
    "1min-spinup-12min": ("1min", 3, {"spinup_s": 720.0}, False),
    "5min-max-20": ("5min", 6, {"max_instances": 20}, False),
    "5min": ("5min", 6, {}, False),
    "5min-gaps": ("5min", 6, {}, True),
    "30min-spinup-5min": ("30min", 14, {}, False),  # spin-up shorter than the interval
    "1min-no-spinup": ("1min", 2, {"spinup_s": 0.0}, False),
}


@pytest.mark.parametrize("case", CASES)
def test_parity_with_the_simulators_hpa(case):
    interval, days, overrides, gaps = CASES[case]
    series = bursty(interval, days, seed=len(case), gaps=gaps)
    cfg = derive_config(series, pd.Timedelta(interval).total_seconds(), **overrides)
    demand = series.to_numpy(dtype=float)
    run = simulate(demand, cfg, HPA(cfg))
    assert run.actions.sum() > 20  # the series makes the HPA work

    twin = HpaTwin(twin_config(cfg, spend_window_s=math.inf))
    fleet = drive(twin, demand, cfg.dt_s)
    # The simulator starts sized for the first known interval, a load the twin observes one
    # pass later: the passes up to it have no fleet yet (and are charged with it once sized)
    first = int(np.flatnonzero(np.isfinite(demand))[0]) + 1
    assert (fleet[:first] == -1).all() and (fleet[first:] >= 0).all()
    assert (run.starting[:first] == 0).all() and (run.ready[:first] == run.ready[0]).all()
    np.testing.assert_array_equal(fleet[first:, 0], run.ready[first:])
    np.testing.assert_array_equal(fleet[first:, 1], run.starting[first:])

    scored = np.ones(demand.size, dtype=bool)
    hours = score(run, cfg, scored, slo_need(demand, cfg))["instance_hours"]
    end = demand.size * cfg.dt_s
    assert twin.spend(end) == pytest.approx(hours * 3600.0, rel=1e-12)
    # the trailing day: the last day's intervals of the simulator's fleet
    day = int(86400 / cfg.dt_s)
    last_day = float((run.ready + run.starting)[-day:].sum()) * cfg.dt_s
    assert twin.spend(end, window_s=86400.0) == pytest.approx(last_day, rel=1e-12)


def test_spin_up_shorter_than_the_interval_is_ready_at_the_next_pass():
    twin = HpaTwin(HpaTwinConfig(capacity_per_instance=100.0, target_utilisation=0.5,
                                 min_instances=1, max_instances=50, spinup_s=300.0))
    assert twin.step(0.0, 100.0) == 2
    assert twin.step(1800.0, 400.0) == 8
    assert (twin.ready, twin.starting) == (2, 6)
    twin.step(3600.0, 400.0)
    assert (twin.ready, twin.starting) == (8, 0)


def test_the_trailing_window_drops_old_intervals_and_memory_is_bounded():
    twin = HpaTwin(HpaTwinConfig(capacity_per_instance=100.0, target_utilisation=0.5,
                                 min_instances=1, max_instances=50, spinup_s=0.0,
                                 spend_window_s=600.0))
    for t in range(30):  # 4 instances at 200 load
        twin.step(60.0 * t, 200.0)
    assert twin.instances == 4
    now = 60.0 * 29
    assert twin.spend(now) == 4 * 600.0
    assert twin.spend(now, window_s=120.0) == 4 * 120.0
    # an interval counts whole when it starts in the window; the open one up to now
    assert twin.spend(now + 30.0, window_s=120.0) == 4 * 60.0 + 4 * 30.0
    with pytest.raises(ValueError):
        twin.spend(now, window_s=601.0)
    for t in range(30, 40):  # scale up to 10, at once (no spin-up)
        twin.step(60.0 * t, 500.0)
    assert twin.instances == 10
    now = 60.0 * 39
    # window [1740, 2340]: the interval from 1740 held 4, the nine from 1800 on held 10
    assert twin.spend(now) == 4 * 60.0 + 10 * 540.0
    assert len(twin.state()["spent"]) <= 11


def test_no_metric_keeps_the_scale():
    twin = HpaTwin(HpaTwinConfig(capacity_per_instance=100.0, target_utilisation=0.5,
                                 min_instances=1, max_instances=50, spinup_s=120.0))
    assert twin.step(0.0, None) == 0 and not twin.sized  # nothing known yet
    assert twin.step(60.0, 100.0) == 2  # sized for the first load
    assert twin.spend(60.0) == 2 * 60.0  # the pass before it is charged with that fleet
    assert twin.step(120.0, 1000.0) == 20
    for t in range(3, 20):  # no metric: the launches still become ready, the scale holds
        assert twin.step(60.0 * t, None) == 20
        assert twin.instances == 20
    assert (twin.ready, twin.starting) == (20, 0)
    assert twin.step(60.0 * 20, 10.0) == 20  # scale-down waits for the window
    assert [twin.step(60.0 * t, 10.0) for t in range(21, 27)] == [20, 20, 20, 20, 1, 1]


def test_state_round_trips_through_json():
    series = bursty("1min", 2, seed=3, gaps=True)
    cfg = derive_config(series, pd.Timedelta("1min").total_seconds())
    demand = series.to_numpy(dtype=float)
    half = demand.size // 2
    one = HpaTwin(twin_config(cfg))
    drive(one, demand, cfg.dt_s, stop=half)
    state = json.loads(json.dumps(one.state()))
    two = HpaTwin.from_state(state)
    assert two.state() == one.state()
    rest_one = drive(one, demand, cfg.dt_s, start=half)
    rest_two = drive(two, demand, cfg.dt_s, start=half)
    np.testing.assert_array_equal(rest_one, rest_two)
    end = demand.size * cfg.dt_s
    assert one.spend(end) == two.spend(end)
    assert two.state() == one.state()


def test_passes_must_move_forward():
    twin = HpaTwin(HpaTwinConfig(capacity_per_instance=1.0, target_utilisation=0.5,
                                 min_instances=1, max_instances=5, spinup_s=60.0))
    twin.step(60.0, 1.0)
    with pytest.raises(ValueError):
        twin.step(60.0, 1.0)
