"""The whole replay at 1, 5, 30 and 60-minute samples: sizing calibrates at every interval,
including those coarser than the 5-minute spin-up, and predicting beats reacting on a daily
pattern."""

from __future__ import annotations

from dataclasses import replace

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
    tier1 = daily_tier1(series, lead, switch, "seasonal_naive", 80, HISTORY_S,
                        watch_step=cfg.dry_run_from(switch))
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


@pytest.mark.parametrize("every", ["5min", "30min", "60min"])
def test_a_loop_that_watched_the_warm_up_acts_calibrated_from_the_hand_over(every):
    """Without the dry run the sizing acts with no calibrated candidate (the budget then holds
    the reacting floor) until its record is long enough (30 windows over a minimum span), more
    than a day at hourly samples; after a week's dry run its record is calibrated from the
    hand-over."""
    series = diurnal_weekly(days=28 if every != "5min" else 10).resample(every).sum()
    series.index.freq = every
    cfg = derive_config(series, pd.Timedelta(every).total_seconds())
    demand, lead, switch, _, _ = replay_setup(series, cfg)
    unrecorded = {}
    for dry_run_s in (0.0, cfg.dry_run_s):
        c = replace(cfg, dry_run_s=dry_run_s)
        tier1 = daily_tier1(series, lead, switch, "seasonal_naive", 80, HISTORY_S,
                            watch_step=c.dry_run_from(switch))
        policy = Leadtime(c, tier1, "svc", series.index[0], engine_spec())
        passes = uncalibrated_passes(policy)
        simulate_with(policy, demand, c, switch)
        unrecorded[dry_run_s] = sum(passes)
    assert unrecorded[0.0] >= 30  # the record's floor of 30 windows: 30 hours at 60 minutes
    assert unrecorded[cfg.dry_run_s] == 0


def uncalibrated_passes(policy: Leadtime) -> list[bool]:
    """Per acting pass of ``policy``, whether its sizing's record had no calibrated candidate
    (not a price of 0 the budget chose: that too holds the reacting floor)."""
    passes: list[bool] = []
    decide = policy.decide

    def counted(obs):
        instances = decide(obs)
        passes.append(not policy.loop._sizer(policy.producer_id).losses)
        return instances

    policy.decide = counted
    return passes
