"""One settings object for the whole platform.

Where things are and how to reach them come from ``LEADTIME_*`` environment variables (and a
``.env``); how the platform behaves comes from ``leadtime.yaml`` at ``config_path``, read and
validated once as :attr:`Settings.leadtime` (its ``engine`` and ``tier1`` sections also as
:attr:`Settings.engine` and :attr:`Settings.tier1`, the embedded defaults where the file is
absent). Embedded defaults keep every piece of local state under one folder (``LEADTIME_HOME``,
default ``./.leadtime``): the MLflow SQLite store and artifacts, the Feast registry and
online store, Prefect's ephemeral database, plots and the decision log. Every URI can be
overridden by environment (``MLFLOW_TRACKING_URI``, ``PREFECT_API_URL``, ``LEADTIME_*``).
Creating a ``Settings`` has no side effects; ``prepare()`` creates folders and exports the
environment the libraries read.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from leadtime.config import EngineSpec, LeadtimeConfig, Tier1Spec

PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: Seconds to wait for Prefect's ephemeral API server (Prefect's default, 20 s, is too short for
#: a first start, which creates its SQLite database, on a busy machine).
PREFECT_STARTUP_TIMEOUT_SECONDS = 180

#: The switches for what the stack would send out: Prefect 3's server usage analytics (also
#: read by the client's analytics service) and Cloud run telemetry, MLflow 3's usage telemetry
#: (MLflow honours only ``MLFLOW_DISABLE_TELEMETRY`` or ``DO_NOT_TRACK=true``, not ``1``), and
#: the opt-out standard both read.
NO_TELEMETRY = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


class Settings(BaseSettings):
    """Platform settings; read from ``LEADTIME_*`` environment variables (and a ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="LEADTIME_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".leadtime"), description="Folder holding all local state.")
    data_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data",
        description="Folder of shared real traces (never copied into the repo).",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LEADTIME_MLFLOW_TRACKING_URI"),
        description="MLflow tracking/registry URI; default: SQLite under home.",
    )
    mlflow_artifact_root: str | None = Field(
        default=None, description="Artifact root for new experiments; default: mlartifacts beside "
        "the SQLite store (models.registry.artifact_location)."
    )
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_API_URL", "LEADTIME_PREFECT_API_URL"),
        description="Prefect server API; default: none (ephemeral API on SQLite under home).",
    )
    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="Feast online store: SQLite under home, or Redis."
    )
    redis_url: str = Field(default="127.0.0.1:6379", description="Redis for the online store.")
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for the API's writes and admin endpoints; "
        "unset means they are refused."
    )
    load_trace: Path | None = Field(
        default=None, description="Load trace the scheduled baseline-daily flow fits "
        "(default: the NASA trace under data_dir)."
    )
    requests_trace: Path | None = Field(
        default=None, description="Request trace the scheduled Tier 2 flows read "
        "(default: the Alibaba trace under data_dir)."
    )
    prometheus_url: str | None = Field(
        default=None, description="Prometheus server (http://prometheus:9090) that the "
        "producers' load_query / instances_query in leadtime.yaml are asked; unset: none.")
    prometheus_timeout_s: float = Field(
        default=3.0, gt=0, description="Timeout of one Prometheus query (the loop must not wait "
        "long for a server that is down).")
    prometheus_step_s: float = Field(
        default=60.0, gt=0, description="Step of the range queries that read training history "
        "from Prometheus (--from-prometheus): the interval of the resulting load trace.")
    haproxy_socket: str | None = Field(
        default=None, description="HAProxy's runtime API (stats socket at level admin): a unix "
        "path or host:port. In act mode the pools' redirect weights are set there for the "
        "producers with haproxy_server in leadtime.yaml; unset: no HAProxy actuator.")
    keda_port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of the KEDA external scaler (gRPC) "
        "served beside the API (leadtime serve --keda-port); unset: not served.")
    keda_host: str = Field(default="127.0.0.1", description="Interface the KEDA scaler binds.")
    as_of: datetime | None = Field(
        default=None, description="Run the API's decision loop as of this moment (UTC unless "
        "it says otherwise), its clock advancing with wall time from there (`leadtime serve "
        "--as-of`, e.g. the end of a replayed trace); unset: the wall clock.")
    shard_count: int = Field(
        default=1, ge=1, description="Loop processes the pools are sharded across (leadtime "
        "serve --shard I/N): each decides for the pools whose name hashes to its index "
        "(leadtime.config.shard_of), e.g. a StatefulSet's pod index; 1: every pool.")
    shard_index: int = Field(default=0, ge=0, description="This process's shard, 0 .. "
                             "shard_count - 1.")
    shard_pools: str | None = Field(
        default=None, description="Comma-separated pools this process decides for, instead "
        "of the hash (leadtime serve --shard-pools).")
    experiment: str = "leadtime"
    baseline_model_name: str = "leadtime-baseline"
    weights_model_name: str = Field(default="leadtime-weights",
                                    description="Registered model holding the engine's tier weights.")
    config_path: Path = Field(default=PROJECT_ROOT / "leadtime.yaml",
                              description="Pools, producers and engine settings (leadtime.yaml).")
    decision_log_path: Path | None = Field(
        default=None, description="SQLite decision log; default: home/decisions.sqlite.")
    metrics_detail: Literal["auto", "full", "decisions"] = Field(
        default="auto", description="Per-producer series on /metrics: 'decisions' (8 per "
        "producer: the combined prediction, score, instances, load, redirect), 'full' (up to "
        "21: also each tier's prediction, the weights and the action), 'auto': full up to 200 "
        "producers (monitoring.metrics).")
    workers: int = Field(default=max(1, os.cpu_count() or 1), description="Parallel fit workers.")
    task_runner: Literal["threads", "dask"] = Field(
        default="threads", description="Where the flows' mapped tasks run: a thread pool, or Dask."
    )
    dask_address: str | None = Field(
        default=None, description="A running Dask scheduler (tcp://host:8786); default: a local "
        "cluster of dask_workers processes when task_runner is dask."
    )
    dask_workers: int = Field(default=2, description="Worker processes of the local Dask cluster.")

    @cached_property
    def leadtime(self) -> LeadtimeConfig | None:
        """``leadtime.yaml`` at ``config_path``, validated once (``leadtime.config``; a bad file
        raises its :class:`~leadtime.config.ConfigError`); None where no file is there."""
        from leadtime.config import load_config

        return load_config(self.config_path) if self.config_path.is_file() else None

    @property
    def engine(self) -> EngineSpec:
        """The engine's settings: ``leadtime.yaml``'s, or the defaults where it is absent."""
        from leadtime.config import ENGINE_DEFAULTS

        return ENGINE_DEFAULTS if self.leadtime is None else self.leadtime.engine

    @property
    def tier1(self) -> Tier1Spec:
        """Tier 1's daily fit: ``leadtime.yaml``'s, or the defaults where it is absent."""
        from leadtime.config import TIER1_DEFAULTS

        return TIER1_DEFAULTS if self.leadtime is None else self.leadtime.tier1

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def decision_log(self) -> Path:
        return (self.decision_log_path or self.home_dir / "decisions.sqlite").expanduser().resolve()

    @property
    def scheduled_load_trace(self) -> Path:
        return self.load_trace or self.data_dir / "load" / "nasa_http_1995.csv"

    @property
    def scheduled_requests_trace(self) -> Path:
        return self.requests_trace or self.data_dir / "requests" / "alibaba_genai_lora.csv"

    @property
    def plots_dir(self) -> Path:
        return self.home_dir / "plots"

    def prepare(self) -> Settings:
        """Create the state folder and export what MLflow and Prefect read from the environment.

        Call it before Prefect is imported (Prefect reads its settings then). Values already in
        the environment win: only defaults are filled in.
        """
        self.home_dir.mkdir(parents=True, exist_ok=True)
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.prefect_api_url:
            os.environ["PREFECT_API_URL"] = self.prefect_api_url
        else:
            os.environ.setdefault("PREFECT_HOME", str(self.home_dir / "prefect"))
            os.environ.setdefault(
                "PREFECT_API_DATABASE_CONNECTION_URL",
                f"sqlite+aiosqlite:///{self.home_dir / 'prefect' / 'prefect.db'}",
            )
            # a busy 2-core machine can need more than Prefect's default 20 s to start the API
            os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                                  str(PREFECT_STARTUP_TIMEOUT_SECONDS))
        for key, value in NO_TELEMETRY.items():  # nothing leaves the machine by default
            os.environ.setdefault(key, value)
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
