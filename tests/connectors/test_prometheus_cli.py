"""``--from-prometheus``: history read from a real Prometheus, refused clearly without one."""

from __future__ import annotations

import pandas as pd
import yaml
from typer.testing import CliRunner

from leadtime_cli.app import app

LOAD_Q = 'leadtime_replayed_load{producer_id="$producer_id"}'


def settings_env(monkeypatch, tmp_path, url: str | None) -> None:
    from leadtime.settings import get_settings

    config = tmp_path / "leadtime.yaml"
    config.write_text(yaml.safe_dump({"pools": {"web": {
        "defaults": {"capacity_per_instance": 15, "load_query": LOAD_Q},
        "producers": [{"id": "nasa-www"}]}}}))
    monkeypatch.setenv("LEADTIME_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEADTIME_CONFIG_PATH", str(config))
    if url:
        monkeypatch.setenv("LEADTIME_PROMETHEUS_URL", url)
    else:
        monkeypatch.delenv("LEADTIME_PROMETHEUS_URL", raising=False)
    get_settings.cache_clear()


def test_history_trace_is_a_validated_contract_file(prometheus, monkeypatch, tmp_path):
    from leadtime.data import read_load_trace
    from leadtime.settings import get_settings
    from leadtime_cli.prometheus import history_trace

    settings_env(monkeypatch, tmp_path, prometheus.url)
    try:
        path = history_trace("2d")
    finally:
        get_settings.cache_clear()
    assert path.parent == tmp_path / "home" / "prometheus"
    trace = read_load_trace(path)
    series = trace.series("nasa-www")
    assert series.index.freq == pd.Timedelta("1min")
    assert series.index[-1] - series.index[0] <= pd.Timedelta("2d")
    assert series.isna().sum() >= 7  # the slice's gap (and the live replay's start) stay gaps


def test_from_prometheus_refusals(monkeypatch, tmp_path):
    from leadtime.settings import get_settings

    runner = CliRunner()
    settings_env(monkeypatch, tmp_path, None)
    result = runner.invoke(app, ["bench", "autoscale", "--from-prometheus", "3d"])
    assert result.exit_code == 2 and "set LEADTIME_PROMETHEUS_URL" in result.output
    result = runner.invoke(app, ["bench", "autoscale"])
    assert result.exit_code == 2 and "one of --trace and --from-prometheus" in result.output
    settings_env(monkeypatch, tmp_path, "http://127.0.0.1:9")
    result = runner.invoke(app, ["demo", "--from-prometheus", "3d"])
    assert result.exit_code == 2 and "unreachable" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["demo", "--from-prometheus", "soon"])
    assert result.exit_code == 2 and "not a duration" in result.output
    get_settings.cache_clear()
