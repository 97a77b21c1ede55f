"""The decision log's retention: the loop, driven across several retention windows, keeps a
bounded log (the detail of one window, hourly aggregates beyond it) and reuses its space."""

from __future__ import annotations

from leadtime.config import parse_config
from loop.clock import ReplayClock
from loop.decision_log import DecisionLog
from loop.decision_loop import DecisionLoop, Report
from loop.sources import Unavailable

PRODUCERS = 100
HOUR = 3600.0


def test_the_log_holds_a_steady_size_across_retention_windows(tmp_path):
    config = parse_config({
        "engine": {"decision_interval_s": 300, "log_retention_s": 2 * HOUR},
        "pools": {"fleet": {"defaults": {"capacity_per_instance": 10},
                            "producers": [{"id": f"p{i:03d}"} for i in range(PRODUCERS)]}}})
    clock = ReplayClock(1_700_000_000.0)
    log = DecisionLog(tmp_path / "log.sqlite")
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock, decision_log=log)
    counts, sizes = [], []
    for step in range(12 * 14):  # 14 hours at one pass per five minutes: seven windows
        loop.report([Report(f"p{i:03d}", 2, float(10 + step % 7)) for i in range(PRODUCERS)])
        loop.step()
        clock.advance(300)
        if step % 12 == 11:  # every hour
            counts.append(log.counts())
            sizes.append((tmp_path / "log.sqlite").stat().st_size)
    # detail: at most the retention window, plus the hour between prunes and the hour the cut
    # is floored to (whole hours are folded)
    most = (2 + 2) * 12 * PRODUCERS
    assert all(c["decisions"] <= most for c in counts), [c["decisions"] for c in counts]
    assert counts[-1]["decisions"] == counts[-2]["decisions"]  # steady
    assert counts[-1]["observed_load"] <= most
    # beyond it, hourly aggregates per producer: one row per producer and pruned hour
    hourly = log.hourly("p000")
    assert len(hourly) >= 6 and (hourly["passes"].iloc[1:] == 12).all()  # each hour once, whole
    assert hourly["passes"].iloc[0] == 10  # the loop started at 22:13:20: ten passes that hour
    assert (hourly["mean_current"] == 2).all() and (hourly["max_observed"] == 16).all()
    # once pruning has cycled, the file grows only by the hourly aggregates (freed pages are
    # reused): under 5 % over the last five hours
    assert sizes[-1] <= sizes[8] * 1.05, sizes
    # the pass counter and the loop's restore are unaffected
    again = DecisionLoop(config, [Unavailable("tier1", "none here")], clock,
                         decision_log=DecisionLog(tmp_path / "log.sqlite"))
    assert again.restore() and again.step().number == 12 * 14 + 1


def test_a_prune_costs_what_it_removes_not_the_size_of_the_log(tmp_path):
    """The loop prunes hourly inside a pass; at fleet size the log holds tens of millions of
    decisions, so no statement of a prune may scan a whole table: each starts from the old
    rows' indexes (SQLite's own query plans, read with ``EXPLAIN QUERY PLAN``). With nothing
    old enough, a prune only probes."""
    config = parse_config({
        "engine": {"decision_interval_s": 300, "log_retention_s": 2 * HOUR},
        "pools": {"fleet": {"defaults": {"capacity_per_instance": 10},
                            "producers": [{"id": f"p{i}"} for i in range(3)]}}})
    clock = ReplayClock(1_700_000_000.0)
    log = DecisionLog(tmp_path / "log.sqlite")
    loop = DecisionLoop(config, [Unavailable("tier1", "none here")], clock, decision_log=log)
    for _ in range(12 * 4):  # four hours: the first two are past the retention window
        loop.report([Report(f"p{i}", 2, 12.0) for i in range(3)])
        loop.step()
        clock.advance(300)
    executed: list[str] = []
    log._conn.set_trace_callback(executed.append)
    assert log.prune(1_600_000_000.0) == dict.fromkeys(
        ("tier_predictions", "decisions", "pool_decisions", "batches", "observed_load"), 0)
    assert not any(s.lstrip().upper().startswith(("INSERT", "DELETE")) for s in executed)
    executed.clear()
    deleted = log.prune(clock.now() - 2 * HOUR)
    log._conn.set_trace_callback(None)
    assert deleted["decisions"] > 0 and deleted["observed_load"] > 0
    statements = [s for s in executed if s.lstrip().upper().startswith(("INSERT", "DELETE"))]
    assert len(statements) == 6, statements
    for statement in statements:
        plan = [row[3] for row in log._conn.execute("EXPLAIN QUERY PLAN " + statement)]
        scans = [step for step in plan if step.startswith("SCAN")]
        assert not scans, (statement, plan)
