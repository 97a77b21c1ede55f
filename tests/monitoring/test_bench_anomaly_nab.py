"""`leadtime bench anomaly` on the shared NAB set (slow: ~20 s of streaming)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NAB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "anomaly" / "nab"


@pytest.mark.slow
def test_leadtime_detector_beats_both_baselines_on_nab():
    if not (NAB / "windows.json").is_file():
        pytest.skip(f"NAB set not found at {NAB}")
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["bench", "anomaly", "--set", str(NAB), "--json"])
    assert result.exit_code == 0, result.output
    detectors = json.loads(result.output)["detectors"]
    for name in ("leadtime", "zscore", "hst"):
        assert {"precision", "recall", "f1", "delay_minutes", "false_alarms_per_day"} <= set(detectors[name])
    assert detectors["leadtime"]["f1"] > max(detectors["zscore"]["f1"], detectors["hst"]["f1"])


def test_bad_set_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["bench", "anomaly", "--set", str(tmp_path)])
    assert result.exit_code == 2 and "windows.json" in result.output
