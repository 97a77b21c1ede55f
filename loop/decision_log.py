"""The decision log: every decision and the tier predictions behind it, appended to SQLite.

One transaction per batch (an engine pass): a crash mid-write leaves the previous batches intact
and no half batch (SQLite's journal rolls it back), and WAL mode lets the feedback flow read
while the API appends. Observed load is recorded beside it (``observed_load``) so the feedback
loop can join what was predicted for a window with what arrived.

Times are Unix seconds (UTC). A decision taken at ``decided_at`` is for the window
``[decided_at, window_start]``, ``window_start`` being decision time + the producer's spin-up
lead time. ``loop_state`` holds the decision loop's own state as of the last pass, written in
the same transaction as that pass (see ``loop.decision_loop``). ``reported_states`` holds each
producer's latest reported state, written before the report is acknowledged, so a report
answered 200 survives the process being killed before the next pass.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from leadtime.engine import FleetDecisions, ProducerConfig, TierPrediction

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY AUTOINCREMENT,
    decided_at REAL NOT NULL, mode TEXT NOT NULL, threshold REAL NOT NULL,
    weights TEXT NOT NULL, weights_version TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    decision_id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id INTEGER NOT NULL REFERENCES batches(batch_id),
    producer_id TEXT NOT NULL, pool TEXT, window_start REAL NOT NULL,
    action TEXT NOT NULL, target_instances INTEGER NOT NULL, current_instances INTEGER NOT NULL,
    load_score REAL, point REAL, lower REAL, upper REAL,
    act INTEGER NOT NULL, dry_run INTEGER NOT NULL, reasons TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_producer_window ON decisions(producer_id, window_start);
CREATE TABLE IF NOT EXISTS tier_predictions (
    decision_id INTEGER NOT NULL REFERENCES decisions(decision_id),
    tier TEXT NOT NULL, point REAL, lower REAL, upper REAL, weight REAL,
    PRIMARY KEY (decision_id, tier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pool_decisions (
    batch_id INTEGER NOT NULL REFERENCES batches(batch_id), pool TEXT NOT NULL,
    redirect TEXT NOT NULL, selection TEXT NOT NULL, act INTEGER NOT NULL, reasons TEXT NOT NULL,
    PRIMARY KEY (batch_id, pool)
);
CREATE TABLE IF NOT EXISTS loop_state (
    id INTEGER PRIMARY KEY CHECK (id = 1), batch_id INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reported_states (
    producer_id TEXT PRIMARY KEY, instances INTEGER NOT NULL, current_load REAL,
    last_scale_out_s REAL, reported_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions_hourly (
    producer_id TEXT NOT NULL, hour REAL NOT NULL, passes INTEGER NOT NULL,
    scale_outs INTEGER NOT NULL, scale_ins INTEGER NOT NULL,
    mean_target REAL NOT NULL, max_target INTEGER NOT NULL, mean_current REAL NOT NULL,
    max_point REAL, max_upper REAL, max_load_score REAL, max_observed REAL,
    PRIMARY KEY (producer_id, hour)
);
CREATE INDEX IF NOT EXISTS batches_decided_at ON batches(decided_at);
CREATE INDEX IF NOT EXISTS decisions_batch ON decisions(batch_id);
CREATE TABLE IF NOT EXISTS observed_load (
    producer_id TEXT NOT NULL, window_start REAL NOT NULL, load REAL NOT NULL,
    PRIMARY KEY (producer_id, window_start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS observed_load_window ON observed_load(window_start);
"""


_HOUR = "CAST(b.decided_at / 3600 AS INTEGER) * 3600.0"
#: The hourly aggregates of the decisions made before ``?`` (:meth:`DecisionLog.prune`): the old
#: batches first (``CROSS JOIN`` keeps SQLite's join in that order), their decisions by batch.
PRUNE_FOLD = (
    "INSERT OR REPLACE INTO decisions_hourly "
    f"SELECT d.producer_id, {_HOUR} AS h, COUNT(*), "
    "SUM(d.action = 'scale_out'), SUM(d.action = 'scale_in'), "
    "AVG(d.target_instances), MAX(d.target_instances), AVG(d.current_instances), "
    "MAX(d.point), MAX(d.upper), MAX(d.load_score), "
    "(SELECT MAX(o.load) FROM observed_load o WHERE o.producer_id = d.producer_id"
    f" AND o.window_start >= {_HOUR} AND o.window_start < {_HOUR} + 3600) "
    "FROM batches b CROSS JOIN decisions d USING (batch_id) WHERE b.decided_at < ? "
    "GROUP BY d.producer_id, h")


def _num(value: float | None) -> float | None:
    """SQLite stores NaN as NULL anyway; keep infinities out too."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


class DecisionLog:
    """Append-only SQLite log; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # a new file: pages reusable
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint/commit
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction under the lock: committed whole, or rolled back whole."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def append(
        self,
        fleet: FleetDecisions,
        tiers: Mapping[str, Mapping[str, TierPrediction | None]],
        configs: Mapping[str, ProducerConfig],
        decided_at: float,
        pool_of: Mapping[str, str] | None = None,
        weights_version: str | None = None,
        loop_state: Mapping | None = None,
    ) -> int:
        """Append one engine pass in one transaction; returns its batch id.

        ``loop_state`` (the decision loop's own state) is replaced in the same transaction, so
        after a crash the state read back is the one of the last pass logged."""
        pool_of = pool_of or {}
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO batches(decided_at, mode, threshold, weights, weights_version) "
                "VALUES (?,?,?,?,?)",
                (decided_at, "dry_run" if fleet.dry_run else "act", fleet.threshold,
                 json.dumps(fleet.weights), weights_version))
            batch = int(cur.lastrowid)
            # every decision in one statement: their ids are the ones AUTOINCREMENT would give
            # one row at a time (the table's sequence, then one more per row; the transaction
            # holds the write lock), so the tier rows can name them without a round trip each
            seq = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'decisions'"
                              ).fetchone()
            first = (seq[0] if seq else 0) + 1
            rows, tier_rows = [], []
            for did, (pid, d) in enumerate(fleet.decisions.items(), start=first):
                p = d.prediction
                lead = configs[pid].spinup_lead_time_s if pid in configs else 0.0
                rows.append((did, batch, pid, pool_of.get(pid), decided_at + lead, d.action,
                             d.target_instances, d.current_instances, _num(d.load_score),
                             _num(p.point) if p else None, _num(p.lower) if p else None,
                             _num(p.upper) if p else None, int(d.act), int(d.dry_run),
                             json.dumps(list(d.reasons))))
                used = p.weights if p else {}
                for tier, t in (tiers.get(pid) or {}).items():
                    if t is None:
                        continue
                    tier_rows.append((did, tier, _num(t.point), _num(t.lower), _num(t.upper),
                                      used.get(tier)))
            cur.executemany(
                "INSERT INTO decisions(decision_id, batch_id, producer_id, pool, window_start, "
                "action, target_instances, current_instances, load_score, point, lower, upper, "
                "act, dry_run, reasons) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            cur.executemany("INSERT INTO tier_predictions VALUES (?,?,?,?,?,?)", tier_rows)
            cur.executemany(
                "INSERT INTO pool_decisions VALUES (?,?,?,?,?,?)",
                [(batch, name, json.dumps(pd_.redirect), json.dumps(pd_.selection),
                  int(pd_.act), json.dumps(list(pd_.reasons)))
                 for name, pd_ in fleet.pools.items()])
            if loop_state is not None:
                cur.execute("INSERT OR REPLACE INTO loop_state VALUES (1, ?, ?)",
                            (batch, json.dumps(loop_state)))
        return batch

    def record_observed(self, rows: Iterable[tuple[str, float, float]],
                        states: Iterable[tuple[str, int, float | None, float | None, float]] = (),
                        ) -> int:
        """Record observed load ``(producer_id, window_start, load)`` (re-recording replaces)
        and, in the same transaction, reported states ``(producer_id, instances, current_load,
        last_scale_out_s, reported_at)`` (each replacing the producer's previous one)."""
        rows = list(rows)
        with self._transaction() as cur:
            cur.executemany("INSERT OR REPLACE INTO observed_load VALUES (?,?,?)", rows)
            cur.executemany("INSERT OR REPLACE INTO reported_states VALUES (?,?,?,?,?)",
                            [(p, n, _num(load), _num(last), at) for p, n, load, last, at in states])
        return len(rows)

    def loop_state(self) -> dict | None:
        """The decision loop's state as of the last logged pass (None before the first), with
        ``batch_id`` (that pass's batch) and ``reported`` (every producer's latest reported
        state, which may be newer than the pass: ``producer → [instances, load, last]``)."""
        with self._lock:
            row = self._conn.execute("SELECT batch_id, state FROM loop_state WHERE id = 1"
                                     ).fetchone()
            reported = self._conn.execute(
                "SELECT producer_id, instances, current_load, last_scale_out_s "
                "FROM reported_states").fetchall()
        if not row and not reported:
            return None
        state = json.loads(row[1]) if row else {}
        state["batch_id"] = int(row[0]) if row else 0
        state["reported"] = {p: [n, load, last] for p, n, load, last in reported}
        return state

    def prune(self, before: float) -> dict[str, int]:
        """Fold everything decided before ``before`` (Unix seconds) into ``decisions_hourly``
        (per producer and hour: passes, scale-outs and -ins, mean and max target, mean current,
        the largest predicted point and upper bound, load score and observed load), then delete
        those batches with their decisions, tier predictions and pool decisions, and the observed
        load, in one transaction; then hand the freed pages back (incremental vacuum). Returns
        the rows deleted per table. ``before`` should fall on an hour, so that each hour is
        folded once, whole.

        Every statement starts from the old rows' indexes (batches by decision time, their
        decisions by batch, observed load by window), so a prune costs what it removes, not the
        size of the log: the loop prunes hourly, inside a pass, and at 10,000 producers the
        log holds tens of millions of decisions (``tests/loop/test_log_retention.py`` checks
        the plans)."""
        deleted = dict.fromkeys(("tier_predictions", "decisions", "pool_decisions", "batches",
                                 "observed_load"), 0)
        old = "SELECT batch_id FROM batches WHERE decided_at < ?"
        with self._transaction() as cur:
            if not cur.execute(f"SELECT EXISTS ({old}) OR EXISTS (SELECT 1 FROM observed_load "
                               "WHERE window_start < ?)", (before, before)).fetchone()[0]:
                return deleted  # nothing older: the hourly call costs two index probes
            cur.execute(PRUNE_FOLD, (before,))
            deleted.update({
                "tier_predictions": cur.execute(
                    "DELETE FROM tier_predictions WHERE decision_id IN (SELECT decision_id "
                    f"FROM decisions WHERE batch_id IN ({old}))", (before,)).rowcount,
                "decisions": cur.execute(f"DELETE FROM decisions WHERE batch_id IN ({old})",
                                         (before,)).rowcount,
                "pool_decisions": cur.execute(
                    f"DELETE FROM pool_decisions WHERE batch_id IN ({old})",
                    (before,)).rowcount,
                "batches": cur.execute("DELETE FROM batches WHERE decided_at < ?",
                                       (before,)).rowcount,  # ids are never reused
                "observed_load": cur.execute("DELETE FROM observed_load WHERE "
                                             "window_start < ?", (before,)).rowcount,
            })
        with self._lock:
            self._conn.execute("PRAGMA incremental_vacuum")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def hourly(self, producer_id: str | None = None) -> pd.DataFrame:
        """The hourly aggregates of pruned decisions (see :meth:`prune`)."""
        where, params = ("WHERE producer_id = ?", (producer_id,)) if producer_id else ("", ())
        return self.query(f"SELECT * FROM decisions_hourly {where} ORDER BY producer_id, hour",
                          params)

    def history(self, producer_id: str | None = None, since: float | None = None,
                until: float | None = None, after_id: int = 0, limit: int = 100,
                ) -> list[dict]:
        """Logged decisions in ``[since, until)`` of decision time, oldest first, after decision
        ``after_id`` (the cursor of the previous page), at most ``limit``: each with its pass
        (batch), times, action, instances, prediction and reasons."""
        where = ["d.decision_id > ?", "b.decided_at >= ?", "b.decided_at < ?"]
        params: list = [after_id, since if since is not None else float("-inf"),
                        until if until is not None else float("inf")]
        if producer_id is not None:
            where.append("d.producer_id = ?")
            params.append(producer_id)
        sql = ("SELECT d.decision_id, d.batch_id, b.decided_at, d.window_start, d.producer_id, "
               "d.pool, d.action, d.target_instances, d.current_instances, d.load_score, "
               "d.point, d.lower, d.upper, d.act, d.dry_run, d.reasons FROM decisions d "
               "JOIN batches b USING (batch_id) WHERE " + " AND ".join(where)
               + " ORDER BY d.decision_id LIMIT ?")
        with self._lock:
            cursor = self._conn.execute(sql, (*params, limit))
            names = [c[0] for c in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["act"], row["dry_run"] = bool(row["act"]), bool(row["dry_run"])
            row["reasons"] = json.loads(row["reasons"])
        return rows

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        with self._lock:
            return pd.read_sql_query(sql, self._conn, params=params)

    def tier_predictions(self, since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """One row per (decision, tier): producer_id, window_start, decided_at, tier, point,
        lower, upper (the decision's window is ``[decided_at, window_start]``)."""
        return self.query(
            "SELECT d.decision_id, d.producer_id, d.window_start, b.decided_at, t.tier, t.point, "
            "t.lower, t.upper, t.weight, d.point AS combined FROM tier_predictions t "
            "JOIN decisions d USING (decision_id) JOIN batches b USING (batch_id) "
            "WHERE d.window_start >= ? AND d.window_start < ? "
            "ORDER BY d.window_start",
            (since if since is not None else float("-inf"),
             until if until is not None else float("inf")))

    def observed(self) -> pd.DataFrame:
        return self.query("SELECT producer_id, window_start, load FROM observed_load "
                          "ORDER BY window_start")

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("batches", "decisions", "tier_predictions", "observed_load",
                      "decisions_hourly"):
            out[table] = int(self.query(f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])
        return out
