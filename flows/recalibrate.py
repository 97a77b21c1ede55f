"""Prefect flow ``recalibrate``: decision log + observed load → per-tier error → new weights.

Only wiring here; the method is in :mod:`loop.recalibrate`. Observed load comes from the
decision log's ``observed_load`` table, optionally filled first from a load trace
(a load-trace CSV, validated by :func:`leadtime.data.read_load_trace`).
The engine picks promoted weights up on ``POST /v1/admin/reload``. A tier whose error drifted
starts its retraining deployment (``baseline-daily`` for Tier 1, ``intent-retrain`` for Tier 2;
Tier 3 learns online and has none) as a flow run, without waiting for it.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from leadtime.config import DEFAULT_WEIGHTS
from leadtime.settings import get_settings
from loop.decision_log import DecisionLog
from loop.recalibrate import joined_from_log
from loop.recalibrate import recalibrate as fit_weights
from loop.weights_registry import log_and_register, validate_weights_gx


@task(name="load-observed", cache_policy=NO_CACHE)
def load_observed_trace(log: DecisionLog, trace: str) -> int:
    from leadtime.data import read_load_trace

    frame = read_load_trace(trace).frame
    frame = frame.dropna(subset=["value"])
    rows = [(str(p), t.timestamp(), float(v)) for p, t, v in
            zip(frame["producer_id"], frame["timestamp"], frame["value"])]
    return log.record_observed(rows)


RETRAIN_FLOWS = {"tier1": "baseline-daily", "tier2": "intent-retrain"}  # tier -> scheduled flow


@task(name="trigger-retraining", cache_policy=NO_CACHE)
def trigger_retraining(tiers: list[str]) -> dict[str, str]:
    """Start the retraining deployment of each drifting tier (fire and forget), say what happened."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from flows.schedules import SCHEDULES

    names = {s.flow: f"{s.flow}/{s.deployment}" for s in SCHEDULES}
    out: dict[str, str] = {}
    for tier in tiers:
        flow_name = RETRAIN_FLOWS.get(tier)
        if flow_name is None:
            out[tier] = "learns online: no retraining deployment"
            continue
        name = names[flow_name]
        try:
            run = run_deployment(name, timeout=0, tags=["leadtime", "retrain-trigger"])
            out[tier] = f"started {name}: flow run {run.id}"
        except ObjectNotFound:
            out[tier] = f"{name} is not deployed: run `leadtime deploy` to serve it"
        except Exception as exc:  # the weights are logged already; a failed trigger must say so
            out[tier] = f"could not start {name}: {type(exc).__name__}: {exc}"
    return out


def _current_weights(name: str) -> dict[str, float]:
    from loop.weights_registry import load_weights

    try:
        return load_weights(name)[0]
    except Exception:
        return dict(DEFAULT_WEIGHTS)


@flow(name="recalibrate", log_prints=True)
def recalibrate_flow(window_s: float = 7 * 86400.0, trace: str | None = None,
                     eval_fraction: float = 0.25,
                     drift_ratio: float = 1.5, trigger_retraining_runs: bool = True) -> dict:
    settings = get_settings().prepare()
    logger = get_run_logger()
    log = DecisionLog(settings.decision_log)
    try:
        if trace:
            logger.info("recorded %d observed rows", load_observed_trace(log, trace))
        joined = joined_from_log(log, window_s)
    finally:
        log.close()
    current = _current_weights(settings.weights_model_name)
    result = fit_weights(joined, current, eval_fraction, drift_ratio)
    validate_weights_gx(result.weights)  # Great Expectations: a bad candidate is never logged
    registration = log_and_register(result, settings.weights_model_name, settings.experiment,
                                    {"window_s": window_s, "eval_fraction": eval_fraction})
    triggered: dict[str, str] = {}
    if result.retrain:
        logger.warning("retraining trigger: error drifted for %s", ", ".join(result.retrain))
        if trigger_retraining_runs:
            triggered = trigger_retraining(result.retrain)
            for tier, what in triggered.items():
                logger.warning("%s: %s", tier, what)
    return {"weights": result.weights, "current": result.current,
            "train_errors": result.train_errors, "eval_errors": result.eval_errors,
            "candidate_error": result.candidate_score, "current_error": result.current_score,
            "retrain": result.retrain, "retraining_runs": triggered,
            "registration": registration}


recalibrate = recalibrate_flow  # the flow's public name
