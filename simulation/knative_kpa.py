"""``knative_kpa``: Knative's Pod Autoscaler (KPA) on the load metric, at the trace's resolution.

Knative Serving scales a revision on its observed concurrency (or requests per second) averaged
over a 60-second *stable* window, and switches to a 6-second *panic* window when that short-term
demand needs at least twice the ready pods; while panicking it never scales down. It is the
reactive peer built for bursts, so it is modelled as its source has it:

* ``pkg/autoscaler/scaling/autoscaler.go`` (``autoscaler.Scale``): ``readyPodsCount = max(1,
  ready)``; ``maxScaleUp = ceil(MaxScaleUpRate * ready)``, ``maxScaleDown = floor(ready /
  MaxScaleDownRate)`` (the revision is reachable); ``dspc = ceil(stable / target)``, ``dppc =
  ceil(panic / target)``, each kept in ``[maxScaleDown, maxScaleUp]``; panic when ``dppc / ready
  >= PanicThreshold``, which also extends it; un-panic once not over the threshold and the last
  over-threshold time is more than a stable window ago; in panic the count is the larger of the
  two and never goes below the panic high-water mark (``maxPanicPods``); then the optional
  scale-down delay (the maximum over ``ScaleDownDelay``, ``aggregation/max``); a new autoscaler
  starts in panic at the current scale when more than one pod is ready (``newAutoscaler``).
* ``pkg/autoscaler/config/config.go`` defaults: stable window 60 s, panic window 10 % of it,
  panic threshold 200 %, max scale-up rate 1000, max scale-down rate 2, scale-down delay 0,
  target utilisation (``container-concurrency-target-percentage``) 70 %.
* ``pkg/autoscaler/aggregation/`` (``TimedFloat64Buckets.WindowAverage``) and
  ``pkg/autoscaler/metrics/collector.go``: the windows average the revision's total; without data
  in the stable window the metric client returns ``ErrNoData`` and the KPA leaves the scale alone.

Mapping and simplifications:

* **Metric**: the trace's load per interval stands for the revision's total concurrency, and the
  target per instance is ``capacity_per_instance * target_utilisation`` (Knative: the container
  concurrency target times the target percentage); the RPS metric uses the same formulas.
* **Windows at the trace's resolution**: each window averages the last ``floor(window / dt)``
  whole intervals, at least one. At 1-minute and 5-minute resolution the 60 s and 6 s windows are
  at most one interval, so both see only the last interval's average: stable and panic agree
  (``dspc == dppc``), panic starts exactly when ``ceil(load / target) >= 2 * ready``, and what it
  adds is the no-scale-down ratchet and its hold. The real panic window reacts within seconds to
  a surge inside an interval; here every reaction is one interval late (metrics are one interval
  late in this simulator, as for the HPA). With finer traces the windows cover several intervals;
  Knative's window-average rules are then applied per interval (a window not yet filled or
  without recent data averages its covered part, gaps inside count as 0), rounded to 6 digits.
* **Decision times**: the KPA ticks every 2 s; here it decides once per interval, at the
  interval's start (``now``), and that decision stands for the whole interval. So panic ends at
  the first decision more than a stable window after the last over-threshold one: two intervals
  later at 1-minute resolution (what 2-second ticks would give too), the next interval at
  5-minute resolution (the KPA would end it 60 s into that interval). The scale-down rate limit
  applies per decision (at most halving per interval); ticking every 2 s, Knative could halve
  again as soon as the endpoints drop, so this model scales in more slowly than Knative. The
  scale-up limit (1000x the ready pods) never binds in practice.
* Not modelled: scale to zero (activator, grace and retention periods; ``min_instances`` applies),
  target burst capacity and activator subsetting (routing, not the pod count), initial scale,
  the weighted-exponential aggregation option, min/max-scale annotations (``cfg`` bounds apply).

Example: 4 ready instances, target 50 per instance; 300 needs 6 (no panic: 6 / 4 < 2); 351 needs
``ceil(7.02) = 8 = 2 * 4`` pods, so it panics; then the load falls and it holds 8 in panic:

>>> import pandas as pd
>>> from simulation.config import SimConfig
>>> from simulation.policies import Observation
>>> cfg = SimConfig(interval_s=60.0, capacity_per_instance=100.0,
...                 target_utilisation=0.5)
>>> kpa = KnativeKPA(cfg)
>>> [kpa.decide(Observation(1, 60.0, 40.0, 1, 1, 0)),
...  kpa.decide(Observation(2, 120.0, 300.0, 4, 4, 0)),
...  kpa.decide(Observation(3, 180.0, 351.0, 4, 4, 0)), kpa.panicking,
...  kpa.decide(Observation(4, 240.0, 100.0, 8, 8, 0))]
[1, 6, 8, True, 8]
"""

from __future__ import annotations

import math
from collections import deque

from simulation.config import SimConfig
from simulation.policies import Observation, clamp

ROUND_DIGITS = 6  # aggregation: WindowAverage rounds to 6 digits


def window_average(loads: list[float | None]) -> float | None:
    """Average of the last intervals' loads (oldest first, None = no data), Knative's way.

    Leading intervals without data (window not yet filled) and trailing ones (no recent data) are
    left out of the average; gaps between data count as 0; no data at all gives None.

    >>> window_average([None, 10.0, None, 20.0, None])  # (10 + 0 + 20) / 3
    10.0
    >>> window_average([None, None]) is None
    True
    """
    known = [i for i, v in enumerate(loads) if v is not None]
    if not known:
        return None
    span = loads[known[0] : known[-1] + 1]
    total = sum(v for v in span if v is not None)
    return round(total / len(span), ROUND_DIGITS)


class KnativeKPA:
    """Knative's KPA deciding once per interval on the last intervals' load.

    The frontier knob is ``target_utilisation`` (default ``cfg.target_utilisation``, Knative's
    default is the same 70 %).
    """

    name = "knative_kpa"

    def __init__(
        self,
        cfg: SimConfig,
        target_utilisation: float | None = None,
        stable_window_s: float = 60.0,
        panic_window_percentage: float = 10.0,
        panic_threshold_percentage: float = 200.0,
        max_scale_up_rate: float = 1000.0,
        max_scale_down_rate: float = 2.0,
        scale_down_delay_s: float = 0.0,
    ) -> None:
        utilisation = cfg.target_utilisation if target_utilisation is None else target_utilisation
        if not 0 < utilisation <= 1:
            raise ValueError("target utilisation must be in (0, 1]")
        if max_scale_up_rate <= 1 or max_scale_down_rate <= 1:
            raise ValueError("max scale-up and scale-down rates must be greater than 1")
        self.cfg = cfg
        self.target = cfg.capacity_per_instance * utilisation
        self.stable_window_s = float(stable_window_s)
        panic_window_s = stable_window_s * panic_window_percentage / 100.0
        self.stable_intervals = max(1, int(stable_window_s // cfg.dt_s))
        self.panic_intervals = max(1, int(panic_window_s // cfg.dt_s))
        self.panic_threshold = panic_threshold_percentage / 100.0
        self.max_scale_up_rate = max_scale_up_rate
        self.max_scale_down_rate = max_scale_down_rate
        self.scale_down_delay_s = float(scale_down_delay_s)
        self.loads: deque[float | None] = deque(maxlen=self.stable_intervals)
        self.last_step: int | None = None
        self.panic_time: float | None = None
        self.max_panic_pods = 0
        self.started = False
        self.delayed: deque[tuple[float, int]] = deque()  # (time, desired) in the delay window
        self.panic_decisions = 0

    @property
    def panicking(self) -> bool:
        return self.panic_time is not None

    def observe(self, obs: Observation) -> None:
        """Record the load of the interval before ``obs.step`` (intervals skipped: no data)."""
        if self.last_step is not None:
            for _ in range(min(obs.step - self.last_step - 1, self.stable_intervals)):
                self.loads.append(None)
        self.loads.append(obs.last_load if obs.step > 0 else None)
        self.last_step = obs.step

    def delay(self, now: float, desired: int) -> int:
        """``ScaleDownDelay``: the largest count asked for within the delay window."""
        if self.scale_down_delay_s <= 0:
            return desired
        self.delayed.append((now, desired))
        while self.delayed and self.delayed[0][0] <= now - self.scale_down_delay_s:
            self.delayed.popleft()
        return max(count for _, count in self.delayed)

    def decide(self, obs: Observation) -> int:
        now = obs.time_s
        if not self.started:  # newAutoscaler: start in panic at the current scale if > 1 pod
            self.started = True
            if obs.ready > 1:
                self.panic_time = now
                self.max_panic_pods = obs.ready
        self.observe(obs)
        loads = list(self.loads)
        stable = window_average(loads)
        if stable is None:  # ErrNoData: no valid scale, the current one stays
            return clamp(obs.current, self.cfg)
        panic = window_average(loads[-self.panic_intervals :])
        panic = 0.0 if panic is None else panic
        ready = max(1.0, float(obs.ready))
        max_up = math.ceil(self.max_scale_up_rate * ready)
        max_down = math.floor(ready / self.max_scale_down_rate)
        dspc = math.ceil(stable / self.target)
        dppc = math.ceil(panic / self.target)
        desired_stable = int(min(max(dspc, max_down), max_up))
        desired_panic = int(min(max(dppc, max_down), max_up))
        over = dppc / ready >= self.panic_threshold
        if over:  # begin panicking, or extend the panic
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + self.stable_window_s < now:
            self.panic_time = None  # the surge has reached the stable window: un-panic
            self.max_panic_pods = 0
        desired = desired_stable
        if self.panic_time is not None:
            self.panic_decisions += 1
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)  # only increases
            desired = self.max_panic_pods
        return clamp(self.delay(now, desired), self.cfg)
