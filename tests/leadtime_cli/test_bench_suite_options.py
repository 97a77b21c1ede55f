"""``bench suite``, ``ablation`` and ``defaults`` refuse bad options with one line, exit 2."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("args, says", [
    (["bench", "suite", "--budget", "abc", "--no-real"], "give a positive number"),
    (["bench", "suite", "--budget", "-1", "--no-real"], "must be > 0"),
    (["bench", "ablation", "--budget", "lots"], "give a positive number"),
    (["bench", "autoscale", "--trace", "t.csv", "--budget", "lots"], "give a positive number"),
    (["bench", "autoscale", "--trace", "t.csv", "--dry-run", "a week"], "not a duration"),
    (["bench", "resources", "--budget", "0"], "must be > 0"),
    (["bench", "suite", "--scenario", "nope", "--no-real"], "unknown scenario(s) nope"),
    (["bench", "defaults", "--scenario", "nope", "--no-real"], "unknown scenario(s) nope"),
    (["bench", "defaults", "--also-at", "hourly", "--no-real"], "not a duration"),
    (["bench", "suite", "--also-at", "0s", "--no-real"], "must be positive"),
    (["bench", "defaults", "--also-at", "-60min", "--no-real"], "must be positive"),
    (["bench", "frontier", "--scenario", "nope"], "unknown --scenario 'nope'"),
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
    doc = run_defaults(None, alternatives, scenarios=("demo", "diurnal_weekly_30min"), real=False,
                       also_at_s=(3600.0,))  # and each again at hourly samples
    assert [r["trace"] for r in doc["leave_one_trace_out"]] == [
        "demo", "diurnal_weekly_30min", "demo @1h", "diurnal_weekly_30min @1h"]
    assert {r["chosen"] for r in doc["leave_one_trace_out"]} <= set(alternatives)
    for row in doc["traces"]:  # the peers once, leadtime under each alternative
        assert set(row["results"]) == {"hpa", "forecast_scale_out", "crane_ehpa", "knative_kpa",
                                       *alternatives}
        assert row["results"]["hpa"]["cost_vs_hpa"] == pytest.approx(1.0)


def test_the_benchmarks_replay_the_engine_of_the_settings_leadtime_yaml(tmp_path, monkeypatch):
    """The engine the benchmarks replay is the settings' leadtime.yaml's (its engine section
    over the defaults); a flag still wins; a broken file is refused in one line."""
    from typer.testing import CliRunner

    from leadtime.settings import get_settings
    from leadtime_cli.app import app
    from leadtime_cli.common import configured_engine
    from leadtime_cli.suite import _engine

    config = tmp_path / "leadtime.yaml"
    pools = "pools:\n  web:\n    producers: [{id: a, capacity_per_instance: 10}]\n"
    config.write_text("engine:\n  sizing_budget: null\n  violation_cost: 19\n" + pools)
    monkeypatch.setenv("LEADTIME_CONFIG_PATH", str(config))
    get_settings.cache_clear()
    try:
        assert configured_engine().sizing_budget is None
        assert _engine(None).violation_cost == 19.0
        assert _engine(49.0, "1.0").violation_cost == 49.0  # the flags win
        config.write_text("engine:\n  sizing_budget: -3\n" + pools)
        get_settings.cache_clear()  # the settings read leadtime.yaml once, as a new process does
        result = CliRunner().invoke(app, ["bench", "suite", "--scenario", "demo", "--no-real"])
        assert result.exit_code == 2 and "sizing_budget" in result.output
        assert "Traceback" not in result.output
    finally:
        get_settings.cache_clear()


def test_violation_cost_keeps_its_name_from_the_flag_to_the_sizing():
    """``--violation-cost`` and ``--budget`` of every bench reach ``loop.sizing`` under the
    same names, through the one engine model."""
    from leadtime_cli.common import engine_from_flags
    from loop.sizing import SizingConfig

    sizing = SizingConfig.from_engine(engine_from_flags(49.0, "none"))
    assert (sizing.violation_cost, sizing.sizing_budget) == (49.0, None)
    assert SizingConfig.from_engine(engine_from_flags(None, "1.5")).sizing_budget == 1.5


def test_the_alternative_marked_default_is_the_engines_default():
    """``bench defaults`` replays its alternatives beside each other; the one it calls the
    default must be what ``leadtime.yaml`` gives when it says nothing."""
    from leadtime.config import ENGINE_DEFAULTS
    from simulation.defaults import ALTERNATIVES

    (marked,) = [name for name in ALTERNATIVES if name.endswith("(default)")]
    for key, value in ALTERNATIVES[marked].items():
        assert getattr(ENGINE_DEFAULTS, key) == value, key


def test_the_ablation_plot_draws_every_variant_and_peer(tmp_path):
    """``bench ablation`` saves one point per variant and peer, violations against
    instance-hours over the HPA's; a PNG a person can open."""
    from simulation.suite import plot_ablation

    rows = [{"name": "hpa", "kind": "peer", "tiers": [], "slo_violation_pct": 22.3,
             "cost_vs_hpa": 1.0},
            {"name": "crane_ehpa", "kind": "peer", "tiers": [], "slo_violation_pct": 9.0,
             "cost_vs_hpa": 1.24},
            {"name": "tier1+3 recalibrated (default)", "kind": "leadtime",
             "tiers": ["tier1", "tier3"], "slo_violation_pct": 22.2, "cost_vs_hpa": 1.001},
            {"name": "tier1+2+3 recalibrated", "kind": "leadtime",
             "tiers": ["tier1", "tier2", "tier3"], "slo_violation_pct": 13.7,
             "cost_vs_hpa": 1.02}]
    path = plot_ablation(rows, "ablation", tmp_path / "plots" / "ablation.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_a_load_scenario_reaches_the_frontier_as_the_suite_replays_it(tmp_path):
    """``bench frontier --scenario intermittent_bursts`` writes the suite's series as a load
    trace and reads it through the contract: the same values, stamps and interval."""
    import numpy as np

    from simulation.scenarios import scenario, write_scenario
    from simulation.traces import read_demand

    for name in ("intermittent_bursts", "weekly_30min"):
        series = scenario(name)
        read = read_demand(write_scenario(name, tmp_path)).series[name]
        assert read.index.equals(series.index) and read.index.freq == series.index.freq
        assert np.array_equal(read.to_numpy(), series.to_numpy())
