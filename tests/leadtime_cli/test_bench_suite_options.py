"""``bench suite``, ``ablation`` and ``defaults`` refuse bad options with one line, exit 2."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("args, says", [
    (["bench", "suite", "--budget", "abc", "--no-real"], "give a positive number"),
    (["bench", "suite", "--budget", "-1", "--no-real"], "must be > 0"),
    (["bench", "ablation", "--budget", "lots"], "give a positive number"),
    (["bench", "suite", "--scenario", "nope", "--no-real"], "unknown scenario(s) nope"),
    (["bench", "defaults", "--scenario", "nope", "--no-real"], "unknown scenario(s) nope"),
])
def test_bad_options_get_one_clear_line(args, says):
    from typer.testing import CliRunner

    from leadtime_cli.app import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output


def test_defaults_chooses_out_of_sample_on_two_scenarios():
    from simulation.defaults import run_defaults

    alternatives = {"budget 1.0": {"sizing_budget": 1.0}, "price": {"sizing_budget": None}}
    doc = run_defaults(None, alternatives, scenarios=("demo", "diurnal_weekly_30min"), real=False)
    assert [r["trace"] for r in doc["leave_one_trace_out"]] == ["demo", "diurnal_weekly_30min"]
    assert {r["chosen"] for r in doc["leave_one_trace_out"]} <= set(alternatives)
    for row in doc["traces"]:  # the peers once, leadtime under each alternative
        assert set(row["results"]) == {"hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa",
                                       *alternatives}
        assert row["results"]["hpa"]["cost_vs_hpa"] == pytest.approx(1.0)
