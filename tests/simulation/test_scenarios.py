"""The scenario suite: fixed-seed generators after real patterns, and the suite's verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.tier3.period import dominant_period
from simulation.scenarios import SCENARIOS, scenario


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_is_fixed_regular_and_positive(name):
    first, again = scenario(name, days=4), scenario(name, days=4)
    pd.testing.assert_series_equal(first, again)  # fixed seeds
    assert first.index.freq is not None and len(first) == 4 * 86400 / first.index.freq.nanos * 1e9
    assert np.isfinite(first).all() and (first >= 0).all() and first.max() > 0


def test_the_drifting_burst_period_is_not_a_day_and_is_found_from_the_data():
    series = scenario("periodic_drift", days=3).to_numpy()
    assert dominant_period(series, min_lag=10, max_lag=1440, min_cycles=3) == pytest.approx(
        100, abs=3)


def test_unknown_scenario_names_the_known_ones():
    with pytest.raises(KeyError, match="periodic_drift"):
        scenario("nope")


def test_the_suite_row_compares_at_equal_cost_and_names_losses():
    from simulation.suite import run_suite

    doc = run_suite(None, scenarios=("demo",), real=False, also_at_s=(3600.0,))
    row, hourly = doc["traces"]  # demo, and demo again at hourly samples
    assert row["trace"] == "demo" and set(row["policies"]) >= {"hpa", "leadtime", "oracle"}
    assert hourly["trace"] == "demo @1h" and hourly["interval"] == str(pd.Timedelta("1h"))
    assert row["policies"]["hpa"]["cost_vs_hpa"] == pytest.approx(1.0)
    assert set(row["reactive_at_leadtime_cost"]) == {"hpa", "forecast_scale_out"}
    assert doc["losses"] == [r["trace"] for r in (row, hourly) if r["leadtime_loses_to"]]
    assert set(doc["totals"]["leadtime"]) == {"mean_slo_violation_pct", "mean_cost_vs_hpa"}
    assert list(doc["by_interval"]) == ["5min", "1h"]
    hour = doc["by_interval"]["1h"]
    assert hour["traces"] == 1 and hour["totals"]["leadtime"]["mean_slo_violation_pct"] == \
        pytest.approx(hourly["policies"]["leadtime"]["slo_violation_pct"])


def test_intermittent_slots_fire_only_sometimes_and_only_at_their_minutes():
    series = scenario("intermittent_bursts", days=7)
    base = series.rolling("3h", center=True).median()
    burst = series > 2.5 * base
    starts = burst & ~burst.shift(1, fill_value=False)
    minutes = starts[starts].index.minute
    assert set(minutes) <= {0, 1, 30, 31}  # bursts begin at their slots (a Poisson edge aside)
    slots = 7 * 48
    assert 0.2 <= starts.sum() / slots <= 0.5  # ... and fire at a share of them


@pytest.mark.parametrize(("name", "step"), [("intermittent_two_grids_5min", "5min"),
                                            ("diurnal_weekly_30min", "30min"),
                                            ("weekly_30min", "30min")])
def test_coarse_scenarios_are_sampled_at_their_interval(name, step):
    series = scenario(name)
    assert series.index.freq == pd.tseries.frequencies.to_offset(step)
    assert (np.diff(series.index.asi8) == pd.Timedelta(step).value).all()
