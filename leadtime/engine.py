"""The pre-allocation engine: tier predictions in, explained capacity decisions out.

Pure and typed on purpose: no I/O, no heavy imports, no clock. Everything it needs (the tier
predictions, the producer's configuration and its current state) is passed in, so the same code
decides in the serving API, in the flows and in the trace-replay simulator, and it decides for
1,000 producers in a few milliseconds.

The arithmetic follows ``docs/design.md`` ("One currency for the tiers"):

* every tier predicts the load of the window that starts one spin-up lead time from now, as a
  point value with lower and upper bounds in the producer's own load unit;
* :func:`combine` takes the weighted sum of the tiers that answered, renormalising the weights
  over them (the renormalised weights are reported);
* ``load_score = predicted / capacity``;
* :func:`allocate` picks the fewest instances that keep the *point* prediction under the target
  utilisation and the *upper* bound under the maximum utilisation, within min/max; scale-out is
  immediate, scale-in is slower (a cool-down after the last scale-out and a bounded step) and
  never goes below what the current load needs. Each safety margin is taken once: the target
  utilisation is the headroom for the expected load, the upper bound is the headroom for its
  uncertainty, so the bound is held against the utilisation at which instances stop keeping up
  (``max_utilisation``), not against the target a second time. ``max_utilisation ==
  target_utilisation`` gives the stricter rule "upper bound under the target".

Every :class:`Decision` carries the reasons that produced it, in plain words.

On top of the per-producer allocation, :func:`decide_all` makes the decisions for a whole fleet:

* a **threshold** on the load score gates pre-allocation: a scale-out the upper bound asks for is
  only requested when ``load_score >= threshold`` (0 disables the gate); scale-in is unaffected;
* :func:`redirect` gives, per pool of interchangeable producers, the routing weights minimising
  the pool's predicted queueing delay (M/M/1 per producer, see the function) whenever a member is
  predicted over the threshold; otherwise the current split is kept;
* :func:`selection_weights` gives the leasing agent the share of new consumers per producer,
  proportional to predicted spare capacity, never to a producer over the threshold;
* ``dry_run`` flags every decision not to act ("forecast only").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class TierPrediction:
    """One tier's answer for one producer: the load of the window one lead time ahead."""

    point: float
    lower: float
    upper: float

    def usable(self) -> bool:
        """A prediction with a missing or non-finite value is treated as no answer."""
        isfinite = math.isfinite
        return isfinite(self.point) and isfinite(self.lower) and isfinite(self.upper)


@dataclass(slots=True)
class CombinedPrediction:
    """The weighted combination of the tiers that answered.

    Like :class:`Decision`, a plain slotted dataclass rather than a frozen one: the engine makes
    one per producer per pass, a frozen dataclass pays a guarded ``object.__setattr__`` per
    field to build, and nothing changes either after the engine returns it (``replace`` makes
    a new one)."""

    point: float
    lower: float
    upper: float
    weights: dict[str, float]  # renormalised weights of the tiers actually used
    missing: tuple[str, ...]  # tiers with a weight but no usable answer


@dataclass(frozen=True, slots=True)
class Sizing:
    """The window peak to provision for: a calibrated quantile, and where it came from.

    Made by the decision loop (``loop.sizing``) from its own record: ``value`` is ``factor``
    times the upper bound of the candidate ``source`` (a tier, ``combined`` or ``reactive``),
    the candidate with the lowest pinball ``loss`` at ``quantile``."""

    value: float
    quantile: float
    source: str
    factor: float
    loss: float = math.nan
    price: float | None = None  # a violated window's price in force, in instance-intervals
    # the budget mode: the multiple of reacting's spend allowed, and over the trailing window
    # the HPA twin's spend and the loop's own (instance-seconds); None in the price mode
    budget: float | None = None
    reacting_spend: float | None = None
    own_spend: float | None = None
    aim: float | None = None  # the multiple of reacting's spend aimed at now: the budget, moved
    # by what the loop really spent over the trailing window (engine.sizing_budget_feedback)
    # stepping aside (engine.sizing_step_aside): the windows' load the sizing would have
    # missed and the HPA twin missed, faded with age (a producer sized on several resources:
    # summed over them, each over its mean window peak); None when the sizing holds
    aside: tuple[float, float] | None = None

    def usable(self) -> bool:
        return math.isfinite(self.value) and self.value >= 0


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """What the engine must know about a producer. Load and capacity share one unit.

    Every field is required here: the defaults live in one place, ``leadtime.config``
    (``producer_config`` builds one from them).
    """

    producer_id: str
    capacity_per_instance: float  # load one instance serves at 100 % utilisation
    min_instances: int
    max_instances: int
    target_utilisation: float
    max_utilisation: float  # the most an instance is driven to; the upper bound's ceiling
    spinup_lead_time_s: float
    scale_in_cooldown_s: float  # no scale-in this soon after a scale-out
    scale_in_max_fraction: float  # remove at most this share of instances per decision
    decision_interval_s: float  # between two decisions (the engine's decision_interval_s)

    def __post_init__(self) -> None:
        if not self.capacity_per_instance > 0:
            raise ValueError(f"{self.producer_id}: capacity_per_instance must be > 0")
        if not 0 < self.target_utilisation <= 1:
            raise ValueError(f"{self.producer_id}: target_utilisation must be in (0, 1]")
        if not self.target_utilisation <= self.max_utilisation <= 1:
            raise ValueError(
                f"{self.producer_id}: max_utilisation must be in [target_utilisation, 1]"
            )
        if not 0 <= self.min_instances <= self.max_instances:
            raise ValueError(f"{self.producer_id}: need 0 <= min_instances <= max_instances")
        if not 0 < self.scale_in_max_fraction <= 1:
            raise ValueError(f"{self.producer_id}: scale_in_max_fraction must be in (0, 1]")
        if not self.decision_interval_s > 0:
            raise ValueError(f"{self.producer_id}: decision_interval_s must be > 0")

    @property
    def window_s(self) -> float:
        """How long a decision's capacity must carry the load: instances it removes go at
        once, those it requests serve from one spin-up lead time on, and the next decision's
        only from one decision interval later. The sizing calibrates on this window and Tier 1
        is asked for it; Tier 3's windows run to the first sample after the lead time, the
        same window when a pass follows each sample."""
        return self.spinup_lead_time_s + self.decision_interval_s

    @property
    def usable_capacity(self) -> float:
        """Load one instance should carry: capacity at the target utilisation."""
        return self.capacity_per_instance * self.target_utilisation

    @property
    def peak_capacity(self) -> float:
        """Load one instance can carry at most: capacity at the maximum utilisation."""
        return self.capacity_per_instance * self.max_utilisation


@dataclass(frozen=True, slots=True)
class ProducerState:
    """What the allocator reports now (times are seconds on any monotonic clock)."""

    instances: int  # running plus starting
    current_load: float | None = None  # latest observed load; None when unknown
    now_s: float = 0.0
    last_scale_out_s: float | None = None
    # the reacting floor: what the current load needs at the target utilisation, as a
    # reactive autoscaler would hold it; never held below, and scale-in goes down to the
    # target at once (None: no floor, scale-in waits its cool-down and steps)
    reacting_instances: int | None = None


@dataclass(slots=True)
class Decision:
    """An allocate decision: the instance count to request now, and why.

    Not frozen, for speed (see :class:`CombinedPrediction`, and ``docs/results.md``, "Speed",
    for what it measured); read it, never change it: ``dataclasses.replace`` makes the changed
    copy."""

    producer_id: str
    target_instances: int
    current_instances: int
    action: str  # "scale_out" | "scale_in" | "hold"
    load_score: float | None  # predicted load / current capacity (None without a prediction)
    prediction: CombinedPrediction | None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    dry_run: bool = False  # computed and logged, flagged not to act
    floor: int = 0  # what the current load needs now, clamped to [min, max]: never held below
    sizing: Sizing | None = None  # the calibrated window peak sized for (None: uncalibrated)
    resource: str = "load"  # the binding resource: the one whose count this is
    by_resource: dict[str, int] = field(default_factory=dict)  # every resource's count (several)

    @property
    def act(self) -> bool:
        """True when an allocator should apply this decision (a change, and not a dry run)."""
        return not self.dry_run and self.action != "hold"


def combine(
    predictions: Mapping[str, TierPrediction | None],
    weights: Mapping[str, float],
) -> CombinedPrediction | None:
    """Weighted sum of the tiers that answered; weights renormalised over them.

    Tiers without a weight are ignored; a tier with a weight but no usable answer is reported in
    ``missing``. Returns None when no weighted tier answered.

    Tier 2 has nothing to say here, so Tier 1 and Tier 3 share its weight (0.4 and 0.3 become
    4/7 and 3/7):

    >>> c = combine({"tier1": TierPrediction(100, 80, 130), "tier2": None,
    ...              "tier3": TierPrediction(120, 100, 150)},
    ...             {"tier1": 0.4, "tier2": 0.3, "tier3": 0.3})
    >>> round(c.point, 2), round(c.upper, 2), c.missing
    (108.57, 138.57, ('tier2',))
    """
    used: list[tuple[str, float, TierPrediction]] = []
    missing: list[str] = []
    total = 0.0
    isfinite = math.isfinite  # TierPrediction.usable, inline: this runs per producer per pass
    for tier, weight in weights.items():
        if weight <= 0:
            continue
        p = predictions.get(tier)
        if p is None or not (isfinite(p.point) and isfinite(p.lower) and isfinite(p.upper)):
            missing.append(tier)
        else:
            used.append((tier, weight, p))
            total += weight
    if total <= 0:
        return None
    point = lower = upper = 0.0
    norm: dict[str, float] = {}
    for tier, weight, p in used:
        w = weight / total
        norm[tier] = w
        point += w * p.point
        lower += w * p.lower
        upper += w * p.upper
    return CombinedPrediction(point, lower, upper, norm, tuple(missing))


def load_score(predicted_load: float, capacity: float) -> float:
    """Predicted load as a share of capacity (``inf`` when there is no capacity)."""
    if capacity <= 0:
        return math.inf if predicted_load > 0 else 0.0
    return predicted_load / capacity


def instances_for(load: float, config: ProducerConfig, per_instance: float | None = None) -> int:
    """Fewest instances that carry ``load`` at ``per_instance`` each (default: at the target
    utilisation), unclamped."""
    if load <= 0:
        return 0
    per = config.usable_capacity if per_instance is None else per_instance
    # the small epsilon keeps exact multiples (e.g. 7.000000001 from float sums) from rounding up
    return max(0, math.ceil(load / per - 1e-9))


def reacting_floor(load: float | None, config: ProducerConfig, instances: int | None = None,
                   tolerance: float = 0.0) -> int | None:
    """What the current ``load`` needs at the target utilisation, within ``[min, max]``: the
    instances a reactive autoscaler holds now, the reacting floor (None without a load). With a
    ``tolerance``, as the Kubernetes HPA's: a fleet of ``instances`` whose utilisation is within
    that fraction of the target is left as it is.

    >>> from leadtime.config import producer_config
    >>> web = producer_config("web", 10)  # 7 a instance at the target utilisation
    >>> reacting_floor(25.0, web), reacting_floor(None, web)
    (4, None)
    >>> reacting_floor(22.0, web, instances=3, tolerance=0.1)  # 1.05 of the target: as it is
    3
    """
    if load is None or not math.isfinite(load):
        return None
    needed = instances_for(load, config)
    if instances is not None and instances > 0 and tolerance > 0:
        usage = load / (instances * config.usable_capacity)
        if abs(1.0 - usage) <= tolerance:
            needed = instances
    return min(max(needed, config.min_instances), config.max_instances)


@lru_cache(maxsize=1024)
def _weights_text(weights: tuple[tuple[str, float], ...]) -> str:
    """The tier weights as a reason shows them; a fleet shares a few sets, formatted once."""
    return ", ".join(f"{tier}={weight:.2f}" for tier, weight in weights)


@lru_cache(maxsize=256)
def _percent(share: float) -> str:
    """A utilisation as a reason shows it (a fleet shares a few), formatted once."""
    return f"{share:.0%}"


def _hours(instance_seconds: float | None) -> str:
    return "n/a" if instance_seconds is None else f"{instance_seconds / 3600:.4g}"


def allocate(
    config: ProducerConfig,
    prediction: CombinedPrediction | None,
    state: ProducerState,
    sizing: Sizing | None = None,
) -> Decision:
    """Decide the instance count to request now for the window one lead time ahead.

    * with a calibrated ``sizing`` (the loop's quantile of the window peak, ``loop.sizing``):
      wanted = fewest instances keeping it under the maximum utilisation. The quantile already
      holds the headroom its price asks for, so it is not taken a second time;
    * without one: fewest instances keeping the prediction's point under the target utilisation
      and its upper bound under the maximum utilisation (without a prediction: what the current
      load needs, i.e. reactive);
    * never below what the current load needs (``current_load`` at the target utilisation; at
      the maximum utilisation with a calibrated sizing, whose quantile covers the window);
    * never below ``reacting_instances`` when given (the reacting floor: what the current load
      needs at the target utilisation, as reacting holds it; leadtime adds to it);
    * clamped to ``[min_instances, max_instances]``;
    * scale-out is applied at once; without the reacting floor, scale-in waits
      ``scale_in_cooldown_s`` after the last scale-out and removes at most
      ``scale_in_max_fraction`` of the instances (at least one); with it, scale-in is at once,
      since the floor already holds what the load needs now and the sizing what the window
      may need.

    Capacity 10 per instance: an upper bound of 60 needs 7 instances at 90 %, a point of 40
    needs 6 at 70 %, so 7:

    >>> from leadtime.config import producer_config
    >>> web = producer_config("web", 10)
    >>> d = allocate(web, CombinedPrediction(40, 30, 60, {"tier1": 1.0}, ()),
    ...              ProducerState(instances=4, current_load=25))
    >>> d.action, d.target_instances
    ('scale_out', 7)
    """
    current = state.instances
    reasons: list[str] = []
    need_now = 0
    calibrated = sizing is not None and sizing.usable()
    if state.current_load is not None and math.isfinite(state.current_load):
        need_now = instances_for(state.current_load, config,
                                 config.peak_capacity if calibrated else None)

    score: float | None = None
    if prediction is not None:
        score = load_score(prediction.point, current * config.capacity_per_instance)
    if calibrated and sizing.aside is not None:
        wanted = 0
        reasons.append(
            f"stepping aside: the HPA twin has missed less of the windows' load than the "
            f"sizing would have ({sizing.aside[1]:.4g} against {sizing.aside[0]:.4g}, older "
            f"windows fading), so the loop holds what it holds")
        if sizing.price:  # engine.sizing_step_aside_headroom: and buys above it
            wanted = instances_for(sizing.value, config, config.peak_capacity)
            reasons.append(
                f"above the twin's count, window peak q{100 * sizing.quantile:g} "
                f"{sizing.value:.4g} needs {wanted} instance(s) at "
                f"{config.max_utilisation:.0%} utilisation (from {sizing.source}), the "
                f"quantile of least expected cost at price {sizing.price:g}, the highest whose "
                f"spend with the twin's count as a floor fits the budget")
    elif calibrated and sizing.price == 0:
        wanted = 0
        reasons.append(
            f"budget: holding what reacting holds, nothing bought ahead (price 0): the sizing "
            f"is not calibrated yet, or no price spends at most {sizing.budget:g}x reacting "
            f"(HPA twin {_hours(sizing.reacting_spend)}, leadtime {_hours(sizing.own_spend)} "
            f"instance-hours over the trailing window)")
    elif calibrated:
        assert sizing is not None
        wanted = instances_for(sizing.value, config, config.peak_capacity)
        reasons.append(
            f"window peak q{100 * sizing.quantile:g} {sizing.value:.4g} needs {wanted} "
            f"instance(s) at {config.max_utilisation:.0%} utilisation (from {sizing.source}: "
            f"upper bound x {sizing.factor:.3g}, calibrated on the loop's record)"
        )
        if sizing.price is not None:
            reasons.append(
                f"q{100 * sizing.quantile:g} is the quantile of least expected cost at a "
                f"violation price of {sizing.price:g} instance-intervals")
        if sizing.budget is not None:
            aim = sizing.budget if sizing.aim is None else sizing.aim
            held = (sizing.own_spend or 0.0) / (sizing.reacting_spend or math.inf)
            moved = (f"; it held {held:.3g}x the twin's, so it aims at {aim:.3g}x"
                     if abs(aim - sizing.budget) > 1e-9 else "")
            reasons.append(
                f"budget: price {sizing.price:g} is the highest that spends at most "
                f"{sizing.budget:g}x reacting (HPA twin {_hours(sizing.reacting_spend)}, "
                f"leadtime {_hours(sizing.own_spend)} instance-hours over the trailing "
                f"window{moved})")
        if prediction is not None and prediction.missing:
            reasons.append(f"no answer from {', '.join(prediction.missing)}: weights renormalised")
    elif prediction is not None:
        by_upper = instances_for(prediction.upper, config, config.peak_capacity)
        by_point = instances_for(prediction.point, config)
        wanted = max(by_upper, by_point)
        tiers = _weights_text(tuple(prediction.weights.items()))
        reasons.append(
            f"upper bound {prediction.upper:.4g} needs {by_upper} instance(s) at "
            f"{_percent(config.max_utilisation)} utilisation, point {prediction.point:.4g} "
            f"needs {by_point} at {_percent(config.target_utilisation)}: {wanted} "
            f"(weights {tiers})"
        )
        if prediction.missing:
            reasons.append(f"no answer from {', '.join(prediction.missing)}: weights renormalised")
    else:
        wanted = need_now
        reasons.append("no tier answered: reactive, sized to the current load")

    if need_now > wanted:
        reasons.append(f"current load needs {need_now}: raised from {wanted}")
        wanted = need_now
    reacting = state.reacting_instances
    if reacting is not None and reacting > wanted:
        reasons.append(f"reacting floor: the current load needs {reacting} at the target "
                       f"utilisation: raised from {wanted}")
        wanted = reacting

    bounded = min(max(wanted, config.min_instances), config.max_instances)
    if bounded != wanted:
        side = "min" if bounded > wanted else "max"
        reasons.append(f"clamped to {side}_instances={bounded}")

    target = bounded
    if bounded < current and reacting is not None:
        reasons.append(f"scale-in to {bounded} at once: the reacting floor holds what the "
                       "current load needs")
    elif bounded < current:
        since = math.inf if state.last_scale_out_s is None else state.now_s - state.last_scale_out_s
        if since < config.scale_in_cooldown_s:
            target = current
            reasons.append(
                f"scale-in held: {since:.0f}s since the last scale-out "
                f"(cool-down {config.scale_in_cooldown_s:.0f}s)"
            )
        else:
            step = max(1, math.floor(current * config.scale_in_max_fraction))
            target = max(bounded, current - step)
            if target > bounded:
                reasons.append(f"scale-in limited to {current - target} instance(s) this step")
    action = "scale_out" if target > current else "scale_in" if target < current else "hold"
    floor = min(max(need_now, reacting or 0, config.min_instances), config.max_instances)
    return Decision(config.producer_id, target, current, action, score, prediction,
                    tuple(reasons), floor=floor, sizing=sizing if calibrated else None)


# --- fleet decisions: threshold, redirect, selection weights, dry-run ----------------------


@dataclass(frozen=True, slots=True)
class PoolDecision:
    """Routing and leasing weights for one pool of interchangeable producers (each sums to 1)."""

    pool: str
    redirect: dict[str, float]  # share of the pool's traffic each producer should receive
    current_share: dict[str, float]  # the share each producer is predicted to get unchanged
    selection: dict[str, float]  # share of new consumers the leasing agent should give each
    reasons: tuple[str, ...]
    dry_run: bool = False

    @property
    def act(self) -> bool:
        return not self.dry_run and any(
            abs(self.redirect[p] - self.current_share.get(p, 0.0)) > 1e-9 for p in self.redirect
        )


@dataclass(frozen=True, slots=True)
class FleetDecisions:
    """Everything one engine pass decides."""

    decisions: dict[str, Decision]  # by producer id
    pools: dict[str, PoolDecision]  # by pool name
    weights: dict[str, float]  # the tier weights used (before per-producer renormalisation)
    threshold: float
    dry_run: bool


def redirect(capacity: Mapping[str, float], load: Mapping[str, float]) -> dict[str, float]:
    """Routing weights (sum 1) minimising the pool's predicted mean queueing delay.

    Each producer is an M/M/1-like server of capacity ``c_i`` (load units per second); sending it
    ``x_i`` gives a delay proportional to ``x_i / (c_i - x_i)``. Minimising the sum subject to
    ``Σ x_i = Λ`` (the pool's total predicted load) has the closed form
    ``x_i = c_i - sqrt(c_i) · (Σ c - Λ) / Σ sqrt(c)`` over the producers that get traffic
    (those that would get a negative share are dropped and the rest re-solved): bigger
    producers take more, and nobody is pushed to saturation while another has room. When the
    pool is predicted over its whole capacity there is no finite optimum: the traffic is split in
    proportion to capacity (equal utilisation everywhere). Without load, also by capacity.

    A pool of a big and a small producer carrying 60 of its 100: the big one takes more than its
    capacity share (0.75), so that neither queues much:

    >>> {p: round(w, 3) for p, w in redirect({"big": 75, "small": 25}, {"big": 60}).items()}
    {'big': 0.827, 'small': 0.173}
    """
    ids = [p for p in capacity if capacity[p] > 0]
    if not ids:
        n = len(capacity)
        return {p: 1.0 / n for p in capacity} if n else {}
    total = sum(max(0.0, load.get(p, 0.0)) for p in capacity)
    cap_total = sum(capacity[p] for p in ids)
    share = {p: 0.0 for p in capacity}
    if total <= 0 or total >= cap_total:
        for p in ids:
            share[p] = capacity[p] / cap_total
        return share
    ordered = sorted(ids, key=lambda p: capacity[p], reverse=True)
    caps = [capacity[p] for p in ordered]
    roots = [math.sqrt(c) for c in caps]
    c_sum, root_sum = sum(caps), sum(roots)
    # drop the smallest producer while it would get a negative share, re-solving each time
    # (running sums: the active set is always the largest k producers)
    for k in range(len(ordered), 0, -1):
        slack = (c_sum - total) / root_sum
        if caps[k - 1] - roots[k - 1] * slack >= 0:  # the smallest gets the least: all >= 0
            for i in range(k):
                share[ordered[i]] = (caps[i] - roots[i] * slack) / total
            break
        c_sum -= caps[k - 1]
        root_sum -= roots[k - 1]
    return share


def selection_weights(
    capacity: Mapping[str, float], load: Mapping[str, float], over: Mapping[str, bool]
) -> dict[str, float]:
    """Share of new consumers per producer: proportional to predicted spare capacity.

    Producers over the threshold get none; when no producer has spare capacity the weights fall
    back to capacity shares (the leasing agent must still pick someone).
    """
    spare = {
        p: 0.0 if over.get(p) else max(0.0, capacity[p] - max(0.0, load.get(p, 0.0)))
        for p in capacity
    }
    total = sum(spare.values())
    if total > 0:
        return {p: v / total for p, v in spare.items()}
    cap_total = sum(max(0.0, c) for c in capacity.values())
    if cap_total > 0:
        return {p: max(0.0, c) / cap_total for p, c in capacity.items()}
    return {p: 1.0 / len(capacity) for p in capacity} if capacity else {}


def gate(decision: Decision, threshold: float) -> Decision:
    """Hold a pre-allocation whose load score is under the threshold, never below the floor.

    The threshold gates *pre*-allocation: a scale-out asked for by the predicted load. What the
    current load needs (``decision.floor``) is not a prediction and is never held back, and
    neither is a calibrated sizing (``decision.sizing``): its price already decided what a
    window's headroom is worth, and the weighted point, an average, cannot see a burst that fires
    at only some of its slots.

    2 instances of capacity 10 are 100 % busy (load 20) while Tier 1 predicts 5: the load score
    is 0.25, under the threshold, yet the current load needs 3 instances at 70 %:

    >>> from leadtime.config import producer_config
    >>> d = allocate(producer_config("web", 10), CombinedPrediction(5, 4, 6, {"tier1": 1.0}, ()),
    ...              ProducerState(instances=2, current_load=20))
    >>> gated = gate(d, threshold=0.6)
    >>> gated.action, gated.target_instances
    ('scale_out', 3)
    """
    if (
        threshold > 0
        and decision.sizing is None
        and decision.action == "scale_out"
        and decision.load_score is not None
        and decision.load_score < threshold
        and decision.prediction is not None
        and decision.target_instances > max(decision.current_instances, decision.floor)
    ):
        held = max(decision.current_instances, decision.floor)
        note = (f"load score {decision.load_score:.2f} < threshold {threshold:.2f}: "
                f"no pre-allocation (would have requested {decision.target_instances})")
        if held > decision.current_instances:
            note += f"; the current load needs {held}"
        action = "scale_out" if held > decision.current_instances else "hold"
        return replace(decision, target_instances=held, action=action,
                       reasons=(*decision.reasons, note))
    return decision


def bind_resources(producer_id: str, by_resource: Mapping[str, Decision]) -> Decision:
    """One producer's decision from its resources' (each decided as a producer of its own): the
    resource needing the most instances binds, as the Kubernetes HPA takes the largest count
    its metrics ask for (the first declared among equals). Its reasons come first, each
    prefixed by its resource; the floor is the highest floor.

    >>> from leadtime.config import producer_config
    >>> state = ProducerState(instances=4, current_load=None)
    >>> cpu = allocate(producer_config("db/cpu", 10), CombinedPrediction(40, 30, 60, {}, ()), state)
    >>> memory = allocate(producer_config("db/memory", 10),
    ...                   CombinedPrediction(20, 15, 30, {}, ()), state)
    >>> d = bind_resources("db", {"cpu": cpu, "memory": memory})
    >>> d.producer_id, d.resource, d.target_instances, d.by_resource
    ('db', 'cpu', 7, {'cpu': 7, 'memory': 4})
    >>> d.reasons[0]
    'binding resource cpu: 7 instance(s) (memory 4)'
    """
    resource, binding = max(by_resource.items(), key=lambda item: item[1].target_instances)
    counts = {name: d.target_instances for name, d in by_resource.items()}
    others = ", ".join(f"{name} {n}" for name, n in counts.items() if name != resource)
    reasons = [f"binding resource {resource}: {binding.target_instances} instance(s)"
               + (f" ({others})" if others else "")]
    reasons += [f"{resource}: {r}" for r in binding.reasons]
    target, current = binding.target_instances, binding.current_instances
    return replace(binding, producer_id=producer_id, reasons=tuple(reasons),
                   floor=max(d.floor for d in by_resource.values()), resource=resource,
                   by_resource=counts,
                   action="scale_out" if target > current else "scale_in" if target < current
                   else "hold")


def decide_all(
    configs: Mapping[str, ProducerConfig],
    predictions: Mapping[str, Mapping[str, TierPrediction | None]],
    states: Mapping[str, ProducerState],
    pools: Mapping[str, list[str]] | None = None,
    *,
    weights: Mapping[str, float],
    threshold: float,
    dry_run: bool = False,
    sizing: Mapping[str, Sizing | None] | None = None,
    resources: Mapping[str, Mapping[str, str]] | None = None,
) -> FleetDecisions:
    """The engine's one entry point: allocate, gate, redirect and selection weights for a fleet.

    A producer without a state is taken as running ``min_instances`` (at least 1) with unknown
    load. Pools name producer ids; ids without a config are ignored. ``sizing`` gives the
    calibrated window peak per producer (absent: the uncalibrated rule).

    ``resources`` maps a producer sized on several resources to ``{resource: key}``: the
    configs, predictions, states and sizing are then keyed by resource, each decided as a
    producer, and the producer's decision is the binding one's (:func:`bind_resources`); its
    pool sees it in the binding resource's unit.
    """
    decisions: dict[str, Decision] = {}
    sizing = sizing or {}
    for pid, config in configs.items():
        state = states.get(pid)
        assumed = state is None
        if assumed:
            state = ProducerState(instances=max(1, config.min_instances))
        decision = gate(allocate(config, combine(predictions.get(pid, {}), weights), state,
                                 sizing.get(pid)), threshold)
        if assumed:  # say it: the current count is an assumption, not a report
            decision = replace(decision, reasons=(
                f"no state reported: assumed {state.instances} instance(s) running, load "
                "unknown (report it with POST /v1/producers/state)", *decision.reasons))
        if dry_run:
            decision = replace(decision, dry_run=True,
                               reasons=(*decision.reasons, "dry run: not acted on"))
        decisions[pid] = decision
    binding_key: dict[str, str] = {}  # producer: the key its decision came from
    for pid, keys in (resources or {}).items():
        if list(keys.values()) == [pid]:
            continue  # its one load: decided under its own id
        parts = {name: decisions.pop(key) for name, key in keys.items() if key in decisions}
        if parts:
            decisions[pid] = bind_resources(pid, parts)
            binding_key[pid] = keys[decisions[pid].resource]

    pool_out: dict[str, PoolDecision] = {}
    for pool, members in (pools or {}).items():
        ids = [p for p in members if p in decisions]
        if not ids:
            continue
        capacity: dict[str, float] = {}
        load: dict[str, float] = {}
        over: dict[str, bool] = {}
        limit = threshold if threshold > 0 else 1.0  # a load score at or over it is over
        for p in ids:
            d = decisions[p]
            # capacity surely there both now and at the window one lead time ahead
            key = binding_key.get(p, p)
            instances = min(d.current_instances, d.target_instances)
            capacity[p] = room = instances * configs[key].capacity_per_instance
            if d.prediction is not None:
                load[p] = value = max(0.0, d.prediction.point)
            else:
                current = states.get(key)
                load[p] = value = float(current.current_load or 0.0) if current else 0.0
            over[p] = load_score(value, room) >= limit
        total = sum(load.values())
        current_share = (
            {p: load[p] / total for p in ids} if total > 0
            else {p: 1.0 / len(ids) for p in ids}
        )
        hot = [p for p in ids if over[p]]
        reasons: list[str] = []
        if hot:
            weights_out = redirect(capacity, load)
            reasons.append(
                f"over threshold: {', '.join(hot)}; routing weights minimise predicted queueing "
                f"delay for a pool load of {total:.4g} over capacity "
                f"{sum(capacity.values()):.4g}"
            )
            for p in ids:
                if abs(weights_out[p] - current_share[p]) > 1e-6:
                    reasons.append(f"{p}: {current_share[p]:.2f} -> {weights_out[p]:.2f}")
        else:
            weights_out = dict(current_share)
            reasons.append("no producer over the threshold: current split kept")
        if dry_run:
            reasons.append("dry run: not acted on")
        pool_out[pool] = PoolDecision(pool, weights_out, current_share,
                                      selection_weights(capacity, load, over), tuple(reasons),
                                      dry_run)
    return FleetDecisions(decisions, pool_out, dict(weights), threshold, dry_run)
