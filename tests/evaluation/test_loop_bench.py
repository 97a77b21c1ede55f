"""``leadtime bench loop``: the whole loop at a small fleet size, every part live and warm."""

from __future__ import annotations


def test_the_loop_bench_warms_every_part_and_reports_each_measure(tmp_path):
    from evaluation.loop_bench import format_table, run_loop

    row = run_loop(20, pools=4, passes=3, decision_interval_s=300.0, home=tmp_path)
    assert row["producers"] == 20 and row["pools"] == 4 and row["passes_timed"] == 3
    assert row["sizing_calibrated"] == 20  # every producer's sizing calibrated by the warm-up
    assert row["tier3_answered"] == 20  # and Tier 3's nowcast answering
    assert 0 < row["pass_median_s"] <= row["pass_p99_s"] <= row["pass_max_s"]
    assert row["bytes_written_per_pass"] > 0 and row["log_disk_bytes_per_producer_day"] > 0
    assert row["export_bytes"] > 0 and row["peak_rss_mib"] > 0
    assert (tmp_path / "decisions.db").is_file()
    assert row["warmed_s"] >= 2 * 3600  # the least warm-up: until sizing calibrates
    table = format_table({"runs": [row]})
    assert "20" in table and "Tier 2 not wired" in table


def test_the_loop_bench_warms_for_as_long_as_asked(tmp_path):
    """``--warm-hours``: a pass costs more as the records fill, so steady state is timed after
    the loop has run that long; the table says how long it ran."""
    from evaluation.loop_bench import format_table, run_loop

    row = run_loop(2, pools=1, passes=1, home=tmp_path, warm_s=6 * 3600.0)
    assert row["warmed_s"] >= 6 * 3600 and row["warm_up_passes"] >= 6 * 12
    assert "(6 h of its clock)" in format_table({"runs": [row]})


def test_the_state_a_producer_holds_is_traced_by_part(tmp_path):
    """The steady-state measure: every byte the runtime still holds, attributed to its part
    (here after the warm-up alone, which already fills each part a little)."""
    from evaluation.loop_bench import STATE_PARTS, format_table, run_loop

    row = run_loop(2, pools=1, passes=1, home=tmp_path, trace_state=True)
    held = row["state_bytes"]
    assert set(held) == {name for name, _ in STATE_PARTS}
    for part in ("tier3 detector (KNN-CAD)", "tier3 state and nowcast", "sizing record",
                 "HPA twin", "tier1 champion"):
        assert held[part] > 0, part
    steady = {"after_days": 0.1, "load_every_s": 60.0, "bytes": held,
              "total_bytes": sum(held.values())}
    assert "MiB of state: tier3 detector" in format_table({"runs": [row], "steady_state": steady})
