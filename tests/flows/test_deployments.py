"""The scheduled deployments: every flow, with its schedule, parameters and tags."""

from __future__ import annotations


def test_every_scheduled_flow_is_deployed_with_schedule_and_parameters(state):
    from flows.deployments import SCHEDULES, build_deployments

    deployments = {d.name: d for d in build_deployments(state)}
    assert set(deployments) == {s.deployment for s in SCHEDULES}
    baseline = deployments["baseline-daily"]
    assert baseline.parameters["trace"].endswith("nasa_http_1995.csv")
    assert "leadtime" in baseline.tags and "tier1" in baseline.tags
    for schedule in SCHEDULES:
        deployment = deployments[schedule.deployment]
        assert deployment.schedules, schedule.deployment
        inner = deployment.schedules[0].schedule
        if schedule.cron:
            assert inner.cron == schedule.cron
        else:
            assert inner.interval.total_seconds() == schedule.interval_s
