"""Scaling policies with one interface: ``decide(observation) -> desired instance count``.

A policy sees an :class:`Observation` at the start of each interval: the load and the ready
instances of the previous interval (metrics are one interval late, as in production) and the
instances ready and starting now. Only the oracle is built with the future; the predictive
policies get their Tier 1 forecasts from :mod:`simulation.forecast` (refit daily on the past).

* ``static_peak``: a fixed fleet sized for the trace's peak at the target utilisation (hindsight
  capacity planning, the classic over-provisioned baseline).
* ``hpa``: the Kubernetes HPA algorithm (``replica_calculator.go`` + behaviour defaults):
  ``desired = ceil(ready * metric/target)`` on the per-instance load metric, 10 % tolerance,
  pending instances counted at 0 on scale-up, instances without a metric at the target on
  scale-down (at 0 on scale-up), 5-minute scale-down stabilisation (the maximum recommendation
  of the window, with the 15 s sync period: one decision per interval stands for every sync in
  it), no scale-up stabilisation. Not modelled: the scale-up rate limits (default
  +100 % or +4 pods per 15 s, which never bind at one decision per interval).
* ``forecast_scale_out``: AWS predictive scaling ("forecast and scale"): capacity for each clock
  hour from the hourly mean of the Tier 1 point forecast at the target utilisation, launched
  one spin-up ahead, acting as a floor under the reactive ``hpa``: it only scales out, scale-in
  is left to the reactive policy.
* ``leadtime``: the served decision loop (:class:`loop.decision_loop.DecisionLoop`) driven by a
  replay clock: Tier 1 the champion recipe refit daily, Tier 3 the Tier 3 state fed the load
  samples production sends, the threshold gate, recalibration from its own record. It watches
  the warm-up in dry run (:meth:`Leadtime.observe`), so it acts calibrated from the hand-over.
* ``oracle``: knows the future load; holds the fewest instances meeting the SLO for every
  interval of the next spin-up lead time (the cost lower bound at zero violations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from leadtime.config import EngineSpec, LeadtimeConfig
from loop.decision_loop import Report
from loop.hpa_twin import hpa_replicas, stabilised  # re-exported: simulation.policies.hpa_replicas
from loop.sources import TierSource
from simulation.config import SimConfig
from simulation.forecast import Tier1Schedule

POLICIES = ("static_peak", "hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa", "leadtime",
            "oracle")


@dataclass(frozen=True, slots=True)
class Observation:
    """What an autoscaler knows at the start of interval ``step``."""

    step: int
    time_s: float  # seconds since the trace start
    last_load: float | None  # load of the previous interval (None: first interval or a gap)
    last_ready: int  # instances ready during the previous interval
    ready: int  # instances ready now
    starting: int  # instances launched and not yet ready
    # several resources: each one's load of the previous interval (None: one load, last_load)
    last_loads: dict[str, float | None] | None = None

    @property
    def current(self) -> int:
        return self.ready + self.starting


class Policy(Protocol):
    name: str

    def decide(self, obs: Observation) -> int: ...


def clamp(n: int, cfg: SimConfig) -> int:
    return min(max(n, cfg.min_instances), cfg.max_instances)


class HPA:
    """The Kubernetes Horizontal Pod Autoscaler on the per-instance load metric."""

    name = "hpa"

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.target = cfg.capacity_per_instance * cfg.target_utilisation
        self.window_s = cfg.hpa_scale_down_window_s
        self.last_sync_s = max(0.0, cfg.dt_s - cfg.hpa_sync_period_s)
        self.recommendations: list[tuple[float, int]] = []

    def recommend(self, obs: Observation) -> int:
        """The raw (pre-stabilisation) recommendation from last interval's metric."""
        if obs.last_load is None or obs.last_ready <= 0:
            return obs.current  # no metric: Kubernetes leaves the scale alone
        with_metric = min(obs.last_ready, obs.ready)
        return hpa_replicas(
            current_replicas=obs.current,
            ready_with_metric=with_metric,
            metric_per_pod=obs.last_load / obs.last_ready,
            target_per_pod=self.target,
            missing=obs.ready - with_metric,
            unready=obs.starting,
            tolerance=self.cfg.hpa_tolerance,
        )

    def stabilise(self, now_s: float, current: int, recommendation: int) -> int:
        """``stabilizeRecommendationWithBehaviors``: scale-down to the window's maximum.

        Kubernetes recommends every sync period (15 s) and the metric is constant within an
        interval, so one decision stands for all the syncs until the next one: it is stamped
        with the last of them (``now + interval - sync``) for the window test.
        """
        desired, self.recommendations = stabilised(self.recommendations, now_s - self.window_s,
                                                   current, recommendation)
        self.recommendations.append((now_s + self.last_sync_s, recommendation))
        return desired

    def decide(self, obs: Observation) -> int:
        return clamp(self.stabilise(obs.time_s, obs.current, self.recommend(obs)), self.cfg)


class StaticPeak:
    """A fixed fleet sized for the trace's peak at the target utilisation."""

    name = "static_peak"

    def __init__(self, cfg: SimConfig, peak_load: float) -> None:
        need = math.ceil(peak_load / (cfg.capacity_per_instance * cfg.target_utilisation) - 1e-9)
        self.instances = clamp(need, cfg)

    def decide(self, obs: Observation) -> int:
        return self.instances


class ForecastScaleOut:
    """AWS predictive scaling: an hourly forecast floor under the reactive HPA."""

    name = "forecast_scale_out"

    def __init__(self, cfg: SimConfig, hourly_point: np.ndarray, hpa: HPA | None = None) -> None:
        self.cfg = cfg
        self.hourly_point = hourly_point
        self.hpa = hpa or HPA(cfg)
        self.usable = cfg.capacity_per_instance * cfg.target_utilisation

    def decide(self, obs: Observation) -> int:
        reactive = self.hpa.decide(obs)
        forecast = self.hourly_point[obs.step]
        if not math.isfinite(forecast):
            return reactive
        return max(reactive, clamp(math.ceil(forecast / self.usable - 1e-9), self.cfg))


def replay_config(cfg: SimConfig, producer_id: str, engine: EngineSpec | None = None):
    """The replayed producer as a ``leadtime.yaml`` would declare it: the same validated model
    (:class:`leadtime.config.LeadtimeConfig`), with the trace-derived capacity and bounds, the
    engine settings at their defaults unless given, and one decision per trace interval."""
    from leadtime.config import ENGINE_DEFAULTS, parse_config

    engine = engine or ENGINE_DEFAULTS
    spec = engine.model_dump() | {"mode": "act", "decision_interval_s": cfg.dt_s}
    return parse_config({
        "engine": spec,
        "pools": {"replay": {"producers": [{
            "id": producer_id, "capacity_per_instance": cfg.capacity_per_instance,
            "min_instances": cfg.min_instances, "max_instances": cfg.max_instances,
            "target_utilisation": cfg.target_utilisation,
            "max_utilisation": cfg.max_utilisation,
            "spinup_lead_time_s": cfg.spinup_s, "slo_ms": cfg.slo_ms}]}},
    }, source="replay")


class Leadtime:
    """The served decision loop, driven through a trace by a replay clock.

    Each interval the replay does what production does, in the same order:

    1. the previous interval's load reaches Tier 3 as a ``load`` metric sample (what an exporter
       posts to ``POST /v1/observations``), stamped when it is known;
    2. the allocator reports the producer's instances and current load (``POST
       /v1/producers/state``);
    3. the clock is set to the interval's start and the loop runs one pass
       (:meth:`loop.decision_loop.DecisionLoop.step`, the same object and method the API runs).

    Tier 1 is the champion recipe refit daily on the past (:func:`simulation.forecast.daily_tier1`),
    published each midnight and asked the window question; Tier 2 has no input in a load trace
    (the engine renormalises and says so); Tier 3 is a :class:`models.tier3.state.Tier3State`,
    the state the Tier 3 service runs. The loop sizes from its calibrated window-peak quantile
    (:mod:`loop.sizing`) and re-weights the tiers every ``engine.recalibrate_every_s`` from its
    own record of predictions and observed load (``recalibrate=False``: fixed weights).
    """

    name = "leadtime"

    def __init__(
        self,
        cfg: SimConfig,
        tier1: Tier1Schedule | TierSource,
        producer_id: str = "producer",
        start: pd.Timestamp | None = None,
        engine: EngineSpec | None = None,
        recalibrate: bool = True,
        requests: pd.DataFrame | None = None,
        config: LeadtimeConfig | None = None,
        tier2_scales: dict[str, float] | None = None,
    ) -> None:
        from collections import Counter

        from loop.clock import ReplayClock
        from loop.decision_loop import DecisionLoop
        from loop.sources import Tier1Bundles, Tier2Announced, Tier3Assess, Unavailable
        from models.tier3.state import Tier3State

        self.producer_id = producer_id
        self.config = config or replay_config(cfg, producer_id, engine)
        self.start_s = (start if start is not None else pd.Timestamp(0)).timestamp()
        self.dt_s = cfg.dt_s
        self.clock = ReplayClock(self.start_s)
        if isinstance(tier1, Tier1Schedule):
            bundles = Tier1Bundles()
            for day, bundle in tier1.published:
                bundles.publish(pd.Timestamp(day).timestamp(), bundle)
        else:  # any other Tier 1 source (tests give one whose skill they know)
            bundles = tier1
        self.tier3 = Tier3State()
        keys = self.config.resource_keys().get(producer_id, {})
        declared = {name: key for name, key in keys.items() if key != producer_id}
        self.feed = (RequestFeed(requests, producer_id, declared) if requests is not None
                     else None)
        # each resource's occupancy is the units of it held: one unit of load per unit (unless
        # ``tier2_scales`` says otherwise: tier2_load_per_demand, per resource key)
        scales = tier2_scales or {key: 1.0 for key in keys.values()} or {producer_id: 1.0}
        tier2 = (Tier2Announced(self.feed.ledger, lambda: scales,
                                lambda: self.config.resource_owners())
                 if self.feed is not None
                 else Unavailable("tier2", "a load trace announces no requests"))
        self.loop = DecisionLoop(self.config, [bundles, tier2, Tier3Assess(lambda: self.tier3)],
                                 self.clock, recalibrate=recalibrate)
        self.sizing_sources: Counter[str] = Counter()  # which candidate sized (or "stepped
        # aside", the loop holding its HPA twin's count), per pass

    @property
    def weights(self) -> dict[str, float]:
        return self.loop.weights

    @property
    def weight_history(self):
        return self.loop.weight_history

    def observe(self, obs: Observation) -> None:
        """One pass in dry run (the warm-up, while another policy holds the fleet): the loop
        records its predictions, calibrates and recalibrates; what it would hold is unused."""
        self._pass(obs)

    def decide(self, obs: Observation) -> int:
        decision = self._pass(obs)
        self.sizing_sources[self._sized_by(decision)] += 1
        return decision.target_instances

    @staticmethod
    def _sized_by(decision) -> str:
        """What sized the pass, as :attr:`sizing_sources` counts it."""
        sizing = decision.sizing
        return ("uncalibrated" if sizing is None else
                "stepped aside" if sizing.aside is not None else sizing.source)

    def _pass(self, obs: Observation):
        from models.tier3.events import MetricSample

        now = self.start_s + obs.time_s
        if obs.last_load is not None and obs.step > 0:
            self.tier3.ingest(metrics=[MetricSample(
                timestamp=pd.Timestamp(now, unit="s", tz="UTC").to_pydatetime(),
                producer_id=self.producer_id, metric="load", value=obs.last_load)])
        self.clock.set(now)
        if self.feed is not None:
            self.feed.until(now)
        self.loop.report([Report(self.producer_id, obs.current, obs.last_load)])
        return self.loop.step().fleet.decisions[self.producer_id]


class RequestFeed:
    """A request trace told to Tier 2 as a front end and a scheduler would tell it: each request
    announced at its arrival with its predicted run time (:mod:`simulation.intent_replay`), as
    queued when it waits (the front end knows it queued it, not for how long), started when it
    starts, finished when it ends, into the in-flight ledger
    (:class:`models.tier2.inflight.InFlight`) the loop's Tier 2 reads. Requests without a
    prediction (before Tier 2's first fit) are not announced. ``resources`` (name: the
    producer's key for it): each request is also announced under each resource's key, holding
    what the resource's model predicts it holds (``<name>_point``, its interval ``<name>_lower``
    and ``<name>_upper`` for the bounds), as the API announces it."""

    def __init__(self, requests: pd.DataFrame, producer_id: str,
                 resources: dict[str, str] | None = None) -> None:
        from models.tier2.inflight import InFlight

        mine = requests[(requests["producer_id"] == producer_id) & requests["point"].notna()]
        self.ledger = InFlight()
        self.rows = list(mine.itertuples())
        self.events = sorted(  # (when, 0 announce / 1 start / 2 finish, row)
            [(r.arrival_s, 0, i) for i, r in enumerate(self.rows)]
            + [(r.start_s, 1, i) for i, r in enumerate(self.rows) if r.start_s > r.arrival_s]
            + [(r.end_s, 2, i) for i, r in enumerate(self.rows)])
        self.producer_id = producer_id
        self._held = {key: np.column_stack([mine[f"{name}_{end}"].to_numpy(float)
                                            for end in ("point", "lower", "upper")])
                      for name, key in (resources or {}).items()
                      if f"{name}_point" in mine.columns}  # per resource key: each row's share
        self._next = 0

    def until(self, now: float) -> None:
        """Tell the ledger every arrival, start and finish before ``now``."""
        events, ledger, pid = self.events, self.ledger, self.producer_id
        while self._next < len(events) and events[self._next][0] < now:
            at, kind, i = events[self._next]
            r = self.rows[i]
            if kind == 0:
                queued = r.start_s > r.arrival_s
                ledger.announce(pid, at, (r.point, r.lower, r.upper), r.units, job=str(i),
                                queued=queued)
                for key, held in self._held.items():  # its share of each resource
                    if np.isfinite(held[i]).all():
                        ledger.announce(key, at, (r.point, r.lower, r.upper), tuple(held[i]),
                                        job=str(i), queued=queued, owner=pid)
            elif kind == 1:
                ledger.started(pid, str(i), at)
            else:
                ledger.finished(pid, str(i), at)
            self._next += 1


class Oracle:
    """Perfect knowledge: the fewest instances meeting the SLO over the next lead time."""

    name = "oracle"

    def __init__(self, cfg: SimConfig, need: np.ndarray) -> None:
        lead = cfg.spinup_steps
        size = need.size
        # desired[t] = max(need[t .. t + lead]): an instance serving at t + lead must exist now
        padded = np.concatenate([need, np.full(lead, need[-1] if size else 0)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, lead + 1)
        self.desired = windows.max(axis=1)[:size].astype(int)
        self.cfg = cfg

    def decide(self, obs: Observation) -> int:
        return clamp(int(self.desired[obs.step]), self.cfg)
