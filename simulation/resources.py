"""Replay of a producer sized on several resources: the binding one changes over the day.

A producer's instances each carry some of every resource (cores, memory, network). Each
interval the simulator serves every resource with the same instances
(:func:`simulation.simulator.serve`, one resource at a time), and the interval violates the SLO
when **any** resource is short. An interval counts in proportion to what is at stake then: the
instances' worth of its binding resource (``max`` over resources of load / capacity per
instance).

The policies:

* ``hpa``: the Kubernetes HPA on every resource's metric, as ``computeReplicasForMetrics`` does
  for several metrics: each metric's recommendation, the largest taken, then one downscale
  stabilisation (:class:`MultiMetricHPA`);
* ``hpa_cpu``: the same HPA on the CPU metric alone;
* ``forecast_scale_out`` and ``crane_ehpa``: each peer once per resource, fed that resource's
  load and forecast, and the largest count taken (:class:`MaxOverResources`), as their HPAs
  combine several metrics; ``knative_kpa`` scales on one metric only (Knative's KPA has no
  multi-metric mode): CPU;
* ``leadtime``: the served decision loop with the producer's resources declared
  (``resources`` in ``leadtime.yaml``): each resource's load reported, Tier 1 refit daily per
  resource, Tier 3 fed each resource's samples, the binding resource sizing;
* ``leadtime_cpu``: the same loop with CPU as the producer's one load;
* ``oracle``: the fewest instances meeting the SLO on every resource over the next lead time;
* ``oracle_cpu``: the same on CPU alone (short on the other resources): what the other
  resources cost at least, ``oracle`` against it.

The scenario (:func:`binding_shift`): CPU follows a business day and binds most of the time,
memory a nightly batch from 01:00 to 02:00, the network a weekly backup on Sunday from 02:00
to 04:00. Each binds at its own hours and starts sharply, so a spin-up lead time ahead is worth
having for all three.

A request trace that declares its resources (``resources:`` in its schema, e.g. the
``cpu_memory_jobs`` scenario) is replayed the same way: each resource's load is the occupancy of
what the requests hold of it (:func:`request_resources`), and leadtime hears every request
through Tier 2 as the API does, each resource's share predicted by its own model
(:func:`simulation.intent_replay.predict_requests`); ``leadtime_without_tier2`` is the same
loop told nothing of the requests (Tiers 1 and 3 only), and ``leadtime_tier2_one_demand`` the
loop told each request's run time only, every resource's share one demand scaled by a factor
(:func:`one_demand`), as before resources had models of their own.

``uv run leadtime bench resources [--json]`` prints the table.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadtime.config import LOAD, PRODUCER_DEFAULTS, LeadtimeConfig, parse_config, resource_of
from leadtime.data import infer_interval
from simulation.config import SimConfig, capacity_for
from simulation.metrics import add_cost_vs_oracle, score
from simulation.policies import HPA, ForecastScaleOut, Leadtime, Observation, Oracle, Policy, clamp
from simulation.simulator import Run, serve, simulate, slo_need

#: The scenario's resources: capacity per instance (cores, GB, Gbit/s), and its ceiling.
CAPACITY = {"cpu": 4.0, "memory": 16.0, "network": 1.0}
MAX_INSTANCES = 60
POLICIES = ("hpa", "hpa_cpu", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime",
            "leadtime_cpu", "oracle", "oracle_cpu")


def binding_shift(days: int = 28, interval: str = "5min", seed: int = 11,
                  producer_id: str = "orders") -> pd.DataFrame:
    """A load trace in the long format (timestamp, producer_id, resource, value) whose binding
    resource changes: CPU by day, memory in a nightly batch, network in a weekly backup.

    >>> frame = binding_shift(days=7)
    >>> sorted(frame["resource"].unique()), len(frame) == 3 * 7 * 288
    (['cpu', 'memory', 'network'], True)
    """
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-03-04", periods=int(pd.Timedelta(days=days) / pd.Timedelta(interval)),
                          freq=interval)
    hours = (index.hour + index.minute / 60).to_numpy()
    sunday = index.dayofweek.to_numpy() == 6
    weekday = index.dayofweek.to_numpy() < 5
    n = len(index)

    def noisy(level: np.ndarray, sd: float) -> np.ndarray:
        return np.maximum(level * (1 + rng.normal(0, sd, n)), 0.0)

    hump = np.exp(-((hours - 14.0) ** 2) / (2 * 3.0**2))
    cpu = noisy(6.0 + 30.0 * hump * np.where(weekday, 1.0, 0.5), 0.06)
    batch = (hours >= 1.0) & (hours < 2.0)
    memory = noisy(20.0 + 110.0 * batch, 0.04)
    backup = sunday & (hours >= 2.0) & (hours < 4.0)
    network = noisy(1.0 + 9.0 * backup, 0.05)
    values = {"cpu": cpu, "memory": memory, "network": network}
    return pd.concat([pd.DataFrame({"timestamp": index, "producer_id": producer_id,
                                    "resource": name, "value": v})
                      for name, v in values.items()], ignore_index=True)


class MultiMetricHPA:
    """The Kubernetes HPA on several metrics: each metric's recommendation, the largest
    taken, then one downscale stabilisation (``computeReplicasForMetrics`` and
    ``stabilizeRecommendationWithBehaviors``)."""

    name = "hpa"

    def __init__(self, cfgs: dict[str, SimConfig]) -> None:
        self.per_metric = {name: HPA(cfg) for name, cfg in cfgs.items()}
        self.stabiliser = next(iter(self.per_metric.values()))
        self.cfg = self.stabiliser.cfg

    def decide(self, obs: Observation) -> int:
        loads = obs.last_loads or {}
        recommendation = max(hpa.recommend(replace(obs, last_load=loads.get(name)))
                             for name, hpa in self.per_metric.items())
        return clamp(self.stabiliser.stabilise(obs.time_s, obs.current, recommendation), self.cfg)


class MaxOverResources:
    """A peer on several metrics: one instance of it per resource, each fed that resource's
    load, and the largest count any asks for."""

    def __init__(self, name: str, per_resource: dict[str, Policy], cfg: SimConfig) -> None:
        self.name, self.per_resource, self.cfg = name, per_resource, cfg

    def decide(self, obs: Observation) -> int:
        loads = obs.last_loads or {}
        return clamp(max(policy.decide(replace(obs, last_load=loads.get(name)))
                         for name, policy in self.per_resource.items()), self.cfg)


class LeadtimeResources(Leadtime):
    """:class:`simulation.policies.Leadtime` for a producer with several resources: the loop
    is configured with them, each resource's load is reported and fed to Tier 3 under its
    resource key, and Tier 1 answers each from its own daily fit."""

    def __init__(self, cfgs: dict[str, SimConfig], tier1: dict[str, Any], producer_id: str,
                 start: pd.Timestamp, config: LeadtimeConfig,
                 requests: pd.DataFrame | None = None,
                 tier2_scales: dict[str, float] | None = None) -> None:
        from loop.sources import Tier1Bundles
        from models.tier1.registry import BaselineBundle

        bundles = Tier1Bundles()
        days: dict[str, list[BaselineBundle]] = {}
        for schedule in tier1.values():
            for day, bundle in schedule.published:
                days.setdefault(str(day), []).append(bundle)
        for day, parts in days.items():  # one bundle a day holding every resource's fit
            bundles.publish(pd.Timestamp(day).timestamp(), BaselineBundle(
                {k: v for b in parts for k, v in b.forecasters.items()},
                {k: v for b in parts for k, v in b.choices.items()},
                {k: v for b in parts for k, v in b.fitted_until.items()},
                {k: v for b in parts for k, v in b.steps.items()}))
        super().__init__(next(iter(cfgs.values())), bundles, producer_id, start, config=config,
                         requests=requests, tier2_scales=tier2_scales)
        self.keys = config.resource_keys()[producer_id]

    @staticmethod
    def _sized_by(decision) -> str:
        return decision.resource  # the binding resource, counted per pass

    def _pass(self, obs: Observation):
        from loop.decision_loop import Report
        from models.tier3.events import MetricSample

        now = self.start_s + obs.time_s
        loads = {name: v for name, v in (obs.last_loads or {}).items() if v is not None}
        if loads and obs.step > 0:
            at = pd.Timestamp(now, unit="s", tz="UTC").to_pydatetime()
            self.tier3.ingest(metrics=[MetricSample(timestamp=at, producer_id=self.keys[name],
                                                    metric="load", value=v)
                                       for name, v in loads.items()])
        self.clock.set(now)
        if self.feed is not None:  # the requests announced, started and finished before now
            self.feed.until(now)
        self.loop.report([Report(self.producer_id, obs.current, loads=loads or None)])
        return self.loop.step().fleet.decisions[self.producer_id]


def resources_config(cfgs: dict[str, SimConfig], producer_id: str,
                     engine: Any = None) -> LeadtimeConfig:
    """The replayed producer as ``leadtime.yaml`` would declare it with its resources."""
    from leadtime.config import ENGINE_DEFAULTS

    first = next(iter(cfgs.values()))
    spec = (engine or ENGINE_DEFAULTS).model_dump() | {"mode": "act",
                                                        "decision_interval_s": first.dt_s}
    return parse_config({"engine": spec, "pools": {"replay": {"producers": [{
        "id": producer_id, "min_instances": first.min_instances,
        "max_instances": first.max_instances, "target_utilisation": first.target_utilisation,
        "max_utilisation": first.max_utilisation,
        "spinup_lead_time_s": first.spinup_s, "slo_ms": first.slo_ms,
        "resources": {name: {"capacity_per_instance": cfg.capacity_per_instance}
                      for name, cfg in cfgs.items()}}]}}}, source="replay")


def served(name: str, demands: dict[str, np.ndarray], cfgs: dict[str, SimConfig],
           run: Run) -> Run:
    """``run``'s fleet serving every resource: violated where any resource is, and each
    interval weighted by the instances' worth of its binding resource."""
    violated = np.zeros(run.violated.shape, dtype=bool)
    share = np.zeros(run.violated.shape)
    for resource, demand in demands.items():
        one = serve(name, demand, run.ready, run.starting, run.actions, cfgs[resource])
        violated |= one.violated
        share = np.maximum(share, one.late_share)
    return replace(run, policy=name, demand=stake(demands, cfgs), violated=violated,
                   late_share=share)


def stake(demands: dict[str, np.ndarray], cfgs: dict[str, SimConfig]) -> np.ndarray:
    """Per interval, the instances' worth of the binding resource (NaN where none is known)."""
    worth = np.vstack([d / cfgs[r].capacity_per_instance for r, d in demands.items()])
    known = np.isfinite(worth).any(axis=0)
    return np.where(known, np.nanmax(np.where(np.isfinite(worth), worth, -np.inf), axis=0),
                    np.nan)


@dataclass(frozen=True)
class ResourcesResult:
    """One replay of a multi-resource producer: the metrics per policy, and which resource
    bound leadtime's decisions how often."""

    producer_id: str
    metrics: dict[str, dict[str, float]]
    binding: dict[str, int]
    wall_time_s: float
    loads: pd.DataFrame | None = None  # per resource, on the replay's grid
    capacity: dict[str, float] | None = None  # per instance, per resource
    ready: dict[str, np.ndarray] | None = None  # per policy: instances ready
    violated: dict[str, np.ndarray] | None = None  # per policy: intervals missing the SLO
    scored: np.ndarray | None = None


def read_resources(path: str, producer: str | None = None,
                   ) -> tuple[pd.DataFrame, list[str]]:
    """One producer's resources from a load trace with a ``resource`` column, as the long
    frame :func:`bench_resources` replays (``producer``: which, when the trace has several),
    and notes. Raises :class:`leadtime.validation.TraceError` when there is no producer with
    two resources or more to replay."""
    from leadtime.data import read_load_trace
    from leadtime.validation import TraceError

    trace = read_load_trace(path)
    owners: dict[str, dict[str, str]] = {}
    for series in trace.producers:
        owner, resource = resource_of(series)
        if resource != LOAD:
            owners.setdefault(owner, {})[resource] = series
    for owner, found in owners.items():  # its one load, when the trace also has it
        if owner in trace.producers:
            found.setdefault("load", owner)
    several = {o: r for o, r in owners.items() if len(r) >= 2}
    if not several:
        raise TraceError(f"{trace.path.name}: no producer with two resources or more (a load "
                         "trace with a 'resource' column, e.g. cpu and memory)")
    if producer is None:
        producer = next(iter(several))
    elif producer not in several:
        raise TraceError(f"{trace.path.name}: no producer {producer!r} with two resources or "
                         f"more; it has {', '.join(several)}")
    frame = pd.concat([trace.series(key).rename("value").rename_axis("timestamp").reset_index()
                       .assign(producer_id=producer, resource=name)
                       for name, key in several[producer].items()], ignore_index=True)
    notes = [f"{len(several) - 1} other producer(s) left out: --producer picks one"
             ] if len(several) > 1 else []
    return frame[["timestamp", "producer_id", "resource", "value"]], trace.repairs + notes


def derived_capacity(frame: pd.DataFrame) -> dict[str, float]:
    """Each resource's capacity per instance where none is declared, by the rule ``bench
    autoscale`` derives a producer's by (:func:`simulation.config.capacity_for`)."""
    return {str(name): capacity_for(rows["value"].to_numpy(dtype=float))
            for name, rows in frame.groupby("resource", sort=False)}


def request_resources(path: str, interval_s: float = 300.0, producer: str | None = None,
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One producer's resources from a request trace whose schema declares them: the long
    frame :func:`bench_resources` replays (each resource's load, the mean of it the requests
    hold per interval, :func:`simulation.occupancy.occupancy`) and the producer's requests
    (:func:`simulation.traces.request_runs`). Raises :class:`leadtime.validation.TraceError`
    when the trace declares no resources or has no run times."""
    from leadtime.data import read_request_trace
    from leadtime.validation import TraceError
    from simulation.occupancy import occupancy
    from simulation.traces import request_runs

    trace = read_request_trace(path)
    name = Path(path).name
    if not trace.schema.resources:
        raise TraceError(f"{name}: its schema declares no resources (resources: {{cpu: <column>, "
                         "memory: <column>}): nothing to replay per resource")
    if trace.schema.duration_column is None:
        raise TraceError(f"{name}: replaying requests per resource needs each request's run "
                         "time (a target in seconds, or a `duration` column)")
    runs = request_runs(trace)
    producers = sorted(set(runs["producer_id"]))
    if producer is None:
        producer = producers[0]
    elif producer not in producers:
        raise TraceError(f"{name}: no producer {producer!r}; producers are: "
                         f"{', '.join(producers[:10])}")
    runs = runs[runs["producer_id"] == producer]
    arrival, start, end = (runs[c].to_numpy(float) for c in ("arrival_s", "start_s", "end_s"))
    first = np.floor(arrival.min() / interval_s) * interval_s
    edges = np.arange(first, np.floor(end.max() / interval_s) * interval_s + 2 * interval_s
                      - 1e-9, interval_s)
    index = pd.to_datetime(edges[:-1], unit="s")
    frame = pd.concat([pd.DataFrame({
        "timestamp": index, "producer_id": producer, "resource": resource,
        "value": occupancy(arrival, end - start, edges, start - arrival,
                           runs[f"units_{resource}"].to_numpy(float))})
        for resource in trace.schema.resources], ignore_index=True)
    return frame, runs


def one_demand(requests: pd.DataFrame, keys: dict[str, str], before_s: float
               ) -> tuple[pd.DataFrame, dict[str, float]] | None:
    """Tier 2 the way before per-resource models: the requests with their run times only, and
    each resource's ``tier2_load_per_demand`` as a user would set it, the mean of the resource a
    request held per unit it held, over the requests finished before ``before_s`` (the scored
    part's start). None when the requests carry no resource's prediction."""
    names = [name for name in keys if f"{name}_point" in requests.columns]
    if not names:
        return None
    past = requests[requests["end_s"] < before_s]
    units = float(past["units"].mean()) if len(past) else 1.0
    scales = {keys[name]: float(past[f"units_{name}"].mean()) / units if len(past) and units
              else 1.0 for name in names}
    dropped = [f"{name}_{end}" for name in names for end in ("point", "lower", "upper")]
    return requests.drop(columns=dropped), scales


def bench_resources(frame: pd.DataFrame, spinup_s: float = 300.0,
                    max_instances: int | None = MAX_INSTANCES, engine: Any = None,
                    history_s: float = 28 * 86400.0,
                    on_step: Any = None,
                    capacity: dict[str, float] | None = None,
                    requests: pd.DataFrame | None = None) -> ResourcesResult:
    """Replay one producer's resources (a long-format frame) under every policy; each
    resource's capacity per instance from ``capacity`` (default: the scenario's), the
    ceiling ``max_instances`` (None: twice what the binding peak needs, as
    :func:`simulation.config.derive_config` sets a producer's); each resource's Tier 1 refit
    daily on the ``history_s`` seconds before each day. ``requests`` (predicted by
    :func:`simulation.intent_replay.predict_requests`): leadtime hears them through Tier 2, and
    ``leadtime_without_tier2`` and ``leadtime_tier2_one_demand`` (:func:`one_demand`) are
    replayed beside it."""
    capacity = capacity or CAPACITY
    from simulation.bench import replay_setup
    from simulation.forecast import daily_tier1

    began = time.perf_counter()
    producer_id = str(frame["producer_id"].iloc[0])
    wide = frame.pivot_table(index="timestamp", columns="resource", values="value",
                             aggfunc="mean", sort=False)
    wide = wide[[r for r in capacity if r in wide.columns]
                + [r for r in wide.columns if r not in capacity]]
    step = infer_interval(wide.index.to_series())  # the dominant spacing
    wide = wide.asfreq(step)
    if max_instances is None:
        target = PRODUCER_DEFAULTS.target_utilisation
        peak = max(math.ceil(np.nanmax(wide[r].to_numpy(dtype=float))
                             / (capacity.get(r, 1.0) * target)) for r in wide.columns)
        max_instances = max(2 * peak, 10)
    cfgs = {r: SimConfig(interval_s=step.total_seconds(),
                         capacity_per_instance=capacity.get(r, 1.0), spinup_s=spinup_s,
                         max_instances=max_instances) for r in wide.columns}
    demands = {r: wide[r].to_numpy(dtype=float) for r in wide.columns}
    first = next(iter(cfgs))
    cpu = wide[first].rename(producer_id)
    _, lead, switch, scored, _ = replay_setup(cpu, cfgs[first])
    need = np.max([slo_need(d, cfgs[r]) for r, d in demands.items()], axis=0)
    config = resources_config(cfgs, producer_id, engine)
    keys = config.resource_keys()[producer_id]
    tier1 = {}
    for r in wide.columns:
        tier1[r] = daily_tier1(wide[r].rename(keys[r]), lead, switch, history_s=history_s,
                               watch_step=cfgs[first].dry_run_from(switch))
        if on_step:
            on_step(f"Tier 1 fitted daily on {r}")
    multi = LeadtimeResources(cfgs, tier1, producer_id, wide.index[0], config, requests)
    cpu_only = Leadtime(cfgs[first], tier1[first], keys[first], wide.index[0], engine)
    from simulation.crane_ehpa import CraneEHPA
    from simulation.knative_kpa import KnativeKPA

    policies = {
        "hpa": MultiMetricHPA(cfgs), "hpa_cpu": HPA(cfgs[first]),
        "forecast_scale_out": MaxOverResources("forecast_scale_out", {
            r: ForecastScaleOut(cfgs[r], tier1[r].hourly_point) for r in wide.columns},
            cfgs[first]),
        "crane_ehpa": MaxOverResources("crane_ehpa", {
            r: CraneEHPA(cfgs[r], wide[r]) for r in wide.columns}, cfgs[first]),
        "knative_kpa": KnativeKPA(cfgs[first]), "leadtime": multi, "leadtime_cpu": cpu_only,
        "oracle": Oracle(cfgs[first], need),
        "oracle_cpu": Oracle(cfgs[first], slo_need(demands[first], cfgs[first]))}
    names = list(POLICIES)
    if requests is not None:
        policies["leadtime_without_tier2"] = LeadtimeResources(cfgs, tier1, producer_id,
                                                               wide.index[0], config)
        names.insert(names.index("leadtime") + 1, "leadtime_without_tier2")
        scaled = one_demand(requests, keys, wide.index[int(np.argmax(scored))].timestamp())
        if scaled is not None:
            policies["leadtime_tier2_one_demand"] = LeadtimeResources(
                cfgs, tier1, producer_id, wide.index[0], config, *scaled)
            names.insert(names.index("leadtime") + 1, "leadtime_tier2_one_demand")
    metrics: dict[str, dict[str, float]] = {}
    ready, violated = {}, {}
    for name in names:
        run = served(name, demands, cfgs, simulate(demands[first], cfgs[first], policies[name],
                                                   MultiMetricHPA(cfgs), switch, loads=demands))
        metrics[name] = score(run, cfgs[first], scored, need)
        ready[name], violated[name] = run.ready, run.violated
        if on_step:
            on_step(name)
    add_cost_vs_oracle(metrics)
    hpa_hours = metrics["hpa"]["instance_hours"]
    for m in metrics.values():
        m["cost_vs_hpa"] = m["instance_hours"] / hpa_hours if hpa_hours else math.nan
    return ResourcesResult(producer_id, metrics, dict(multi.sizing_sources),
                           time.perf_counter() - began, wide,
                           {r: cfg.capacity_per_instance * cfg.max_utilisation
                            for r, cfg in cfgs.items()}, ready, violated, scored)


SHOWN = ("hpa", "leadtime", "leadtime_cpu")


def plot_resources(result: ResourcesResult, path: Path, days: int = 7) -> Path:
    """Per resource, its load against what leadtime's, leadtime on CPU alone's and the
    multi-metric HPA's instances carry of it (at the maximum utilisation), over the last
    ``days`` scored; below, each policy's intervals missing the SLO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simulation.bench import draw_misses, save_figure

    assert result.loads is not None and result.ready is not None and result.scored is not None
    loads, capacity = result.loads, result.capacity or {}
    start = max(int(np.argmax(result.scored)),
                len(loads) - int(pd.Timedelta(days=days) / (loads.index[1] - loads.index[0])))
    index = loads.index[start:]
    colours = {"hpa": "tab:blue", "leadtime": "tab:red", "leadtime_cpu": "tab:orange"}
    rows = len(loads.columns)
    fig, axes = plt.subplots(rows + 1, 1, figsize=(14, 2.6 * rows + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": [3] * rows + [1]})
    for ax, resource in zip(axes[:-1], loads.columns, strict=True):
        ax.plot(index, loads[resource].to_numpy()[start:], color="black", lw=0.8, label="load")
        for name in SHOWN:
            ax.plot(index, result.ready[name][start:] * capacity[resource], lw=0.9,
                    color=colours[name], label=f"{name}: what its instances carry")
        ax.set_ylabel(resource)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    axes[0].set_title(f"{result.producer_id}: each resource's load and what each policy's "
                      "instances carry of it (a violation: any resource short)")
    draw_misses(axes[-1], index, {name: (result.violated[name] & result.scored)[start:]
                                  for name in SHOWN}, colours)
    return save_figure(fig, path)
