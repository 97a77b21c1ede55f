"""The decision log's write of a pass: one statement per table, whatever the fleet's size, and
the decision ids one-row-at-a-time inserts under AUTOINCREMENT would have given."""

from __future__ import annotations

from leadtime.config import parse_config
from leadtime.engine import TierPrediction
from loop.clock import ReplayClock
from loop.decision_log import DecisionLog
from loop.decision_loop import DecisionLoop, Report
from loop.sources import Answers

HOUR = 3600.0


class NumberedAnswers:
    """A Tier 1 answering each producer with a point of its own: its number times ten."""

    tier = "tier1"

    def answer(self, producers, now_s, level):
        return Answers({pid: TierPrediction(10.0 * int(pid[1:]), 5.0, 20.0 * int(pid[1:]) + 1)
                        for pid in producers})


def _loop(tmp_path, producers: int, retention_s: float = 2 * HOUR):
    config = parse_config({
        "engine": {"decision_interval_s": 300, "log_retention_s": retention_s},
        "pools": {"fleet": {"defaults": {"capacity_per_instance": 10},
                            "producers": [{"id": f"p{i}"} for i in range(1, producers + 1)]}}})
    clock = ReplayClock(1_700_000_000.0)
    log = DecisionLog(tmp_path / "log.sqlite")
    return DecisionLoop(config, [NumberedAnswers()], clock, decision_log=log), clock, log


class CountingCursor:
    """A cursor that records each call that sends SQL: (method, table inserted into)."""

    def __init__(self, cursor, calls: list) -> None:
        self._cursor, self._calls = cursor, calls

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def _record(self, method: str, sql: str) -> None:
        words = sql.split()
        if words[0].upper() == "INSERT":
            self._calls.append((method, words[2].split("(")[0]))

    def execute(self, sql, *args):
        self._record("execute", sql)
        return self._cursor.execute(sql, *args)

    def executemany(self, sql, rows):
        self._record("executemany", sql)
        return self._cursor.executemany(sql, rows)


class CountingConnection:
    def __init__(self, conn, calls: list) -> None:
        self._conn, self._calls = conn, calls

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def cursor(self):
        return CountingCursor(self._conn.cursor(), self._calls)


def test_a_pass_is_written_in_one_statement_per_table(tmp_path):
    loop, _clock, log = _loop(tmp_path, 50)
    calls: list[tuple[str, str]] = []
    log._conn = CountingConnection(log._conn, calls)
    loop.report([Report(f"p{i}", 2, 12.0) for i in range(1, 51)])
    loop.step()
    log._conn = log._conn._conn
    assert ("executemany", "decisions") in calls
    assert calls.count(("executemany", "decisions")) == 1
    assert ("execute", "decisions") not in calls
    assert log.counts()["decisions"] == 50 and log.counts()["tier_predictions"] == 50


def test_decision_ids_continue_the_tables_sequence_and_name_their_tier_rows(tmp_path):
    """Ids follow on from the sequence, also after a prune emptied the table (AUTOINCREMENT
    never hands an id out twice), and each tier row belongs to its own producer's decision."""
    loop, clock, log = _loop(tmp_path, 3, retention_s=86400.0)
    for _ in range(12 * 4):  # four hours; then everything older than now is pruned
        loop.report([Report(f"p{i}", 2, 12.0) for i in (1, 2, 3)])
        loop.step()
        clock.advance(300)
    assert log.counts()["decisions"] == 3 * 48
    log.prune(clock.now() + HOUR)
    assert log.counts()["decisions"] == 0
    loop.report([Report(f"p{i}", 2, 12.0) for i in (1, 2, 3)])
    loop.step()
    rows = log.query("SELECT d.decision_id, d.producer_id, t.point FROM decisions d "
                     "JOIN tier_predictions t USING (decision_id) ORDER BY d.decision_id")
    assert rows["decision_id"].tolist() == [3 * 48 + 1, 3 * 48 + 2, 3 * 48 + 3]
    assert rows["producer_id"].tolist() == ["p1", "p2", "p3"]
    assert rows["point"].tolist() == [10.0, 20.0, 30.0]
    assert log.query("SELECT seq FROM sqlite_sequence WHERE name = 'decisions'"
                     )["seq"].tolist() == [3 * 49]
