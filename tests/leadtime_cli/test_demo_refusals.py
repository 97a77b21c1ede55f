"""``leadtime demo`` refuses a trace too short for the backtest: one line, exit 2, nothing registered."""

from __future__ import annotations

import logging
import sys

import pytest


def _write(path, rows: list[str]):
    path.write_text("timestamp,producer_id,value\n" + "".join(f"{r}\n" for r in rows))
    return path


def _two_rows(tmp_path):
    return _write(tmp_path / "two.csv", ["2024-01-01 00:00:00,a,1", "2024-01-01 00:05:00,a,2"])


def _header_only(tmp_path):
    return _write(tmp_path / "header.csv", [])


def _three_days(tmp_path):
    from simulation.generate import write_load_trace

    return write_load_trace(tmp_path / "three.csv", producers=2, days=3)


@pytest.mark.slow
@pytest.mark.parametrize("make, says", [
    (_two_rows, "needs at least 12 days of history"),
    (_header_only, "header but no rows"),
    (_three_days, "needs at least 12 days of history"),
])
def test_demo_refuses_short_traces_cleanly(state, tmp_path, make, says):
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    result = CliRunner().invoke(app, ["demo", "--trace", str(make(tmp_path))])
    output = result.output  # stdout and stderr, interleaved (Click 8.2+)
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    error_lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and says in error_lines[0]
    assert MlflowClient(tracking_uri=state.tracking_uri).search_model_versions() == []


@pytest.mark.slow
def test_demo_prints_no_prefect_traceback_for_a_refusal(state, tmp_path):
    """Prefect's own console logs bypass CliRunner, so this one runs the real command (a
    well-formed trace the flow refuses: a malformed one is refused before Prefect starts)."""
    import subprocess

    trace = _three_days(tmp_path)
    done = subprocess.run([sys.executable, "-c", "from leadtime_cli.app import app; app()",
                           "demo", "--trace", str(trace)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: three.csv")
    loud = subprocess.run([sys.executable, "-c", "from leadtime_cli.app import app; app()",
                           "--verbose", "demo", "--trace", str(trace)],
                          capture_output=True, text=True, timeout=600)
    assert loud.returncode == 2 and "Traceback" in loud.stdout + loud.stderr


def test_refusal_filter_drops_only_refusals():
    from leadtime_cli.common import RefusalFilter

    def record(level, message, exc=None):
        exc_info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("prefect.task_runs", level, __file__, 1, message, (), exc_info)

    keep = RefusalFilter().filter
    assert not keep(record(logging.ERROR, "Task run failed", ValueError("bad")))
    assert not keep(record(logging.ERROR, "Finished in state Failed('Task run encountered an "
                                          "exception TraceError: x.csv: empty')"))
    assert keep(record(logging.ERROR, "Task run failed", RuntimeError("bug")))
    assert keep(record(logging.WARNING, "a repair note"))
