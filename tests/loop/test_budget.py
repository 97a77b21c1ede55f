"""The budget mode end to end: the loop's HPA twin, the price it moves, what decisions say."""

from __future__ import annotations

import pandas as pd
import pytest

from simulation.bench import HISTORY_S, engine_spec, replay_setup
from simulation.config import derive_config
from simulation.forecast import daily_tier1
from simulation.metrics import score
from simulation.policies import HPA, Leadtime
from simulation.scenarios import scenario
from simulation.simulator import simulate


def replay(budget: float | None, **changes):
    series = scenario("intermittent_bursts", days=5)
    cfg = derive_config(series, pd.Timedelta(series.index.freq).total_seconds())
    demand, lead, switch, scored, need = replay_setup(series, cfg)
    tier1 = daily_tier1(series, lead, switch, "seasonal_naive", 80, HISTORY_S)
    engine = engine_spec().model_copy(update={"sizing_budget": budget, **changes})
    policy = Leadtime(cfg, tier1, "svc", series.index[0], engine)
    run = simulate(demand, cfg, policy, HPA(cfg), switch)
    hpa = HPA(cfg)
    reacting = score(simulate(demand, cfg, hpa, hpa, switch), cfg, scored, need)
    mine = score(run, cfg, scored, need)
    return policy, mine["instance_hours"] / reacting["instance_hours"], cfg


@pytest.fixture(scope="module")
def budget_run():
    return replay(1.0)


def test_decisions_show_the_budget_the_spends_and_the_price(budget_run):
    policy, _, _ = budget_run
    decision = policy.loop.latest.fleet.decisions["svc"]
    sizing = decision.sizing
    assert sizing is not None and sizing.budget == 1.0
    assert sizing.reacting_spend > 0 and sizing.own_spend > 0
    assert sizing.price <= engine_spec().violation_cost
    assert any("budget: price" in r for r in decision.reasons)
    assert sizing.aim is not None and 0 < sizing.aim <= 1.5  # the budget, moved by the spend


def test_the_budget_spends_about_what_reacting_spends_and_the_price_mode_more(budget_run):
    _, budget_cost, _ = budget_run
    policy, price_cost, _ = replay(None)
    assert budget_cost <= 1.1  # the twin's spend, with the lag of a trailing day's control
    assert price_cost > budget_cost  # every slot of the intermittent bursts covered
    sizing = policy.loop.latest.fleet.decisions["svc"].sizing
    assert sizing.budget is None and sizing.price == engine_spec().violation_cost


def test_no_decision_goes_under_the_reacting_floor(budget_run):
    """The loop's decisions hold at least what the current load needs at the target
    utilisation (engine.reacting_floor, the default), within the HPA's tolerance of the fleet
    reported (engine.reacting_tolerance)."""
    import math

    policy, _, cfg = budget_run
    loop = policy.loop
    state = loop.states["svc"]
    load, instances = state.current_load, state.instances
    usable = cfg.capacity_per_instance * cfg.target_utilisation
    floor = max(1, math.ceil(load / usable - 1e-9))
    if abs(1 - load / (instances * usable)) <= engine_spec().reacting_tolerance:
        floor = instances
    decision = loop.latest.fleet.decisions["svc"]
    if any("floor held" in r for r in decision.reasons):  # no tier sized: the HPA's stabilisation
        assert decision.floor >= min(floor, cfg.max_instances)
    else:
        assert decision.floor == min(floor, cfg.max_instances)
    assert decision.target_instances >= decision.floor


def test_at_price_zero_the_budget_holds_what_reacting_holds():
    """Where no price's sizing fits the budget, the loop buys nothing ahead: its decisions are
    the reacting floor, and the reasons say why (not stepping aside, which would hold the
    HPA twin's count instead)."""
    policy, cost, _ = replay(0.5, sizing_step_aside=False)  # half of reacting's: unreachable
    decision = policy.loop.latest.fleet.decisions["svc"]
    assert decision.sizing.price == 0.0
    assert decision.target_instances == decision.floor
    assert any("nothing bought ahead (price 0)" in r for r in decision.reasons)
    assert cost <= 1.05  # the floor alone: about what reacting spends
