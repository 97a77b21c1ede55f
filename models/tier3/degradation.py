"""A generated degradation scenario for Tier 3's similarity benchmark.

Consumers belong to groups (region × request profile). Each group calls a fixed set of
producers; every (consumer, producer) pair emits performance events as a Poisson process.
Latency (log-normal) depends on the producer's base latency, the distance between the consumer's
region and the producer's, and the consumer's profile on the producer's kind (heavy requests are
slower on GPU producers). Demand per call depends on the profile.

Disturbances:
* **incidents**: producer P degrades for group G — a *first wave* (``first_wave`` share, at least
  two consumers) at ``t0``, the rest of G's consumers of P at ``t0 + U(spread_min, spread_max)``
  minutes; latency × ``latency_factor``, error rate ``incident_error_rate``; each consumer
  recovers ``duration_min`` after its onset;
* **blips** (the noise a flagger must not cry wolf at): a single consumer-producer pair slowed
  alike for ``blip_min`` minutes, ``blips_per_hour`` of them, unrelated to each other.

Everything is reproducible from :class:`ScenarioParams` (printed with the benchmark's output).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np


@dataclass(frozen=True)
class ScenarioParams:
    seed: int = 7
    regions: tuple[str, ...] = ("eu", "us", "ap")
    profiles: tuple[str, ...] = ("light", "heavy")
    consumers_per_group: int = 10
    producers: int = 12
    producers_per_group: int = 4
    mean_interval_s: float = 60.0  # per (consumer, producer) pair
    hours: float = 8.0
    warmup_hours: float = 2.0  # no disturbance before this
    incidents: int = 8
    first_wave: float = 0.25
    spread_min: float = 10.0
    spread_max: float = 40.0
    duration_min: float = 30.0
    latency_factor: float = 3.0
    incident_error_rate: float = 0.1
    base_error_rate: float = 0.005
    noise_sigma: float = 0.25
    blips_per_hour: float = 6.0
    blip_min: float = 10.0
    start: str = "2025-01-06T00:00:00+00:00"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Incident:
    producer_id: str
    group: str
    t0: datetime
    onsets: dict[str, datetime]  # consumer → onset
    first_wave: tuple[str, ...]
    end: datetime

    @property
    def rest_first_onset(self) -> datetime:
        return min(t for c, t in self.onsets.items() if c not in self.first_wave)

    @property
    def rest_median_onset(self) -> datetime:
        rest = sorted(t for c, t in self.onsets.items() if c not in self.first_wave)
        return rest[len(rest) // 2]


@dataclass(frozen=True)
class Scenario:
    params: ScenarioParams
    events: list[dict]  # PerformanceEvent fields, in time order
    incidents: list[Incident]
    groups: dict[str, str]  # consumer → group
    producers_of: dict[str, list[str]] = field(default_factory=dict)  # group → producers


def generate(params: ScenarioParams = ScenarioParams()) -> Scenario:
    """Generate the scenario's events and its ground truth."""
    rng = np.random.default_rng(params.seed)
    start = datetime.fromisoformat(params.start).astimezone(UTC)
    horizon = params.hours * 3600.0
    producers = [f"P{i:02d}" for i in range(params.producers)]
    p_region = {p: params.regions[i % len(params.regions)] for i, p in enumerate(producers)}
    p_gpu = {p: bool(i % 2) for i, p in enumerate(producers)}
    p_base = {p: float(rng.uniform(40, 250)) for p in producers}
    distance = {(a, b): 1.0 if a == b else float(rng.uniform(1.6, 3.0))
                for a in params.regions for b in params.regions}
    groups: dict[str, str] = {}
    producers_of: dict[str, list[str]] = {}
    for region in params.regions:
        for profile in params.profiles:
            group = f"{region}-{profile}"
            producers_of[group] = sorted(rng.choice(producers, params.producers_per_group,
                                                    replace=False).tolist())
            for k in range(params.consumers_per_group):
                groups[f"{group}-c{k:02d}"] = group

    # disturbances: (consumer, producer) -> list of (from_s, to_s, kind)
    slow: dict[tuple[str, str], list[tuple[float, float, bool]]] = {}
    incidents: list[Incident] = []
    span = horizon - params.warmup_hours * 3600 - (params.spread_max + params.duration_min) * 60
    times = params.warmup_hours * 3600 + np.sort(rng.uniform(0, span, params.incidents))
    for t0 in times:
        group = str(rng.choice(sorted(producers_of)))
        producer = str(rng.choice(producers_of[group]))
        members = sorted(c for c, g in groups.items() if g == group)
        n_first = max(2, round(params.first_wave * len(members)))
        order = rng.permutation(members).tolist()
        first = order[:n_first]
        onsets = {c: t0 for c in first}
        for c in order[n_first:]:
            onsets[c] = t0 + 60 * float(rng.uniform(params.spread_min, params.spread_max))
        for c, t in onsets.items():
            slow.setdefault((c, producer), []).append((t, t + 60 * params.duration_min, True))
        incidents.append(Incident(
            producer, group, start + timedelta(seconds=float(t0)),
            {c: start + timedelta(seconds=float(t)) for c, t in onsets.items()}, tuple(first),
            start + timedelta(seconds=float(max(onsets.values()) + 60 * params.duration_min))))
    pairs = [(c, p) for c, g in groups.items() for p in producers_of[g]]
    n_blips = rng.poisson(params.blips_per_hour * (params.hours - params.warmup_hours))
    for _ in range(n_blips):
        c, p = pairs[int(rng.integers(len(pairs)))]
        t = params.warmup_hours * 3600 + float(rng.uniform(0, horizon - params.warmup_hours * 3600))
        slow.setdefault((c, p), []).append((t, t + 60 * params.blip_min, False))

    events: list[dict] = []
    for c, p in pairs:
        group = groups[c]
        region, profile = group.split("-")
        heavy = profile == "heavy"
        base = p_base[p] * distance[(region, p_region[p])] * (2.0 if heavy and p_gpu[p] else 1.0)
        n = rng.poisson(horizon / params.mean_interval_s)
        ts = np.sort(rng.uniform(0, horizon, n))
        noise = rng.lognormal(0.0, params.noise_sigma, n)
        spans = slow.get((c, p), [])
        for t, z in zip(ts, noise):
            degraded = any(a <= t < b for a, b, _ in spans)
            latency = base * z * (params.latency_factor if degraded else 1.0)
            error_rate = params.incident_error_rate if degraded else params.base_error_rate
            events.append({
                "timestamp": start + timedelta(seconds=float(t)), "consumer_id": c,
                "producer_id": p, "latency_ms": round(float(latency), 2),
                "error": bool(rng.random() < error_rate),
                "demand": round(float(rng.gamma(2.0, 2.0 if heavy else 0.5)), 3),
            })
    events.sort(key=lambda e: e["timestamp"])
    return Scenario(params, events, incidents, groups, producers_of)
