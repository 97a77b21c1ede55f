"""Simulated producer settings, with defaults derived from the trace so any trace is meaningful.

Load and capacity share the trace's unit *per interval* (e.g. requests per minute on a 1-minute
trace, CPU-% on a CPU trace). Defaults (all overridable):

* ``capacity_per_instance``: the trace's 95th percentile needs ``p95_instances`` (9) instances at
  the target utilisation, i.e. ``c = p95 / (9 * target_utilisation)``. The percentile is taken
  over the whole trace: it only fixes the unit of an instance, identically for every policy.
* ``max_instances``: twice what the trace's peak needs at the target utilisation, so the
  ceiling rarely binds; ``min_instances`` 1.
* ``target_utilisation`` 0.7 (what policies aim at), ``max_utilisation`` 0.9 (the most an
  instance is driven to; load beyond it queues).
* latency model: each instance runs ``servers_per_instance`` (4) workers, a request takes
  ``service_time_ms`` (100 ms), SLO: p99 latency within ``slo_ms`` (500 ms), backlog older than
  ``timeout_s`` (30 s) is dropped. See :mod:`simulation.latency`.
* ``spinup_s``: 300 (5 minutes); ``warmup_s``: 7 days, or fewer whole days on short traces
  (at least one day is warm-up and at least one is scored); ``dry_run_s``: 7 days, the last of
  the warm-up that leadtime's loop watches in dry run before it acts (all of it by default).

Every duration is in seconds (``interval_s``, ``spinup_s``, ``warmup_s``, ``dry_run_s``, the HPA's
``hpa_scale_down_window_s`` and ``hpa_sync_period_s``), at any sampling interval; the command
line parses ``5min`` or ``90s`` and :meth:`SimConfig.describe` prints them back that way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from leadtime.config import DEFAULT_MAX_UTILISATION, PRODUCER_DEFAULTS
from leadtime.validation import TraceError

DAY = pd.Timedelta(days=1)
WEEK_S = 7 * 86400.0


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator and the policies share for one producer. Durations are
    seconds (``interval_s``, ``spinup_s``...), whatever the sampling interval."""

    interval_s: float
    capacity_per_instance: float
    # the producer's settings default to leadtime.yaml's (leadtime.config.ProducerSettings)
    min_instances: int = PRODUCER_DEFAULTS.min_instances
    max_instances: int = PRODUCER_DEFAULTS.max_instances
    target_utilisation: float = PRODUCER_DEFAULTS.target_utilisation
    max_utilisation: float = DEFAULT_MAX_UTILISATION
    spinup_s: float = PRODUCER_DEFAULTS.spinup_lead_time_s
    servers_per_instance: int = 4
    service_time_ms: float = 100.0
    slo_ms: float = PRODUCER_DEFAULTS.slo_ms
    timeout_s: float = 30.0
    warmup_s: float = WEEK_S
    dry_run_s: float = WEEK_S  # the last of the warm-up that leadtime's loop watches in dry run
    # Kubernetes HPA
    hpa_tolerance: float = 0.1
    hpa_scale_down_window_s: float = 300.0
    hpa_sync_period_s: float = 15.0  # kube-controller-manager's default sync period

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError("interval must be positive")
        if not self.capacity_per_instance > 0:
            raise ValueError("capacity_per_instance must be > 0")
        if not 0 < self.target_utilisation <= self.max_utilisation < 1:
            raise ValueError("need 0 < target_utilisation <= max_utilisation < 1")
        if not 0 <= self.min_instances <= self.max_instances:
            raise ValueError("need 0 <= min_instances <= max_instances")
        if self.spinup_s < 0:
            raise ValueError("spinup cannot be negative")
        if self.dry_run_s < 0:
            raise ValueError("the dry run cannot be negative")

    @property
    def dt_s(self) -> float:
        """The sampling interval, in seconds (``interval_s``)."""
        return self.interval_s

    @property
    def interval(self) -> pd.Timedelta:
        """The sampling interval as a pandas offset, for indexes and labels."""
        return pd.Timedelta(seconds=self.interval_s)

    @property
    def spinup_steps(self) -> int:
        """Whole intervals between requesting an instance and it serving (rounded up)."""
        return math.ceil(self.spinup_s / self.interval_s - 1e-9)

    def dry_run_from(self, switch_step: int) -> int:
        """The first step leadtime's loop watches in dry run, for a hand-over at
        ``switch_step``: ``dry_run_s`` before it (never before the trace).

        >>> SimConfig(interval_s=3600.0, capacity_per_instance=1.0, dry_run_s=86400.0).dry_run_from(30)
        6
        """
        return max(0, switch_step - math.ceil(self.dry_run_s / self.interval_s - 1e-9))

    @property
    def usable_capacity(self) -> float:
        """Load one instance carries at the maximum utilisation, per interval."""
        return self.capacity_per_instance * self.max_utilisation

    def describe(self) -> dict[str, object]:
        """JSON-friendly settings, durations as the CLI flags take them (``5min``, ``7d``)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            if key in DURATIONS:
                out[key.removesuffix("_s")] = short_duration(pd.Timedelta(seconds=value))
            else:
                out[key] = value
        return out


#: The settings that are durations (seconds), shown as ``5min``, ``7d``.
DURATIONS = ("interval_s", "spinup_s", "warmup_s", "dry_run_s", "hpa_scale_down_window_s",
             "hpa_sync_period_s")


def short_duration(value: pd.Timedelta) -> str:
    """``5min``, ``7d``, ``90s``: durations as the CLI flags take them."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


#: The instances a trace's 95th percentile needs at the target utilisation: what fixes the unit
#: of an instance where none is given (:func:`capacity_for`).
P95_INSTANCES = 9.0


def capacity_for(values: np.ndarray, target: float = PRODUCER_DEFAULTS.target_utilisation,
                 p95_instances: float = P95_INSTANCES) -> float:
    """The capacity per instance at which the 95th percentile of ``values`` needs
    ``p95_instances`` instances at ``target`` (a zero percentile: the mean positive load's).

    >>> round(capacity_for(np.array([0.0, 63.0])), 3)  # its p95 is 59.85
    9.5
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    p95 = float(np.percentile(values, 95)) if values.size else 0.0
    if p95 <= 0:
        positive = values[values > 0]
        p95 = float(positive.mean()) if positive.size else 1e-9
    return p95 / (p95_instances * target)


def derive_config(
    demand: pd.Series,
    interval_s: float,
    p95_instances: float = P95_INSTANCES,
    **overrides: object,
) -> SimConfig:
    """Defaults for ``demand`` sampled every ``interval_s`` (see the module docstring);
    ``overrides`` (fields of :class:`SimConfig`, durations in seconds) win (None: default)."""
    interval = pd.Timedelta(seconds=interval_s)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    values = demand.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.max() <= 0:
        raise TraceError(f"{demand.name}: no positive load to simulate")
    target = float(overrides.get("target_utilisation",  # type: ignore[arg-type]
                                 PRODUCER_DEFAULTS.target_utilisation))
    capacity = float(overrides.pop("capacity_per_instance",  # type: ignore[arg-type]
                                   capacity_for(values, target, p95_instances)))
    peak_need = math.ceil(values.max() / (capacity * target))
    span = demand.index[-1] - demand.index[0] + interval
    days = int(span / DAY)
    if days < 2:
        raise TraceError(
            f"{demand.name}: the trace spans {short_duration(span)}; the benchmark needs at least 2 days "
            "(whole days of warm-up, then scored days refit daily)"
        )
    base = SimConfig(
        interval_s=float(interval_s),
        capacity_per_instance=capacity,
        max_instances=max(2 * peak_need, 10),
        warmup_s=min(7, days // 2) * 86400.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]
