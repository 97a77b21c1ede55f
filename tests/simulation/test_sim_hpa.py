"""The HPA policy reproduces the Kubernetes algorithm on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulation.config import SimConfig
from simulation.policies import HPA, Observation, hpa_replicas
from simulation.simulator import simulate


def cfg(**kw) -> SimConfig:
    base = {
        "interval_s": 60.0,
        "capacity_per_instance": 100.0,
        "target_utilisation": 0.5,
        "max_utilisation": 0.9,
        "min_instances": 1,
        "max_instances": 50,
        "spinup_s": 120.0,
        "warmup_s": 0.0,
    }
    base.update(kw)
    return SimConfig(**base)


def test_ratio_rule_from_the_kubernetes_docs():
    # "if the current metric value is 200m and the desired value is 100m, the number of
    # replicas will be doubled ... if 50m, you'll halve the number of replicas"
    assert hpa_replicas(4, 4, 200, 100) == 8
    assert hpa_replicas(4, 4, 50, 100) == 2
    # desired = ceil(current * current/target): 3 * 130/100 = 3.9 -> 4
    assert hpa_replicas(3, 3, 130, 100) == 4


def test_ten_percent_tolerance():
    assert hpa_replicas(4, 4, 109, 100) == 4  # |1 - 1.09| <= 0.1: no change
    assert hpa_replicas(4, 4, 91, 100) == 4
    # exactly 1.10 is float64 1.1000000000000001 in Go as here: just outside the tolerance
    assert hpa_replicas(4, 4, 110, 100) == 5
    assert hpa_replicas(4, 4, 111, 100) == 5  # ceil(4.44)
    assert hpa_replicas(10, 10, 89, 100) == 9  # ceil(8.9)


def test_pending_pods_count_as_zero_on_scale_up():
    # 4 ready at 150 with 2 pending: 600 / 6 pods = 100 = target -> keep 6
    assert hpa_replicas(6, 4, 150, 100, unready=2) == 6
    # 4 ready at 200, 2 pending: 800 / 6 = 133 -> ceil(1.333 * 6) = 8
    assert hpa_replicas(6, 4, 200, 100, unready=2) == 8
    # pending pods are ignored on scale-down: 4 at 50 -> ceil(0.5 * 4) = 2
    assert hpa_replicas(6, 4, 50, 100, unready=2) == 2


def test_missing_metrics_assumed_at_target_on_scale_down_and_zero_on_scale_up():
    # 3 pods at 50, 1 without a metric, scale-down: (150 + 100) / 4 = 62.5 -> ceil(0.625*4) = 3
    assert hpa_replicas(4, 3, 50, 100, missing=1) == 3
    # 3 pods at 200, 1 missing, scale-up: 600 / 4 = 150 -> ceil(1.5 * 4) = 6
    assert hpa_replicas(4, 3, 200, 100, missing=1) == 6
    # ... unless the missing pod flips the direction: 3 at 120, 1 at 0 -> 90: keep 4
    assert hpa_replicas(4, 3, 120, 100, missing=1) == 4


def test_scale_down_stabilisation_keeps_the_window_maximum_for_five_minutes():
    hpa = HPA(cfg())
    # per-pod target 50; 10 ready pods. Minute 0: load 1000 -> 20 pods; then load 200 -> 4.
    steps = [(0, 1000.0)] + [(m, 200.0) for m in range(1, 8)]
    desired = []
    current = 10
    for minute, load in steps:
        obs = Observation(minute, minute * 60.0, load, current, current, 0)
        current = hpa.decide(obs)
        desired.append(current)
    # the HPA syncs every 15 s, so the 20 was last recommended at t = 45 s (the last sync of the
    # first minute); it holds while inside (now - 300 s, now], i.e. up to t = 300 s
    assert desired[:6] == [20, 20, 20, 20, 20, 20]
    # at t = 360 s it has left the window (Kubernetes keeps recommendations strictly after the
    # cut-off): the maximum of the remaining recommendations, all 4, wins
    assert desired[6] == 4


def test_stabilisation_spans_intervals_as_long_as_the_window():
    # at 5-minute intervals the previous interval's syncs (up to 15 s ago) are still in the window
    hpa = HPA(cfg(interval_s=pd.Timedelta("5min").total_seconds()))
    first = hpa.decide(Observation(0, 0.0, 1000.0, 10, 10, 0))
    assert first == 20
    assert hpa.decide(Observation(1, 300.0, 200.0, 20, 20, 0)) == 20
    assert hpa.decide(Observation(2, 600.0, 200.0, 20, 20, 0)) == 4


def test_metric_is_one_interval_late_and_pods_need_the_spin_up():
    c = cfg()
    demand = np.array([50.0] * 5 + [500.0] * 6)  # 1 pod carries 50 at target; jumps at step 5
    run = simulate(demand, c, HPA(c))
    # the jump at step 5 is seen at step 6, pods launched then are ready at 6 + 2 = 8
    assert list(run.ready[:8]) == [1] * 8
    assert run.starting[6] == 9
    assert run.ready[8] == 10
    assert run.violated[5:8].all() and not run.violated[:5].any()
