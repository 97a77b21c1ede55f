"""Queueing model, spin-up mechanics, metrics and the oracle as the cost lower bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sim_fixtures import daily_naive_factory, daily_trace

from simulation.bench import bench_producer
from simulation.config import SimConfig, derive_config
from simulation.latency import erlang_c, fluid_queue, mixture_quantile
from simulation.metrics import score
from simulation.policies import POLICIES, Observation, Oracle
from simulation.simulator import simulate, slo_need


class Fixed:
    """A policy asking for a fixed count (tests only)."""

    def __init__(self, n: int, name: str = "fixed") -> None:
        self.n, self.name = n, name

    def decide(self, obs: Observation) -> int:
        return self.n


class RandomWalk:
    """A policy that wanders around a level (tests only)."""

    name = "random"

    def __init__(self, seed: int, level: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.level = level

    def decide(self, obs: Observation) -> int:
        return max(1, self.level + int(self.rng.integers(-3, 6)))


def test_erlang_c_known_values():
    # M/M/1: P(wait) = rho; M/M/2 at A = 1 (rho 0.5): C = 1/3
    assert erlang_c(np.array([1]), np.array([0.7]))[0] == pytest.approx(0.7)
    assert erlang_c(np.array([2]), np.array([0.5]))[0] == pytest.approx(1 / 3)
    assert erlang_c(np.array([0]), np.array([0.5]))[0] == 1.0


def test_fluid_queue_carries_unserved_load_and_drops_after_the_timeout():
    served, backlog, dropped = fluid_queue(
        np.array([10.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0]), 4.0, 10.0
    )
    assert list(served) == [4.0, 4.0, 2.0] and list(backlog) == [6.0, 2.0, 0.0]
    _, backlog, dropped = fluid_queue(np.array([10.0]), np.array([1.0]), 4.0, 0.5)
    assert backlog[0] == 2.0 and dropped[0] == 4.0


def test_p99_of_a_mixture():
    # one interval, no queueing (huge fleet): every request takes the service time
    base = np.array([100.0])
    q = mixture_quantile(
        0.99, np.array([1.0]), base, np.array([400]), np.array([0.1]), 100.0, 0.0, 30000.0
    )
    assert q == pytest.approx(100.0, abs=0.01)
    # 2 % dropped: the p99 is the timeout
    q = mixture_quantile(
        0.99, np.array([98.0]), base, np.array([400]), np.array([0.1]), 100.0, 2.0, 30000.0
    )
    assert q == 30000.0


def cfg(**kw) -> SimConfig:
    base = {
        "interval_s": 60.0,
        "capacity_per_instance": 100.0,
        "spinup_s": 180.0,
        "warmup_s": 0.0,
        "max_instances": 40,
    }
    base.update(kw)
    return SimConfig(**base)


def test_instances_serve_only_after_the_spin_up_and_scale_in_is_immediate():
    c = cfg()
    run = simulate(np.full(10, 50.0), c, Fixed(4), Fixed(1), switch_step=2)
    assert list(run.ready) == [1, 1, 1, 1, 1, 4, 4, 4, 4, 4]
    assert list(run.starting[:5]) == [0, 0, 3, 3, 3]
    run = simulate(np.full(4, 50.0), c, Fixed(1), Fixed(4), switch_step=2)
    assert list(run.ready[:4]) == [1, 1, 1, 1]  # the warm-up's 3 launches are cancelled at step 2
    assert list(run.starting[:4]) == [3, 3, 0, 0]


class Watching(Fixed):
    """A fixed policy that also learns from the warm-up: it records what it was shown."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.watched: list[int] = []
        self.decided: list[int] = []

    def observe(self, obs: Observation) -> None:
        self.watched.append(obs.step)

    def decide(self, obs: Observation) -> int:
        self.decided.append(obs.step)
        return super().decide(obs)


def test_a_policy_that_observes_watches_the_last_of_the_warm_up_in_dry_run():
    c = cfg(dry_run_s=120.0)  # two 1-minute intervals
    policy = Watching(4)
    run = simulate(np.full(10, 50.0), c, policy, Fixed(1), switch_step=5)
    assert policy.watched == [3, 4]  # the two intervals before the hand-over, answers unused
    assert policy.decided == [5, 6, 7, 8, 9]
    assert list(run.ready[:6]) == [1, 1, 1, 1, 1, 1]  # the warm-up policy held the fleet
    everything = Watching(4)
    simulate(np.full(10, 50.0), cfg(), everything, Fixed(1), switch_step=5)  # default: a week
    assert everything.watched == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="dry run"):
        cfg(dry_run_s=-1.0)


def test_slo_need_is_the_fewest_instances_meeting_the_slo():
    c = cfg()
    arrivals = np.array([0.0, 10.0, 85.0, 500.0, 2000.0])
    need = slo_need(arrivals, c)
    from simulation.simulator import serve

    for i, a in enumerate(arrivals):
        ok = serve("x", np.array([a]), np.array([need[i]]), np.array([0]), np.array([False]), c)
        assert not ok.violated[0]
        if need[i] > c.min_instances and a > 0:
            worse = serve(
                "x", np.array([a]), np.array([need[i] - 1]), np.array([0]), np.array([False]), c
            )
            assert worse.violated[0]


def test_a_drained_backlog_makes_late_only_the_arrivals_waiting_behind_it():
    # hour 0 is short by 30 units; hour 1 has room for 200 more, so the 30 carried in drain in
    # 30/200 of it (9 minutes): the arrivals of those minutes are late, the rest are not
    from simulation.simulator import serve

    c = SimConfig(interval_s=3600, capacity_per_instance=100.0, max_utilisation=0.8,
                  max_instances=10, timeout_s=7200.0)  # nothing times out
    run = serve("x", np.array([190.0, 200.0]), np.array([2, 5]), np.array([0, 0]),
                np.array([False, False]), c)
    assert list(run.backlog) == [30.0, 0.0]
    assert run.late_share[0] == 1.0  # work carried out of the hour: all of it late
    slack = (c.slo_ms - c.service_time_ms) / 1000.0 / 3600.0  # in hours
    assert run.late_share[1] == pytest.approx((30.0 - 400.0 * slack) / 200.0, rel=1e-3)
    assert run.violated.tolist() == [True, True]
    m = score(run, c, np.array([True, True]), np.array([3, 3]))
    assert m["slo_violation_pct"] == pytest.approx(
        100 * (190.0 + 200.0 * run.late_share[1]) / 390.0)


@pytest.mark.parametrize("coarse_s", [1800.0, 3600.0])
def test_a_load_held_constant_within_each_interval_scores_alike_at_any_interval(coarse_s):
    # one trajectory (arrivals and ready instances constant within each coarse interval),
    # served at its own interval and at one sample a minute: the share of demand served late
    # must not depend on the sampling interval
    from simulation.simulator import serve

    rng = np.random.default_rng(3)
    arrivals = rng.uniform(50.0, 300.0, 150)
    ready = np.ceil(np.r_[arrivals[0], arrivals[:-1]] / (30.0 * 0.85)).astype(int)  # a lag
    shares = []
    for dt, repeat in ((coarse_s, 1), (60.0, int(coarse_s // 60))):
        c = SimConfig(interval_s=dt, capacity_per_instance=30.0, max_instances=60)
        a, n = np.repeat(arrivals, repeat), np.repeat(ready, repeat)
        run = serve("x", a, n, np.zeros_like(n), np.zeros(a.size, dtype=bool), c)
        shares.append(score(run, c, np.ones(a.size, dtype=bool), n)["slo_violation_pct"])
    assert 20.0 < shares[1] < 80.0  # a lag that misses often, so the test has teeth
    assert shares[0] == pytest.approx(shares[1], abs=0.1)


def test_oracle_has_no_violations_and_is_never_beaten_on_cost_at_zero_violations():
    for seed, spin in [(0, "0min"), (1, "5min"), (2, "15min")]:
        demand = daily_trace(days=3, freq="1min", seed=seed, base=300.0).to_numpy()
        c = derive_config(
            pd.Series(demand, index=pd.date_range("2024-01-01", periods=demand.size, freq="1min")),
            60.0,
            spinup_s=pd.Timedelta(spin).total_seconds(),
            warmup_s=6 * 3600.0,
        )
        scored = np.arange(demand.size) >= 360
        need = slo_need(demand, c)
        oracle = score(simulate(demand, c, Oracle(c, need), Oracle(c, need)), c, scored, need)
        assert oracle["slo_violation_pct"] == 0.0 and oracle["underprovisioned_pct"] == 0.0
        challengers = [RandomWalk(s, int(need.mean()) + k) for s in range(6) for k in (0, 2, 4)]
        challengers += [Fixed(int(n)) for n in np.unique(need)]
        for policy in challengers:
            m = score(simulate(demand, c, policy, Oracle(c, need), 360), c, scored, need)
            if m["slo_violation_pct"] == 0.0:
                assert m["instance_hours"] >= oracle["instance_hours"] - 1e-9, policy.name


def test_bench_scores_every_policy_alike_and_the_oracle_is_the_floor():
    series = daily_trace(days=6, freq="5min", seed=3)
    c = derive_config(series, pd.Timedelta("5min").total_seconds())
    result = bench_producer(series, c, factory=daily_naive_factory)
    assert set(result.metrics) == set(POLICIES)
    assert {"crane_ehpa", "knative_kpa", "leadtime"} <= set(POLICIES)
    assert result.metrics["oracle"]["cost_vs_oracle"] == 1.0
    assert result.metrics["oracle"]["slo_violation_pct"] == 0.0
    assert result.metrics["static_peak"]["scaling_actions"] == 0
    for name, m in result.metrics.items():
        if m["slo_violation_pct"] == 0.0:
            assert m["cost_vs_oracle"] >= 1.0, name
    # the warm-up (3 days of 6) is identical for every policy: the same reactive HPA
    warm = int(result.scored.argmax()) - c.spinup_steps - 12  # hands over 1 h + L before
    first = result.runs["hpa"].ready[:warm]
    for run in result.runs.values():
        assert np.array_equal(run.ready[:warm], first)
    assert (
        result.tier1.fits == 4
    )  # days acted in: the warm-up's last (the switch step) and days 4-6
