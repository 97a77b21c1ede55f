"""``--from-prometheus SPAN``: training and benchmark history read from Prometheus.

The producers' ``load_query`` (``leadtime.yaml``) is asked as a range query over the last SPAN
at ``LEADTIME_PROMETHEUS_STEP_S`` (default 60 s) from ``LEADTIME_PROMETHEUS_URL``; the answer is
written as a load-trace CSV under ``LEADTIME_HOME/prometheus/`` and validated like any trace, and
the command then reads that file (so its path shows in the results, and the run can be repeated).
"""

from __future__ import annotations

import time
from pathlib import Path

FROM_PROMETHEUS_HELP = ("Read the history from Prometheus instead of --trace: the last SPAN "
                        "(e.g. 35d) of each producer's load_query in leadtime.yaml, from "
                        "LEADTIME_PROMETHEUS_URL.")


def history_trace(span: str) -> Path:
    """Export the last ``span`` of every ``load_query`` as a validated load-trace CSV."""
    import pandas as pd

    from connectors.prometheus import PrometheusClient, PrometheusError, history, load_queries
    from leadtime.config import ConfigError
    from leadtime.settings import get_settings
    from leadtime.validation import TraceError
    from leadtime_cli.common import fail

    settings = get_settings()
    if not settings.prometheus_url:
        fail("--from-prometheus: set LEADTIME_PROMETHEUS_URL (e.g. http://127.0.0.1:9090)")
    try:
        length = pd.Timedelta(span)
    except ValueError:
        fail(f"--from-prometheus: {span!r} is not a duration (e.g. 35d, 12h)")
    if length <= pd.Timedelta(0):
        fail("--from-prometheus: the span must be positive")
    try:
        config = settings.leadtime
    except ConfigError as exc:
        fail(str(exc))
    if config is None:
        fail(f"--from-prometheus: no {settings.config_path} (it names each producer's load_query)")
    queries = load_queries(config)
    if not queries:
        fail(f"--from-prometheus: no producer in {settings.config_path} names a load_query")
    step = pd.Timedelta(seconds=settings.prometheus_step_s)
    end = pd.Timestamp(time.time() // step.total_seconds() * step.total_seconds(), unit="s")
    out = settings.home_dir / "prometheus" / f"history_{end:%Y%m%dT%H%M}_{span}.csv"
    try:
        with PrometheusClient(settings.prometheus_url, settings.prometheus_timeout_s * 10) as c:
            history(c, queries, end - length, end, step, out)
    except (PrometheusError, TraceError) as exc:
        fail(f"--from-prometheus: {exc}")
    return out
