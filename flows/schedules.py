"""The schedules of leadtime's flows: which deployment runs when (read by deploy and recalibrate)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    flow: str
    deployment: str
    cron: str | None = None
    interval_s: float | None = None


SCHEDULES = (
    Schedule("baseline-daily", "baseline-daily", cron="15 2 * * *"),
    Schedule("intent-retrain", "intent-retrain", cron="45 2 * * *"),
    Schedule("features-materialize", "features-materialize", interval_s=15 * 60),
    Schedule("recalibrate", "recalibrate", interval_s=60 * 60),
)
