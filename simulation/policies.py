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
* ``leadtime``: the pre-allocation engine (:mod:`leadtime.engine`) with Tier 1 (the forecast
  for one lead time ahead) and Tier 3 (the load nowcast), weights recalibrated daily by the
  feedback method of the ``recalibrate`` flow; it also sees the last interval's load.
* ``oracle``: knows the future load; holds the fewest instances meeting the SLO for every
  interval of the next spin-up lead time (the cost lower bound at zero violations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from leadtime.engine import (
    DEFAULT_WEIGHTS,
    ProducerConfig,
    ProducerState,
    TierPrediction,
    allocate,
    combine,
    gate,
)
from simulation.config import SimConfig

POLICIES = ("static_peak", "hpa", "forecast_scale_out", "leadtime", "oracle")


@dataclass(frozen=True, slots=True)
class Observation:
    """What an autoscaler knows at the start of interval ``step``."""

    step: int
    time_s: float  # seconds since the trace start
    last_load: float | None  # load of the previous interval (None: first interval or a gap)
    last_ready: int  # instances ready during the previous interval
    ready: int  # instances ready now
    starting: int  # instances launched and not yet ready

    @property
    def current(self) -> int:
        return self.ready + self.starting


class Policy(Protocol):
    name: str

    def decide(self, obs: Observation) -> int: ...


def clamp(n: int, cfg: SimConfig) -> int:
    return min(max(n, cfg.min_instances), cfg.max_instances)


def hpa_replicas(
    current_replicas: int,
    ready_with_metric: int,
    metric_per_pod: float,
    target_per_pod: float,
    missing: int = 0,
    unready: int = 0,
    tolerance: float = 0.1,
) -> int:
    """Kubernetes ``calcPlainMetricReplicas``: the replica recommendation for a Pods metric.

    ``ready_with_metric`` pods report ``metric_per_pod`` on average; ``missing`` ready pods have
    no metric yet; ``unready`` pods are pending.
    """
    if ready_with_metric <= 0:
        return current_replicas
    usage_ratio = metric_per_pod / target_per_pod
    scale_up_with_unready = unready > 0 and usage_ratio > 1.0
    if not scale_up_with_unready and missing == 0:
        if abs(1.0 - usage_ratio) <= tolerance:
            return current_replicas
        return math.ceil(usage_ratio * ready_with_metric - 1e-9)
    total_usage = metric_per_pod * ready_with_metric
    pods = ready_with_metric
    if missing > 0:
        if usage_ratio < 1.0:  # scale-down: missing pods assumed at the target
            total_usage += target_per_pod * missing
        pods += missing  # scale-up: missing pods at 0
    if scale_up_with_unready:
        pods += unready  # pending pods at 0
    new_ratio = total_usage / pods / target_per_pod
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (usage_ratio < 1.0 < new_ratio)
        or (usage_ratio > 1.0 > new_ratio)
    ):
        return current_replicas
    new_replicas = math.ceil(new_ratio * pods - 1e-9)
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas
    return new_replicas


class HPA:
    """The Kubernetes Horizontal Pod Autoscaler on the per-instance load metric."""

    name = "hpa"

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.target = cfg.capacity_per_instance * cfg.target_utilisation
        self.window_s = cfg.hpa_scale_down_window.total_seconds()
        self.last_sync_s = max(0.0, cfg.dt_s - cfg.hpa_sync_period.total_seconds())
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
        cutoff = now_s - self.window_s
        self.recommendations = [(ts, r) for ts, r in self.recommendations if ts > cutoff]
        down = max([recommendation, *(r for _, r in self.recommendations)])
        up = recommendation  # scale-up stabilisation window is 0
        desired = min(max(current, up), down)  # raise to ``up``, then cap at ``down``
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


def engine_threshold() -> float:
    """The engine's default load-score threshold (``leadtime.yaml``'s ``engine.threshold``)."""
    from leadtime.config import EngineSpec

    return float(EngineSpec.model_fields["threshold"].default)


def scale_in_step(dt_s: float) -> float:
    """The engine's scale-in step for one simulated interval of ``dt_s`` seconds.

    In serving the engine decides every ``decision_interval_s`` (60 s by default) and removes at
    most ``scale_in_max_fraction`` (10 %) of the instances per decision; an interval of ``dt_s``
    stands for ``dt_s / 60`` such decisions, so the step compounds (1-minute intervals: 10 %;
    5-minute intervals: 41 %). Without this a 5-minute trace would scale in five times slower
    than the product does.
    """
    from leadtime.config import EngineSpec

    per_decision = ProducerConfig.__dataclass_fields__["scale_in_max_fraction"].default
    decision_s = EngineSpec.model_fields["decision_interval_s"].default
    if dt_s <= decision_s:
        return per_decision
    return 1.0 - (1.0 - per_decision) ** (dt_s / decision_s)


class Leadtime:
    """The product's engine, fed what production would feed it, re-weighted by its own feedback.

    * **Tier 1**: the daily-refit forecast's maximum over ``[t, t + L]`` (instances requested now
      serve from ``t + L``, the window the design names; instances removed now are gone at once,
      so a scale-in must still respect the forecast until then).
    * **Tier 3**: :class:`models.tier3.nowcast.LoadNowcast`, the same class Tier 3 runs on the
      ``load`` metrics posted to the API, fed each interval's load when it is known.
    * **Tier 2** has no input in a load trace: the engine renormalises over the others and says so.
    * **Threshold**: as in serving, a scale-out is only pre-allocated when the load score
      (predicted point / current capacity) reaches the engine's threshold (0.6 by default).
    * **Feedback**: every ``recalibrate_every_s`` the policy joins its logged tier predictions
      (the last ``window_s``) with the load that followed and runs
      :func:`models.recalibrate.recalibrate`, the method of the ``recalibrate`` flow; the
      candidate weights replace the current ones only when they would have predicted the last
      part of that window no worse (the promotion rule of the flow).
    """

    name = "leadtime"

    def __init__(
        self,
        cfg: SimConfig,
        window: np.ndarray,
        producer_id: str = "producer",
        weights: dict[str, float] | None = None,
        level: int = 80,
        recalibrate_every_s: float = 86400.0,
        window_s: float = 7 * 86400.0,
        threshold: float | None = None,
    ) -> None:
        from models.tier3.nowcast import LoadNowcast, NowcastConfig

        self.point, self.lower, self.upper = (np.asarray(row, dtype=float) for row in window)
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.producer_id = producer_id
        self.config = ProducerConfig(
            producer_id=producer_id,
            capacity_per_instance=cfg.capacity_per_instance,
            min_instances=cfg.min_instances,
            max_instances=cfg.max_instances,
            target_utilisation=cfg.target_utilisation,
            max_utilisation=cfg.max_utilisation,
            spinup_lead_time_s=cfg.spinup.total_seconds(),
            scale_in_cooldown_s=max(cfg.spinup.total_seconds(), cfg.dt_s),
            scale_in_max_fraction=scale_in_step(cfg.dt_s),
        )
        # the engine's load-score gate on pre-allocation, at the serving default unless given
        self.threshold = engine_threshold() if threshold is None else threshold
        self.lead = cfg.spinup_steps
        self.dt_s = cfg.dt_s
        self.tier3 = LoadNowcast(NowcastConfig(lead_s=self.lead * cfg.dt_s, level=level))
        self.recalibrate_every_s = recalibrate_every_s
        self.window_steps = max(1, int(window_s // cfg.dt_s))
        size = self.point.size
        self.loads = np.full(size, np.nan)  # load of each interval, as it becomes known
        self.logged = np.full((2, size), np.nan)  # tier1, tier3 points per decision step
        self.first_logged: int | None = None
        self.last_recalibration_s: float | None = None
        self.last_scale_out_s: float | None = None
        self.reactive_decisions = 0  # steps without any usable tier
        self.weight_history: list[tuple[float, dict[str, float], bool]] = []

    def decide(self, obs: Observation) -> int:
        t = obs.step
        if obs.last_load is not None and t > 0:
            self.loads[t - 1] = obs.last_load
            self.tier3.update(obs.time_s, obs.last_load)
        if self.last_recalibration_s is None:
            self.last_recalibration_s = obs.time_s
        elif obs.time_s - self.last_recalibration_s >= self.recalibrate_every_s:
            self.recalibrate(t)
            self.last_recalibration_s = obs.time_s
        tiers = {
            "tier1": TierPrediction(float(self.point[t]), float(self.lower[t]), float(self.upper[t])),
            "tier3": self.tier3.predict(),
        }
        for row, tier in enumerate(("tier1", "tier3")):
            answer = tiers[tier]
            if answer is not None and answer.usable():
                self.logged[row, t] = answer.point
        if self.first_logged is None:
            self.first_logged = t
        prediction = combine(tiers, self.weights)
        if prediction is None:
            self.reactive_decisions += 1
        state = ProducerState(obs.current, obs.last_load, obs.time_s, self.last_scale_out_s)
        decision = gate(allocate(self.config, prediction, state), self.threshold)
        if decision.action == "scale_out":
            self.last_scale_out_s = obs.time_s
        return decision.target_instances

    def joined(self, now: int):
        """Logged tier points of the decisions whose window ``[s, s + L]`` is over, with the
        window's observed peak: the rows the ``recalibrate`` flow joins from the decision log."""
        import pandas as pd

        first = max(self.first_logged or 0, now - self.window_steps)
        last = now - self.lead - 1  # load of [s, s + L] known at step s + L + 1
        if last < first:
            return pd.DataFrame(columns=["decision_id", "producer_id", "window_start", "tier",
                                         "point", "actual"])
        steps = np.arange(first, last + 1)
        peaks = np.lib.stride_tricks.sliding_window_view(
            self.loads[first:last + self.lead + 1], self.lead + 1).max(axis=1)
        frames = []
        for row, tier in enumerate(("tier1", "tier3")):
            frames.append(pd.DataFrame({
                "decision_id": steps, "producer_id": self.producer_id,
                "window_start": steps * self.dt_s, "tier": tier,
                "point": self.logged[row, first:last + 1], "actual": peaks,
            }))
        return pd.concat(frames, ignore_index=True).dropna(subset=["point", "actual"])

    def recalibrate(self, now: int) -> None:
        """The feedback loop: refit the weights on the logged window, keep them if no worse."""
        from models.recalibrate import recalibrate

        joined = self.joined(now)
        if joined.empty or joined["tier"].nunique() < 2:
            return
        result = recalibrate(joined, self.weights)
        promoted = bool(result.candidate_score <= result.current_score)
        if promoted:
            self.weights = result.weights
        self.weight_history.append((now * self.dt_s, dict(result.weights), promoted))


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
