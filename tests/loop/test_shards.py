"""Shards: loop processes that split one configuration's pools decide together exactly what one
process decides alone (pools are independent in every decision)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from leadtime.config import ConfigError, parse_config, shard, shard_of
from loop.clock import ReplayClock
from loop.decision_loop import DecisionLoop, Report
from loop.sources import Tier3Assess
from models.tier3.events import MetricSample
from models.tier3.state import Tier3State

POOLS = ("api", "batch", "gpu", "search", "media")
CONFIG = {
    "engine": {"decision_interval_s": 60, "sizing_min_history_s": 1800, "sizing_min_windows": 30},
    "pools": {pool: {"defaults": {"capacity_per_instance": 10, "max_instances": 60},
                     "producers": [{"id": f"{pool}-{i}"} for i in range(2)]}
              for pool in POOLS}}
START = 1_700_000_040.0  # no UTC midnight within the run: the weights are not recalibrated


def loads(passes: int) -> dict[str, np.ndarray]:
    """Each producer's load: a 40-minute cycle of its own size and phase, and noise."""
    rng = np.random.default_rng(7)
    t = np.arange(passes)
    out = {}
    for k, pid in enumerate(sorted(p["id"] for pool in CONFIG["pools"].values()
                                   for p in pool["producers"])):
        cycle = 60 + 40 * np.sin(2 * np.pi * (t + 7 * k) / 40)
        out[pid] = np.maximum(cycle * (1 + 0.3 * k % 4) + rng.normal(0, 5, passes), 0)
    return out


def replay(config, load: dict[str, np.ndarray], passes: int) -> list[dict]:
    """The loop on ``config`` fed the loads of its own producers, as its process would be:
    each decision (target, action, reasons) and each pool's routing, pass by pass."""
    mine = set(config.producers())
    state = Tier3State()
    clock = ReplayClock(START)
    loop = DecisionLoop(config, [Tier3Assess(lambda: state)], clock, recalibrate=False)
    instances = {pid: 8 for pid in mine}
    out = []
    for step in range(passes):
        now = clock.now()
        at = datetime.fromtimestamp(now, UTC)
        state.ingest(metrics=[MetricSample(timestamp=at, producer_id=pid, metric="load",
                                           value=float(load[pid][step])) for pid in mine])
        loop.report([Report(pid, instances[pid], float(load[pid][step])) for pid in mine])
        fleet = loop.step().fleet
        for pid, d in fleet.decisions.items():
            instances[pid] = d.target_instances
        out.append({"decisions": {pid: (d.target_instances, d.action, d.reasons)
                                  for pid, d in fleet.decisions.items()},
                    "pools": {name: (p.redirect, p.selection) for name, p in fleet.pools.items()}})
        clock.advance(60)
    return out


def test_two_shards_decide_together_what_one_process_decides():
    passes = 150
    config = parse_config(CONFIG)
    load = loads(passes)
    alone = replay(config, load, passes)
    parts = [shard(config, i, 2) for i in range(2)]
    assert sorted(p for part in parts for p in part.pools) == sorted(POOLS)  # a partition
    assert all(part.pools for part in parts)
    together = [replay(part, load, passes) for part in parts]
    for step, whole in enumerate(alone):
        merged = {"decisions": {}, "pools": {}}
        for shard_passes in together:
            for key in merged:
                merged[key].update(shard_passes[step][key])
        assert merged == whole, f"pass {step}"
    sized = [d[2] for d in alone[-1]["decisions"].values()]
    assert any(any(r.startswith("window peak") for r in reasons) for reasons in sized)


def test_the_hash_is_stable_and_spreads_the_pools():
    """The same shard in every process (not Python's salted hash()), every shard used."""
    assert [shard_of(p, 4) for p in ("api", "batch", "gpu")] == [1, 1, 0]
    names = [f"pool-{i}" for i in range(400)]
    counts = np.bincount([shard_of(n, 4) for n in names], minlength=4)
    assert counts.min() > 70


def test_a_shard_names_its_pools_or_is_refused_clearly():
    config = parse_config(CONFIG)
    assert sorted(shard(config, pools=["gpu", "api"]).producers()) == [
        "api-0", "api-1", "gpu-0", "gpu-1"]
    assert shard(config, 0, 1) is config
    with pytest.raises(ConfigError, match="shard pools nope: not in the configuration"):
        shard(config, pools=["nope"])
    with pytest.raises(ConfigError, match=r"the index must be in 0\.\.count-1"):
        shard(config, 3, 3)
    with pytest.raises(ConfigError, match="owns no pool"):
        shard(config, next(i for i in range(64) if all(shard_of(p, 64) != i for p in POOLS)), 64)
