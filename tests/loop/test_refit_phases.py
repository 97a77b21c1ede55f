"""A fleet that starts together refits its sizing spread over the refit period, not all on
one pass (a pass with every producer's refit is the fleet's slowest); one producer refits as
before."""

from __future__ import annotations

import math

from leadtime.config import parse_config
from loop.clock import ReplayClock
from loop.decision_loop import DecisionLoop, Report, _refit_phases
from loop.sizing import SizingConfig
from loop.sources import Unavailable


def refits_by_pass(producers: list[str], passes: int = 30, interval_s: float = 300.0,
                   engine: dict | None = None):
    """Per pass, the producers whose sizing refitted at it (all report the same load)."""
    config = parse_config({
        "engine": {"decision_interval_s": interval_s, **(engine or {})},
        "pools": {"p": {"defaults": {"capacity_per_instance": 10},
                        "producers": [{"id": p} for p in producers]}}})
    clock = ReplayClock(1_700_000_000.0)
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock)
    out, fitted = [], {}
    for _ in range(passes):
        loop.report([Report(p, 2, 12.0) for p in producers])
        loop.step()
        now_fitted = {p: s.fitted_at for p, s in loop._sizers.items()}
        out.append(sorted(p for p, at in now_fitted.items() if fitted.get(p) != at))
        fitted = now_fitted
        clock.advance(interval_s)
    return out


def test_a_fleet_refits_spread_over_the_period_each_at_its_own_place():
    period = SizingConfig().refit_every_s
    assert period == 3600.0  # 12 passes of 300 s
    fleet = [f"svc-{i}" for i in range(8)]
    by_pass = refits_by_pass(fleet)
    assert by_pass[0] == sorted(fleet)  # the first refit: every producer, once
    for start in (1, 13):  # then, in every period, each producer once, at its place
        refits = [p for refits in by_pass[start:start + 12] for p in refits]
        assert sorted(refits) == sorted(fleet)
    assert max(len(refits) for refits in by_pass[1:]) <= 3  # never the whole fleet at once
    phases = _refit_phases({p: {"load": p} for p in fleet})
    for p in fleet:  # a place of 0.25 refits a quarter period before a place of 0
        first = next(i for i, refits in enumerate(by_pass) if i and p in refits)
        assert first == math.ceil(12 * (1 - phases[p]) - 1e-9)


def test_one_producer_refits_every_period_from_its_first_pass():
    by_pass = refits_by_pass(["svc"], passes=25)
    assert [i for i, refits in enumerate(by_pass) if refits] == [0, 12, 24]


def test_the_refit_period_is_the_engines_sizing_refit_s():
    """``engine.sizing_refit_s`` in ``leadtime.yaml`` sets how often a producer refits."""
    by_pass = refits_by_pass(["svc"], passes=25, engine={"sizing_refit_s": 7200.0})
    assert [i for i, refits in enumerate(by_pass) if refits] == [0, 24]
