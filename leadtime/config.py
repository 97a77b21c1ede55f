"""``leadtime.yaml``: pools of interchangeable producers and the engine's settings, validated.

A config names pools; each pool lists its producers with their capacity per instance, min/max
instances, spin-up lead time, target utilisation and latency SLO (pool-level ``defaults`` fill
what a producer leaves out). The ``engine`` section holds the load-score threshold, the tier
weights (default 0.4/0.3/0.3; renormalised to sum to 1) and the mode, ``act`` or ``dry_run``;
the ``tier1`` section Tier 1's daily fit (its history, backtest cut-offs and horizon).
Any defect is reported as one :class:`ConfigError` listing every problem with its location,
e.g. ``pools.web.producers[1].max_instances: must be >= min_instances (4)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from leadtime.engine import ProducerConfig


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid (message lists every problem)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: The resource a producer has when it declares none: its one ``load``.
LOAD = "load"
RESOURCE_NAME = r"^[a-z][a-z0-9_]{0,39}$"


def resource_key(producer_id: str, resource: str) -> str:
    """The key the loop tracks a declared resource of a producer under.

    >>> resource_key("db", "memory")
    'db/memory'
    """
    return f"{producer_id}/{resource}"


def resource_of(key: str) -> tuple[str, str]:
    """The producer and resource a series named by :func:`resource_key` stands for; a name
    without one is its producer's one ``load``.

    >>> resource_of("db/memory"), resource_of("web")
    (('db', 'memory'), ('web', 'load'))
    """
    owner, _, resource = key.rpartition("/")
    return (owner, resource) if owner and resource else (key, LOAD)


class ResourceSettings(_Strict):
    """One resource of a producer (CPU, memory, network, disk...): what an instance carries of
    it and how far it is driven. Utilisations left out are the producer's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity_per_instance: float = Field(
        gt=0, description="Load of this resource one instance serves at 100 % utilisation, in "
        "the unit its reports use (cores, bytes, bytes per second...).")
    target_utilisation: float | None = Field(default=None, gt=0, le=1)
    max_utilisation: float | None = Field(default=None, gt=0, le=1)
    load_query: str | None = Field(
        default=None, min_length=1, max_length=4000,
        description="PromQL of this resource's load (as the producer's load_query).")
    tier2_load_per_demand: float | None = Field(
        default=None, gt=0, description="Load of this resource one unit of Tier 2's predicted "
        "request demand per second adds (as the producer's): Tier 2 feeds the resources that "
        "set it.")


class ProducerSettings(_Strict):
    """Every per-producer setting with its default: the one home of these numbers.

    ``leadtime.yaml`` overrides them per pool (``defaults``) and per producer; the trace-replay
    simulator builds its producers from the same model (:func:`producer_config`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity_per_instance: float | None = Field(
        default=None, gt=0, description="Load one instance serves at 100 % utilisation (required).")
    min_instances: int = Field(default=1, ge=0)
    max_instances: int = Field(default=100, ge=1)
    spinup_lead_time_s: float = Field(
        default=300.0, gt=0, description="Seconds from requesting an instance to it serving; "
        "every tier predicts the peak load of [now, now + this + decision_interval_s).")
    target_utilisation: float = Field(
        default=0.7, gt=0, le=1, description="The point prediction is kept under it.")
    max_utilisation: float | None = Field(
        default=None, gt=0, le=1,
        description="Most an instance is driven to; the upper bound of the predicted load is "
                    "kept under it (the point under the target). Default max(0.9, target).")
    slo_ms: float = Field(default=500.0, gt=0)
    scale_in_cooldown_s: float = Field(
        default=300.0, ge=0, description="No scale-in this soon after a scale-out.")
    scale_in_max_fraction: float = Field(
        default=0.1, gt=0, le=1,
        description="Share of the instances one minute of decisions may remove (compounded "
                    "over the decision interval: 10 % per 60 s is 41 % per 5 minutes).")
    tier2_load_per_demand: float | None = Field(
        default=None, gt=0,
        description="Load units one unit of predicted request demand per second adds (Tier 2: "
                    "the demand announced through /v1/requests/predict). Unset: Tier 2 does not "
                    "feed this producer.")
    load_query: str | None = Field(
        default=None, min_length=1, max_length=4000,
        description="PromQL of the producer's load (one series, in its load unit; "
                    "``$producer_id`` is replaced by the producer's id): training history from "
                    "range queries, the current load every decision interval. Unset: none.")
    instances_query: str | None = Field(
        default=None, min_length=1, max_length=4000,
        description="PromQL of the producer's running plus starting instances (one series; "
                    "``$producer_id`` replaced). Unset: instances come from state reports.")
    producer_label: str | None = Field(
        default=None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Makes load_query and instances_query fleet queries: they answer one series "
                    "per producer, carrying its id under this label, and ``$producer_ids`` is "
                    "replaced by a regex of every id sharing the query, so one query per pool "
                    "reads them all. Unset: one query per producer.")
    resources: dict[Annotated[str, StringConstraints(pattern=RESOURCE_NAME)],
                    ResourceSettings] | None = Field(
        default=None, min_length=1, max_length=16,
        description="The resources the producer is sized on, by name (e.g. cpu, memory, "
        "network, disk), each with its capacity per instance: the binding one, the one needing "
        "the most instances, sets the count, as the Kubernetes HPA takes the largest count its "
        "metrics ask for. Unset: one resource, 'load', from capacity_per_instance. A pool's "
        "resources apply to its producers unless a producer declares its own (whole).")
    haproxy_server: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.:-]+/[A-Za-z0-9_.:-]+$",
        description="``backend/server`` in HAProxy that serves this producer: in ``act`` mode "
                    "the pool's redirect weights are set there (LEADTIME_HAPROXY_SOCKET). "
                    "Unset: no HAProxy weight.")

    def resolved_max_utilisation(self) -> float:
        return (self.max_utilisation if self.max_utilisation is not None
                else max(0.9, self.target_utilisation))

    def resolved_resources(self) -> dict[str, ResourceSettings]:
        """Every resource the producer is sized on, utilisations filled from the producer's:
        the declared ones, or its one ``load``."""
        if not self.resources:
            assert self.capacity_per_instance is not None
            return {LOAD: ResourceSettings(
                capacity_per_instance=self.capacity_per_instance,
                target_utilisation=self.target_utilisation,
                max_utilisation=self.resolved_max_utilisation(), load_query=self.load_query)}
        out = {}
        for name, r in self.resources.items():
            target = (r.target_utilisation if r.target_utilisation is not None
                      else self.target_utilisation)
            if r.max_utilisation is not None:
                peak = r.max_utilisation
            elif r.target_utilisation is None:
                peak = self.resolved_max_utilisation()
            else:
                peak = max(0.9, target)
            out[name] = r.model_copy(update={"target_utilisation": target,
                                             "max_utilisation": peak})
        return out


PRODUCER_DEFAULTS = ProducerSettings()
DEFAULT_MAX_UTILISATION = PRODUCER_DEFAULTS.resolved_max_utilisation()


def _overrides_of(model: type[BaseModel], name: str, doc: str) -> type[BaseModel]:
    """A model with every field of ``model``, each optional (None: not overridden) under the
    same constraints: the overrides can never drift from the settings they override."""
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        fields[key] = (info.annotation | None, FieldInfo.merge_field_infos(info, default=None))
    return create_model(name, __base__=_Strict, __doc__=doc, __module__=__name__, **fields)


ProducerDefaults = _overrides_of(
    ProducerSettings, "ProducerDefaults",
    "A pool's or a producer's overrides: any field of :class:`ProducerSettings`, or none.")


class ProducerSpec(ProducerDefaults):
    id: str = Field(min_length=1, max_length=200)


class PoolSpec(_Strict):
    defaults: ProducerDefaults = Field(default_factory=ProducerDefaults)
    producers: list[ProducerSpec] = Field(min_length=1)


class EngineSpec(_Strict):
    """The engine's settings, with their defaults (the one home of these numbers)."""

    threshold: float = Field(default=0.6, ge=0, description="Load score gating pre-allocation.")
    weights: dict[Literal["tier1", "tier2", "tier3"], float] = Field(
        default_factory=lambda: {"tier1": 0.4, "tier2": 0.3, "tier3": 0.3},
        description="Tier weights of the load score (renormalised to sum to 1).")
    level: Literal[80, 95] = Field(
        default=80, description="Central interval level every tier answers at (80: the upper "
        "bound is the 90th percentile).")
    mode: Literal["act", "dry_run"] = "dry_run"
    decision_interval_s: float = Field(default=60, gt=0,
                                       description="The decision loop runs this often.")
    recalibrate_every_s: float = Field(
        default=86400.0, gt=0, description="How often the replay's loop re-weights the tiers "
        "from its own decision log (in serving the recalibrate flow does, on its schedule).")
    recalibration_window_s: float = Field(
        default=7 * 86400.0, gt=0, description="Decisions the recalibration learns from.")
    violation_cost: float = Field(
        default=199.0, gt=0, description="Price of one window whose peak exceeds capacity, in "
        "instance-intervals: each pass holds the capacity of least expected cost (instances "
        "plus price x the chance the peak exceeds them). The most the budget mode pays; what "
        "the price mode always pays.")
    violation_unit: Literal["demand", "window"] = Field(
        default="window", description="What a violation's price counts: 'window', every "
        "violated window alike; 'demand', a window in proportion to the load it is expected to "
        "carry (its calibrated median peak over the mean peak), as the SLO's share of "
        "requests counts it, so capacity goes where more requests are at risk.")
    sizing_budget: float | None = Field(
        default=1.03, gt=0, description="The budget mode (the default): each producer's price "
        "is the highest, up to violation_cost, whose sizing would have spent at most this "
        "multiple of what reacting (the HPA twin run on the same load) spent over the last "
        "sizing_budget_window_s (1.03, chosen by leave-one-trace-out over traces at 1, 5, 30 "
        "and 60-minute samples). null: the price mode, violation_cost whatever it costs (for "
        "users who choose to buy fewer violations).")
    reacting_floor: bool = Field(
        default=True, description="Never hold fewer instances than reacting would now: what "
        "the current load needs at the target utilisation is a floor under every decision, "
        "and scale-in goes down to the decision at once (the floor holds the present, the "
        "sizing the window ahead). false: the floor is the current load at the maximum "
        "utilisation, and scale-in waits its cool-down and steps.")
    reacting_tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="The reacting floor leaves a fleet whose "
        "utilisation is within this fraction of the target as it is, as the Kubernetes HPA's "
        "tolerance does (0: the floor is exactly what the load needs).")
    reacting_stabilisation_s: float = Field(
        default=300.0, ge=0, description="Where no tier sizes (the sizing reacts: uncalibrated, "
        "price 0, or the current load is the best candidate), the reacting floor holds its "
        "highest count of this trailing window, as the Kubernetes HPA's downscale "
        "stabilisation does (its default: 300 s): leadtime then steps aside to all of what "
        "reacting does. 0: the floor is the present load's count only.")
    sizing_budget_window_s: float = Field(
        default=86400.0, gt=0, description="The trailing window the budget compares spends "
        "over.")
    sizing_budget_feedback: Literal["estimate", "repay", "track"] = Field(
        default="track", description="How the budget mode uses what the loop really spent over "
        "the trailing window against the HPA twin (the ratio r): 'estimate', not at all (the "
        "price whose estimated spend fits the budget b); 'repay', an overspend is paid back "
        "(the next refits aim at b x b / r while r > b); 'track' (the default, chosen by "
        "leave-one-trace-out over traces at 1, 5, 30 and 60-minute samples), both ways "
        "(b x b / r, at most 1.5 b), so the spend settles at the budget.")
    sizing_budget_scale_floor: float = Field(
        default=1.0, gt=0, le=1.0, description="The budget mode scales each price's estimated "
        "spend by what the loop really held against what its sizing asked over the trailing "
        "window (floors and scale-in steps move it), within [this floor, 1.5]. 1.0 (the "
        "default, chosen by leave-one-trace-out over traces at 1, 5, 30 and 60-minute "
        "samples): holding less than asked never raises what the next day may buy, holding "
        "more lowers it; 0.8 let a shortfall raise it by up to a quarter.")
    sizing_rank_at: Literal["cost", "in_force"] = Field(
        default="in_force", description="Where the sizing ranks its candidates (tiers, their "
        "combination, the current load, Tier 3's phase samples) by pinball loss: 'in_force', at "
        "the quantile of the price in force (the budget mode moves it), where the pass then "
        "sizes, and each price's spend estimated with the candidates ranked at its own "
        "quantile (chosen by leave-one-trace-out over traces at 1, 5, 30 and 60-minute "
        "samples); 'cost', at the quantile of violation_cost whatever the price in force.")
    sizing_step_aside: bool = Field(
        default=True, description="Step aside to reacting where it has done better: while "
        "the HPA twin (run on the same load) has missed less of the windows' load than the "
        "sizing would have, by at least sizing_step_aside_margin, the loop holds what the "
        "twin holds. Each window counts the load of its peak where the peak exceeded what was "
        "held, as the SLO's share of requests counts it; older windows fade over "
        "sizing_step_aside_memory_s. On by default, chosen by leave-one-trace-out over traces "
        "at 1, 5, 30 and 60-minute samples.")
    sizing_step_aside_memory_s: float = Field(
        default=7 * 86400.0, gt=0, description="How fast older windows fade in the step-aside "
        "comparison: a window's weight is exp(-age / this).")
    sizing_step_aside_margin: float = Field(
        default=0.0, ge=0, lt=1, description="How much less the twin must have missed, as a "
        "share of what the sizing missed, before the loop steps aside (none: any less, chosen "
        "by leave-one-trace-out against a twentieth, a tenth and a fifth).")
    sizing_step_aside_headroom: bool = Field(
        default=True, description="Stepping aside, hold the twin's count and, above it, what "
        "the sizing buys at the highest price whose spend, with the twin's count as a floor, "
        "fits the budget: the budget's unspent share goes where the calibrated risk is "
        "highest (in the price mode, the price in force). On by default, chosen by "
        "leave-one-trace-out over traces at 1, 5, 30 and 60-minute samples. false: the "
        "twin's count only.")
    sizing_history_s: float = Field(
        default=2 * 86400.0, gt=0, description="Windows the sizing calibration learns from "
        "(never fewer than 150). Two days, chosen by leave-one-trace-out against 1, 1.5 and 3 "
        "days; a refit sorts every window's ratios, so a shorter record refits faster.")
    sizing_refit_s: float = Field(
        default=3600.0, gt=0, description="How often each producer's sizing is refitted on its "
        "record (factors, losses, the budget's price, stepping aside). Hourly, chosen by "
        "leave-one-trace-out against 2 and 4 hours.")
    sizing_min_history_s: float = Field(
        default=7200.0, ge=0, description="How long a candidate's record of windows must span "
        "before it may size (a duration, whatever the sampling interval).")
    sizing_min_windows: int = Field(
        default=30, ge=1, description="The fewest windows a candidate may size from (the "
        "floor in samples under sizing_min_history_s: 15 hours at one sample per 30 minutes).")
    log_retention_s: float = Field(
        default=14 * 86400.0, ge=3600, description="The decision log keeps every decision and "
        "tier prediction this long (at least recalibration_window_s is sensible); older ones "
        "are folded into hourly aggregates per producer and their space reused.")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()):
            raise ValueError("tier weights must be >= 0")
        total = sum(value.values())
        if total <= 0:
            raise ValueError("at least one tier weight must be > 0")
        return {k: w / total for k, w in value.items()}


ENGINE_DEFAULTS = EngineSpec()
DEFAULT_WEIGHTS: dict[str, float] = dict(ENGINE_DEFAULTS.weights)


class Tier1Spec(_Strict):
    """Tier 1's daily fit (the ``baseline-daily`` flow, ``bench forecast``, the replays): how
    much history it sees, how the model is chosen, how far it forecasts."""

    history_s: float = Field(
        default=28 * 86400.0, ge=2 * 86400.0, description="The history each daily fit sees "
        "(28 days: four weekly cycles; at least 2 days).")
    backtest_cutoffs: int = Field(
        default=7, ge=1, description="Scored daily cut-offs of the rolling backtest that picks "
        "each producer's model and calibrates its intervals (each also needs 3 warm-up "
        "cut-offs before it).")
    horizon_s: float = Field(
        default=86400.0, ge=3600.0, description="How far each daily fit forecasts (a day: the "
        "next fit replaces it).")


TIER1_DEFAULTS = Tier1Spec()


def scale_in_fraction(per_minute: float, interval_s: float) -> float:
    """The share one decision every ``interval_s`` may remove, given the share per minute.

    >>> round(scale_in_fraction(0.1, 60), 3), round(scale_in_fraction(0.1, 300), 3)
    (0.1, 0.41)
    """
    if interval_s <= 60:
        return per_minute
    return 1.0 - (1.0 - per_minute) ** (interval_s / 60.0)


def producer_config(producer_id: str, capacity_per_instance: float,
                    decision_interval_s: float = ENGINE_DEFAULTS.decision_interval_s,
                    **overrides: Any) -> ProducerConfig:
    """An engine :class:`ProducerConfig` from the validated defaults, ``overrides`` winning.

    >>> producer_config("web", 10).target_utilisation
    0.7
    """
    settings = ProducerSettings(capacity_per_instance=capacity_per_instance,
                                **{k: v for k, v in overrides.items() if v is not None})
    return _engine_config(producer_id, settings, decision_interval_s)


def _engine_config(producer_id: str, s: ProducerSettings,
                   decision_interval_s: float) -> ProducerConfig:
    assert s.capacity_per_instance is not None
    return ProducerConfig(
        producer_id=producer_id, capacity_per_instance=s.capacity_per_instance,
        min_instances=s.min_instances, max_instances=s.max_instances,
        target_utilisation=s.target_utilisation,
        max_utilisation=s.resolved_max_utilisation(),
        spinup_lead_time_s=s.spinup_lead_time_s,
        scale_in_cooldown_s=s.scale_in_cooldown_s,
        scale_in_max_fraction=scale_in_fraction(s.scale_in_max_fraction, decision_interval_s),
        decision_interval_s=decision_interval_s)


def _fleet_queries(merged: dict[str, Any]) -> list[str]:
    """A producer's queries against its ``producer_label``: a fleet query matches its producers
    with ``$producer_ids``, a single query does not."""
    problems = []
    for name in ("load_query", "instances_query"):
        query = merged.get(name)
        if query is None:
            continue
        fleet = "$producer_ids" in query
        if merged.get("producer_label") is not None and not fleet:
            problems.append(f"{name}: must match its producers with $producer_ids when "
                            "producer_label is set (a fleet query)")
        elif merged.get("producer_label") is None and fleet:
            problems.append(f"{name}: uses $producer_ids: set producer_label, the label its "
                            "series carry the producer's id under")
    return problems


def _resource_problems(merged: dict[str, Any]) -> list[str]:
    """A producer's declared resources against its utilisations."""
    problems = []
    for name, dumped in (merged.get("resources") or {}).items():
        r = ResourceSettings(**dumped)
        target = (r.target_utilisation if r.target_utilisation is not None
                  else merged["target_utilisation"])
        if r.max_utilisation is not None and r.max_utilisation < target:
            problems.append(f"resources.{name}.max_utilisation: must be >= its "
                            f"target_utilisation ({target})")
        if r.load_query and "$producer_ids" in r.load_query:
            problems.append(f"resources.{name}.load_query: a resource's query is asked per "
                            "producer ($producer_id), not for a fleet ($producer_ids)")
    return problems


class LeadtimeConfig(_Strict):
    engine: EngineSpec = Field(default_factory=EngineSpec)
    tier1: Tier1Spec = Field(default_factory=Tier1Spec)
    pools: dict[str, PoolSpec] = Field(min_length=1)
    _keys: dict[str, dict[str, str]] | None = PrivateAttr(default=None)  # resource_keys, once

    @model_validator(mode="after")
    def _check(self) -> LeadtimeConfig:
        seen: dict[str, str] = {}
        problems: list[str] = []
        for name, pool in self.pools.items():
            for i, spec in enumerate(pool.producers):
                where = f"pools.{name}.producers[{i}]"
                if spec.id in seen:
                    problems.append(f"{where}.id: {spec.id!r} already in pool {seen[spec.id]!r}")
                seen[spec.id] = name
                merged = self._merged(pool, spec)
                if merged["capacity_per_instance"] is None and not merged["resources"]:
                    problems.append(f"{where}.capacity_per_instance: required (here or in the "
                                    "pool's defaults), or declare resources")
                problems.extend(f"{where}.{problem}" for problem in _resource_problems(merged))
                if merged["max_utilisation"] is not None and (
                        merged["max_utilisation"] < merged["target_utilisation"]):
                    problems.append(f"{where}.max_utilisation: must be >= target_utilisation "
                                    f"({merged['target_utilisation']})")
                problems.extend(f"{where}.{problem}" for problem in _fleet_queries(merged))
                if merged["max_instances"] < merged["min_instances"]:
                    problems.append(f"{where}.max_instances: must be >= min_instances "
                                    f"({merged['min_instances']})")
        for pid, keys in self.resource_keys().items():
            for resource, key in keys.items():
                if key != pid and key in seen:
                    problems.append(f"pools.{seen[pid]}: producer {pid!r}'s resource "
                                    f"{resource!r} is keyed {key!r}, which is another "
                                    "producer's id")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @staticmethod
    def _merged(pool: PoolSpec, spec: ProducerSpec) -> dict[str, Any]:
        out: dict[str, Any] = PRODUCER_DEFAULTS.model_dump()
        for source in (pool.defaults, spec):
            out.update({k: v for k, v in source.model_dump(exclude={"id"}).items() if v is not None})
        return out

    def settings_of(self, producer_id: str) -> ProducerSettings:
        """The merged settings of one producer (defaults, then its pool's, then its own)."""
        for pool in self.pools.values():
            for spec in pool.producers:
                if spec.id == producer_id:
                    return ProducerSettings(**self._merged(pool, spec))
        raise KeyError(producer_id)

    @property
    def dry_run(self) -> bool:
        return self.engine.mode == "dry_run"

    def producers(self) -> dict[str, ProducerConfig]:
        """Engine configs by producer id (scale-in step per decision interval); a producer
        with declared resources has its first one's capacity and utilisations here (the
        loop decides on every one: :meth:`resource_configs`)."""
        configs = self.resource_configs()
        return {pid: replace(configs[next(iter(keys.values()))], producer_id=pid)
                for pid, keys in self.resource_keys().items()}

    def resource_keys(self) -> dict[str, dict[str, str]]:
        """Per producer, each resource it is sized on and the key the loop tracks it under:
        the producer's id for its one ``load``, ``"<id>/<resource>"`` for declared resources
        (computed once per configuration: the loop asks every pass)."""
        if self._keys is not None:
            return self._keys
        out = {}
        for pool in self.pools.values():
            for spec in pool.producers:
                declared = self._merged(pool, spec)["resources"]
                out[spec.id] = ({name: resource_key(spec.id, name) for name in declared} if declared
                                else {LOAD: spec.id})
        self._keys = out
        return out

    def resource_configs(self) -> dict[str, ProducerConfig]:
        """Engine configs by resource key (:meth:`resource_keys`): what the loop decides on.
        A producer with its one ``load`` has the config :meth:`producers` gives it."""
        interval = self.engine.decision_interval_s
        keys = self.resource_keys()
        out = {}
        for pool in self.pools.values():
            for spec in pool.producers:
                settings = ProducerSettings(**self._merged(pool, spec))
                for name, r in settings.resolved_resources().items():
                    key = keys[spec.id][name]
                    out[key] = _engine_config(key, settings.model_copy(update={
                        "capacity_per_instance": r.capacity_per_instance,
                        "target_utilisation": r.target_utilisation,
                        "max_utilisation": r.max_utilisation}), interval)
        return out

    def tier2_scales(self) -> dict[str, float]:
        """``tier2_load_per_demand`` of the producers Tier 2 feeds, and of the declared
        resources it feeds, by resource key (:meth:`resource_owners` names their producer)."""
        out = {}
        for pool in self.pools.values():
            for spec in pool.producers:
                merged = self._merged(pool, spec)
                for name, r in (merged["resources"] or {}).items():  # dumped: dicts
                    scale = r["tier2_load_per_demand"]
                    if scale is not None:
                        out[resource_key(spec.id, name)] = float(scale)
                scale = merged["tier2_load_per_demand"]
                if scale is not None and not merged["resources"]:
                    out[spec.id] = float(scale)
        return out

    def resource_owners(self) -> dict[str, str]:
        """The producer each declared resource's key belongs to."""
        return {key: pid for pid, keys in self.resource_keys().items()
                for key in keys.values() if key != pid}

    def slo_ms(self) -> dict[str, float]:
        return {s.id: self._merged(pool, s)["slo_ms"]
                for pool in self.pools.values() for s in pool.producers}

    def pool_members(self) -> dict[str, list[str]]:
        return {name: [s.id for s in pool.producers] for name, pool in self.pools.items()}

    def pool_of(self) -> dict[str, str]:
        return {s.id: name for name, pool in self.pools.items() for s in pool.producers}


def shard_of(pool: str, count: int) -> int:
    """The shard, ``0 .. count - 1``, that decides for ``pool``: the first 8 bytes of the SHA-256
    of its name modulo ``count``, the same in every process and Python version (``hash()`` is
    salted per process), as Prometheus' ``hashmod`` relabelling shards its targets.

    >>> [shard_of(pool, 4) for pool in ("api", "batch", "gpu")]
    [1, 1, 0]
    """
    digest = hashlib.sha256(pool.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard(config: LeadtimeConfig, index: int = 0, count: int = 1,
          pools: Sequence[str] | None = None) -> LeadtimeConfig:
    """``config`` restricted to one loop process's share of the pools: the named ``pools``, or
    else the pools whose :func:`shard_of` is ``index`` among ``count`` shards. Pools are
    independent in every decision (the redirect and the selection weights stay inside a pool),
    so shards decide together what one process decides alone. One shard of one is the whole
    configuration. :class:`ConfigError` for an index out of range, an unknown pool, or a shard
    that would own no pool.

    >>> config = parse_config({"pools": {name: {"producers": [{"id": name,
    ...     "capacity_per_instance": 1}]} for name in ("api", "batch", "gpu")}})
    >>> sorted(shard(config, 1, 4).producers()), sorted(shard(config, pools=["gpu"]).pools)
    (['api', 'batch'], ['gpu'])
    """
    if pools:
        unknown = sorted(set(pools) - set(config.pools))
        if unknown:
            raise ConfigError(f"shard pools {', '.join(unknown)}: not in the configuration "
                              f"(its pools: {', '.join(sorted(config.pools))})")
        owned = [name for name in config.pools if name in set(pools)]
    else:
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"shard {index}/{count}: the index must be in 0..count-1 and "
                              "the count at least 1")
        if count == 1:
            return config
        owned = [name for name in config.pools if shard_of(name, count) == index]
    if not owned:
        raise ConfigError(f"shard {index}/{count} owns no pool (pools {', '.join(config.pools)} "
                          f"hash to shards {sorted({shard_of(p, count) for p in config.pools})}):"
                          " use fewer shards, or name each shard's pools")
    part = config.model_copy(update={"pools": {name: config.pools[name] for name in owned}})
    part._keys = None  # the whole configuration's resource keys are not this shard's
    return part


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"])
        loc = loc.replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc or '<root>'}: {msg}")
    return "\n  ".join(lines)


def parse_config(document: Any, source: str = "<config>") -> LeadtimeConfig:
    """Validate an already-parsed YAML document."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with 'pools' (and 'engine'), "
                          f"got {type(document).__name__}")
    try:
        return LeadtimeConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid:\n  {_format(exc)}") from None


def load_config(path: Path | str) -> LeadtimeConfig:
    """Read and validate ``leadtime.yaml``; :class:`ConfigError` says exactly what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(document, str(path))
