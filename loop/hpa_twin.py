"""The HPA twin: a Kubernetes HPA run beside the loop on the observed load, with its own fleet.

The loop never acts on it. It answers one question: what would reacting have spent? The twin
keeps a simulated fleet driven by the Kubernetes HPA algorithm on the load the loop observes,
with the same lags a real HPA suffers: the metric is one interval late, instances it launches
serve only after the spin-up lead time, and scale-down waits for the 5-minute stabilisation
window. Its spend (instance-seconds, starting instances billed) over a trailing window is the
reactive baseline the loop's own spend is compared with.

It is the simulator's ``hpa`` policy (``simulation.policies.HPA`` in ``simulation.simulator``)
rewritten for a live clock, and reproduces its fleet and instance-hours exactly on a regular
cadence. Times are seconds on the loop's clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

STATE_VERSION = 1


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


def window_max(recommendations: list[tuple[float, int]], cutoff: float,
               recommendation: int) -> tuple[int, list[tuple[float, int]]]:
    """The highest of ``recommendation`` and the recommendations stamped after ``cutoff``: the
    count a downscale stabilisation window holds. Returns it and the recommendations kept.

    >>> window_max([(10.0, 8), (70.0, 6)], cutoff=30.0, recommendation=2)
    (6, [(70.0, 6)])
    """
    kept = [(ts, r) for ts, r in recommendations if ts > cutoff]
    return max([recommendation, *(r for _, r in kept)]), kept


def stabilised(recommendations: list[tuple[float, int]], cutoff: float, current: int,
               recommendation: int) -> tuple[int, list[tuple[float, int]]]:
    """Kubernetes ``stabilizeRecommendationWithBehaviors`` with the default behaviour: scale up
    to ``recommendation`` at once, scale down no lower than the highest recommendation stamped
    after ``cutoff`` (the 5-minute window, :func:`window_max`). Returns the count and the
    recommendations kept.

    >>> stabilised([(10.0, 8), (70.0, 6)], cutoff=30.0, current=8, recommendation=2)
    (6, [(70.0, 6)])
    """
    down, kept = window_max(recommendations, cutoff, recommendation)
    return min(max(current, recommendation), down), kept


@dataclass(frozen=True, slots=True)
class HpaTwinConfig:
    """The producer's settings the twin scales within, and the HPA's behaviour defaults."""

    capacity_per_instance: float
    target_utilisation: float
    min_instances: int
    max_instances: int
    spinup_s: float
    tolerance: float = 0.1
    scale_down_window_s: float = 300.0
    sync_period_s: float = 15.0
    spend_window_s: float = 86400.0  # spend kept (and reported by default) over this much time

    def __post_init__(self) -> None:
        if not self.capacity_per_instance > 0:
            raise ValueError("capacity_per_instance must be > 0")
        if not 0 < self.target_utilisation <= 1:
            raise ValueError("need 0 < target_utilisation <= 1")
        if not 0 <= self.min_instances <= self.max_instances:
            raise ValueError("need 0 <= min_instances <= max_instances")
        if self.spinup_s < 0 or self.scale_down_window_s < 0 or self.sync_period_s < 0:
            raise ValueError("durations cannot be negative")
        if not self.spend_window_s > 0:
            raise ValueError("spend_window_s must be > 0")

    @property
    def target_per_instance(self) -> float:
        """The per-instance load the HPA aims at."""
        return self.capacity_per_instance * self.target_utilisation

    def clamp(self, n: int) -> int:
        return min(max(n, self.min_instances), self.max_instances)


class HpaTwin:
    """A Kubernetes HPA and the fleet it would run, stepped once per loop pass.

    Each :meth:`step` is one pass at ``now`` with the load observed over the previous interval:

    1. launches whose spin-up has elapsed become ready (rule below);
    2. the HPA recommends from the previous interval's load per instance ready during it
       (:func:`hpa_replicas`: 10 % tolerance, pending instances at 0 on scale-up, ready
       instances without a metric at the target on scale-down); no metric keeps the scale;
    3. scale-down is stabilised to the highest recommendation of the last 5 minutes; as in
       Kubernetes a recommendation is repeated every sync period (15 s) until the next pass, so
       it is stamped with the last of those syncs, ``max(pass, next pass - sync)``;
    4. the count is clamped to ``[min, max]``; the missing instances are launched, a surplus is
       terminated at once, pending launches first, newest first.

    **Readiness.** A launch at ``t`` serves from the first pass at or after ``t + spin-up``
    (within ``1e-9`` of the pass spacing, learned from the calls). On a regular cadence ``dt``
    that is ``ceil(spin-up / dt)`` whole intervals later, the simulator's rule; a spin-up shorter
    than the interval makes the launch ready at the next pass; no spin-up, at once.

    **Spend.** Between two passes the fleet held after the first (ready plus starting) costs its
    size times the elapsed seconds, attributed to the interval that starts at the first pass.

    **Start.** The fleet is sized for the first observed load at the target utilisation, as the
    simulator starts (``initial_instances``). Passes before any load (``load=None``) are counted
    with that fleet once it is known: the size held from the first pass, as the simulator does.

    >>> twin = HpaTwin(HpaTwinConfig(capacity_per_instance=100.0, target_utilisation=0.5,
    ...                              min_instances=1, max_instances=20, spinup_s=120.0))
    >>> twin.step(0.0, 100.0)  # sized for the first load: 100 / (100 x 0.5)
    2
    >>> twin.step(60.0, 400.0)  # 200 per instance against a target of 50
    8
    >>> twin.ready, twin.starting, twin.step(120.0, 400.0), twin.step(180.0, 400.0), twin.ready
    (2, 6, 8, 8, 8)
    >>> twin.spend(180.0)  # instance-seconds: 2 x 60 + 8 x 60 + 8 x 60
    1080.0
    >>> [twin.step(t, 100.0) for t in range(240, 600, 60)]  # scale-down waits 5 minutes
    [8, 8, 8, 8, 8, 2]
    >>> HpaTwin.from_state(twin.state()).state() == twin.state()
    True
    """

    def __init__(self, config: HpaTwinConfig) -> None:
        self.config = config
        self._ready: int | None = None  # None until the first load sizes the fleet
        self._pending: deque[list[Any]] = deque()  # [ready_at, count], in launch order
        self._last_ready = 0  # instances ready during the interval since the last pass
        self._prev: float | None = None  # time of the last pass
        self._dt = 0.0  # spacing of the last two passes
        self._last_rec: int | None = None  # last pass's recommendation, stamped at this pass
        self._recs: list[tuple[float, int]] = []  # (stamp, recommendation) in the window
        self._unsized: list[float] = []  # passes before the first load
        self._spent: deque[tuple[float, float]] = deque()  # (interval start, instance-seconds)
        self.desired = 0

    @property
    def last_pass(self) -> float | None:
        """The time of the last :meth:`step` (None before the first)."""
        return self._prev

    @property
    def sized(self) -> bool:
        return self._ready is not None

    @property
    def ready(self) -> int:
        return self._ready or 0

    @property
    def starting(self) -> int:
        return sum(count for _, count in self._pending)

    @property
    def instances(self) -> int:
        """Ready plus starting: what the twin pays for now (0 before the first load)."""
        return self.ready + self.starting

    def step(self, now: float, load: float | None) -> int:
        """One pass at ``now`` with the previous interval's load (None: no metric). Returns the
        twin's desired count (0 until the first load sizes the fleet)."""
        cfg = self.config
        if load is not None and not math.isfinite(load):
            load = None
        if self._prev is not None:
            elapsed = now - self._prev
            if not elapsed > 0:
                raise ValueError(f"passes must move forward: {now} after {self._prev}")
            self._dt = elapsed
            if self._ready is not None:
                self._spent.append((self._prev, float(self.instances * elapsed)))
            if self._last_rec is not None:
                stamp = self._prev + max(0.0, elapsed - cfg.sync_period_s)
                self._recs.append((stamp, self._last_rec))
        if self._ready is None:
            if load is None:
                self._unsized.append(now)
                self._prev = now
                return 0
            self._size(now, load)
        self._trim(now)
        tol = 1e-9 * self._dt
        ready = self.ready
        while self._pending and self._pending[0][0] <= now + tol:
            ready += self._pending.popleft()[1]
        starting = self.starting
        current = ready + starting
        if load is None or self._last_ready <= 0:
            rec = current  # no metric: Kubernetes leaves the scale alone
        else:
            with_metric = min(self._last_ready, ready)
            rec = hpa_replicas(
                current_replicas=current,
                ready_with_metric=with_metric,
                metric_per_pod=load / self._last_ready,
                target_per_pod=cfg.target_per_instance,
                missing=ready - with_metric,
                unready=starting,
                tolerance=cfg.tolerance,
            )
        desired, self._recs = stabilised(self._recs, now - cfg.scale_down_window_s, current, rec)
        desired = cfg.clamp(desired)
        self._last_rec = rec
        if desired > current:
            if cfg.spinup_s <= tol:
                ready += desired - current
            else:
                self._pending.append([now + cfg.spinup_s, desired - current])
        elif desired < current:
            surplus = current - desired
            while surplus and self._pending:
                take = min(surplus, self._pending[-1][1])
                self._pending[-1][1] -= take
                surplus -= take
                if self._pending[-1][1] == 0:
                    self._pending.pop()
            ready -= surplus
        self._ready = ready
        self._last_ready = ready
        self._prev = now
        self.desired = desired
        return desired

    def _size(self, now: float, load: float) -> None:
        """Size the fleet for the first load; charge the passes before it with that fleet."""
        cfg = self.config
        n = cfg.clamp(math.ceil(load / cfg.target_per_instance - 1e-9))
        self._ready = self._last_ready = n
        times = [*self._unsized, now]
        for start, end in pairwise(times):
            self._spent.append((start, float(n * (end - start))))
            # no metric at those passes: each recommended the fleet it had
            self._recs.append((start + max(0.0, end - start - cfg.sync_period_s), n))
        self._unsized = []

    def _trim(self, now: float) -> None:
        cutoff = now - self.config.spend_window_s
        while self._spent and self._spent[0][0] < cutoff:
            self._spent.popleft()

    def spend(self, now: float, window_s: float | None = None) -> float:
        """Instance-seconds of the intervals starting in ``[now - window, now]`` (default and
        longest window: ``config.spend_window_s``), the open interval since the last pass
        included up to ``now``."""
        window = self.config.spend_window_s if window_s is None else window_s
        if window > self.config.spend_window_s:
            raise ValueError(f"only {self.config.spend_window_s} s of spend are kept")
        cutoff = now - window
        total = sum(s for start, s in self._spent if start >= cutoff)
        if self._ready is not None and self._prev is not None and cutoff <= self._prev < now:
            total += self.instances * (now - self._prev)
        return float(total)

    def state(self) -> dict[str, Any]:
        """Everything the twin needs to resume, as a plain JSON-able dict."""
        return {
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "ready": self._ready,
            "pending": [[t, n] for t, n in self._pending],
            "last_ready": self._last_ready,
            "prev": self._prev,
            "dt": self._dt,
            "last_rec": self._last_rec,
            "recs": [[t, r] for t, r in self._recs],
            "unsized": list(self._unsized),
            "spent": [[t, s] for t, s in self._spent],
            "desired": self.desired,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: HpaTwinConfig | None = None) -> HpaTwin:
        """Resume from :meth:`state`; ``config`` overrides the saved one (e.g. new settings)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown HPA twin state version: {state.get('version')}")
        twin = cls(config or HpaTwinConfig(**state["config"]))
        twin._ready = state["ready"]
        twin._pending = deque([float(t), int(n)] for t, n in state["pending"])
        twin._last_ready = int(state["last_ready"])
        twin._prev = state["prev"]
        twin._dt = float(state["dt"])
        twin._last_rec = state["last_rec"]
        twin._recs = [(float(t), int(r)) for t, r in state["recs"]]
        twin._unsized = [float(t) for t in state["unsized"]]
        twin._spent = deque((float(t), float(s)) for t, s in state["spent"])
        twin.desired = int(state["desired"])
        return twin


__all__ = ["HpaTwin", "HpaTwinConfig", "hpa_replicas"]
