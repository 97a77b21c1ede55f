"""The whole replay at 1, 5, 30 and 60-minute samples: sizing calibrates at every interval,
including those coarser than the 5-minute spin-up, and predicting beats reacting on a daily
pattern."""

from __future__ import annotations

import pandas as pd
import pytest

from simulation.bench import HISTORY_S, engine_spec, replay_setup
from simulation.config import derive_config
from simulation.forecast import daily_tier1
from simulation.metrics import score
from simulation.policies import HPA, Leadtime
from simulation.scenarios import diurnal_weekly


@pytest.mark.parametrize(("every", "days"), [("1min", 5), ("5min", 10), ("30min", 28),
                                             ("60min", 28)])
def test_sizing_calibrates_and_holds_at_every_interval(every, days):
    series = diurnal_weekly(days=days)
    if every != "1min":
        series = series.resample(every).sum()
        series.index.freq = every
    cfg = derive_config(series, pd.Timedelta(every).total_seconds())
    demand, lead, switch, scored, need = replay_setup(series, cfg)
    tier1 = daily_tier1(series, lead, switch, "seasonal_naive", 80, HISTORY_S)
    policy = Leadtime(cfg, tier1, "svc", series.index[0], engine_spec())
    mine = score(simulate_with(policy, demand, cfg, switch), cfg, scored, need)
    hpa = HPA(cfg)
    reacting = score(simulate_with(hpa, demand, cfg, switch, hpa), cfg, scored, need)
    sized = sum(n for source, n in policy.sizing_sources.items() if source != "uncalibrated")
    assert sized > 0.8 * sum(policy.sizing_sources.values())  # calibrated most passes
    assert mine["instance_hours"] <= 1.1 * reacting["instance_hours"]
    assert mine["slo_violation_pct"] <= reacting["slo_violation_pct"] + 1.0


def simulate_with(policy, demand, cfg, switch, warm=None):
    from simulation.simulator import simulate

    return simulate(demand, cfg, policy, warm or HPA(cfg), switch)
