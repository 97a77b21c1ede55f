"""``leadtime.yaml``: pools of interchangeable producers and the engine's settings, validated.

A config names pools; each pool lists its producers with their capacity per instance, min/max
instances, spin-up lead time, target utilisation and latency SLO (pool-level ``defaults`` fill
what a producer leaves out). The ``engine`` section holds the load-score threshold, the tier
weights (default 0.4/0.3/0.3; renormalised to sum to 1) and the mode, ``act`` or ``dry_run``.
Any defect is reported as one :class:`ConfigError` listing every problem with its location,
e.g. ``pools.web.producers[1].max_instances: must be >= min_instances (4)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leadtime.engine import DEFAULT_WEIGHTS, ProducerConfig


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid (message lists every problem)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProducerDefaults(_Strict):
    capacity_per_instance: float | None = Field(default=None, gt=0)
    min_instances: int | None = Field(default=None, ge=0)
    max_instances: int | None = Field(default=None, ge=1)
    spinup_lead_time_s: float | None = Field(default=None, gt=0)
    target_utilisation: float | None = Field(default=None, gt=0, le=1)
    max_utilisation: float | None = Field(
        default=None, gt=0, le=1,
        description="Most an instance is driven to; the upper bound of the predicted load is "
                    "kept under it (the point under the target). Default max(0.9, target).")
    slo_ms: float | None = Field(default=None, gt=0)
    scale_in_cooldown_s: float | None = Field(default=None, ge=0)
    scale_in_max_fraction: float | None = Field(default=None, gt=0, le=1)
    tier2_load_per_demand: float | None = Field(
        default=None, gt=0,
        description="Load units one unit of predicted request demand per second adds (Tier 2: "
                    "the demand announced through /v1/requests/predict). Unset: Tier 2 does not "
                    "feed this producer.")


class ProducerSpec(ProducerDefaults):
    id: str = Field(min_length=1, max_length=200)


class PoolSpec(_Strict):
    defaults: ProducerDefaults = Field(default_factory=ProducerDefaults)
    producers: list[ProducerSpec] = Field(min_length=1)


class EngineSpec(_Strict):
    threshold: float = Field(default=0.6, ge=0, description="Load score gating pre-allocation.")
    weights: dict[Literal["tier1", "tier2", "tier3"], float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS))
    mode: Literal["act", "dry_run"] = "dry_run"
    decision_interval_s: float = Field(default=60, gt=0,
                                       description="Decisions are recomputed (and logged) at most this often.")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()):
            raise ValueError("tier weights must be >= 0")
        total = sum(value.values())
        if total <= 0:
            raise ValueError("at least one tier weight must be > 0")
        return {k: w / total for k, w in value.items()}


_FALLBACK = {"min_instances": 1, "max_instances": 100, "spinup_lead_time_s": 300.0,
             "target_utilisation": 0.7, "slo_ms": 500.0, "scale_in_cooldown_s": 300.0,
             "scale_in_max_fraction": 0.1, "max_utilisation": None, "tier2_load_per_demand": None}


class LeadtimeConfig(_Strict):
    engine: EngineSpec = Field(default_factory=EngineSpec)
    pools: dict[str, PoolSpec] = Field(min_length=1)

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
                if merged["capacity_per_instance"] is None:
                    problems.append(f"{where}.capacity_per_instance: required (here or in the "
                                    "pool's defaults)")
                if merged["max_utilisation"] is not None and (
                        merged["max_utilisation"] < merged["target_utilisation"]):
                    problems.append(f"{where}.max_utilisation: must be >= target_utilisation "
                                    f"({merged['target_utilisation']})")
                if (merged["capacity_per_instance"] is not None
                        and merged["max_instances"] < merged["min_instances"]):
                    problems.append(f"{where}.max_instances: must be >= min_instances "
                                    f"({merged['min_instances']})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @staticmethod
    def _merged(pool: PoolSpec, spec: ProducerSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"capacity_per_instance": None, **_FALLBACK}
        for source in (pool.defaults, spec):
            out.update({k: v for k, v in source.model_dump(exclude={"id"}).items() if v is not None})
        return out

    @property
    def dry_run(self) -> bool:
        return self.engine.mode == "dry_run"

    def producers(self) -> dict[str, ProducerConfig]:
        """Engine configs by producer id."""
        out: dict[str, ProducerConfig] = {}
        for pool in self.pools.values():
            for spec in pool.producers:
                m = self._merged(pool, spec)
                out[spec.id] = ProducerConfig(
                    producer_id=spec.id, capacity_per_instance=m["capacity_per_instance"],
                    min_instances=m["min_instances"], max_instances=m["max_instances"],
                    target_utilisation=m["target_utilisation"],
                    max_utilisation=(m["max_utilisation"] if m["max_utilisation"] is not None
                                     else max(0.9, m["target_utilisation"])),
                    spinup_lead_time_s=m["spinup_lead_time_s"],
                    scale_in_cooldown_s=m["scale_in_cooldown_s"],
                    scale_in_max_fraction=m["scale_in_max_fraction"])
        return out

    def tier2_scales(self) -> dict[str, float]:
        """``tier2_load_per_demand`` of the producers Tier 2 feeds."""
        out = {}
        for pool in self.pools.values():
            for spec in pool.producers:
                scale = self._merged(pool, spec)["tier2_load_per_demand"]
                if scale is not None:
                    out[spec.id] = float(scale)
        return out

    def slo_ms(self) -> dict[str, float]:
        return {s.id: self._merged(pool, s)["slo_ms"]
                for pool in self.pools.values() for s in pool.producers}

    def pool_members(self) -> dict[str, list[str]]:
        return {name: [s.id for s in pool.producers] for name, pool in self.pools.items()}

    def pool_of(self) -> dict[str, str]:
        return {s.id: name for name, pool in self.pools.items() for s in pool.producers}


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
