"""The scheduled deployments of leadtime's flows, as Prefect 3 runner deployments.

``leadtime deploy`` serves them (``prefect.serve``): they appear with their schedules in the
Prefect UI, run on schedule, and any of them can be run on demand from the UI or with
``prefect deployment run '<flow>/<deployment>'``. Schedules and parameters come from settings.
"""

from __future__ import annotations

from flows.schedules import SCHEDULES
from leadtime.settings import Settings


def build_deployments(settings: Settings) -> list:
    """Runner deployments for every scheduled flow, with parameters, tags and schedules."""
    from flows.baseline import baseline_flow
    from flows.intent import intent_retrain
    from flows.materialize import features_materialize
    from flows.recalibrate import recalibrate_flow

    flows = {
        "baseline-daily": (baseline_flow(settings), {"trace": str(settings.scheduled_load_trace)},
                           ["tier1", "daily"]),
        "intent-retrain": (intent_retrain, {"requests": str(settings.scheduled_requests_trace)},
                           ["tier2", "daily"]),
        "features-materialize": (features_materialize,
                                 {"requests": str(settings.scheduled_requests_trace)},
                                 ["tier2", "features"]),
        "recalibrate": (recalibrate_flow, {}, ["engine", "feedback"]),
    }
    deployments = []
    for schedule in SCHEDULES:
        flow, parameters, tags = flows[schedule.flow]
        deployments.append(flow.to_deployment(
            name=schedule.deployment,
            cron=schedule.cron,
            interval=schedule.interval_s,
            parameters=parameters,
            tags=["leadtime", *tags],
            description=(flow.description or "").strip().splitlines()[0] if flow.description
            else None,
        ))
    return deployments
