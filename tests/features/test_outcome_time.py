"""A request's demand is usable only once it is known (completion), offline and online.

A predecessor from the same consumer that is still running when a request arrives must not be
in that request's features; once it has completed, it must be.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.profiles import (
    DEFAULT_FEEDBACK_DELAY,
    EPSILON,
    RequestFrame,
    build_feature_tables,
    known_at,
    unit_seconds,
)
from leadtime.data import read_request_trace
from leadtime.settings import Settings

T0 = pd.Timestamp("2024-05-01 12:00:00")


def _requests(offsets_s, demands, consumers, unit="seconds") -> RequestFrame:
    frame = pd.DataFrame({
        "event_timestamp": [T0 + pd.Timedelta(seconds=s) for s in offsets_s],
        "consumer_id": consumers, "producer_id": "P0", "request_type": "T", "y": demands,
    })
    return RequestFrame(frame, [], "demand", True, True, unit)


def _as_of(table: pd.DataFrame, consumer: str, when: pd.Timestamp) -> pd.Series | None:
    """What a point-in-time join (feature time <= request time) gives a request at ``when``."""
    rows = table[(table["consumer_id"] == consumer) & (table["event_timestamp"] <= when)]
    return None if rows.empty else rows.iloc[-1]


@pytest.mark.parametrize("unit, seconds", [("seconds", 1.0), ("s", 1.0), ("ms", 1e-3),
                                           ("Minutes", 60.0), ("tokens", None), ("", None)])
def test_target_unit_is_parsed(unit, seconds):
    assert unit_seconds(unit) == seconds


def test_known_at_is_completion_for_durations_and_a_delay_otherwise():
    frame = _requests([0, 10], [30.0, 5.0], ["a", "a"]).frame
    assert list(known_at(frame, "seconds")) == [T0 + pd.Timedelta(seconds=30),
                                               T0 + pd.Timedelta(seconds=15)]
    assert known_at(frame, "ms").iat[0] == T0 + pd.Timedelta(milliseconds=30)
    assert known_at(frame, "tokens").iat[0] == T0 + DEFAULT_FEEDBACK_DELAY
    assert known_at(frame, "tokens", feedback_delay=5).iat[1] == T0 + pd.Timedelta(seconds=15)


def test_in_flight_predecessor_is_invisible_until_it_completes():
    # a's first request runs 100 s; its second arrives at +30 s (first still running), its
    # third at +150 s (first done). b's short request (+10 s, 5 s) completes before a's.
    requests = _requests([0, 10, 30, 150], [100.0, 5.0, 20.0, 7.0], ["a", "b", "a", "a"])
    consumer = build_feature_tables(requests)["consumer_profile"]
    assert _as_of(consumer, "a", T0 + pd.Timedelta(seconds=30)) is None
    # at +100 s exactly: the +30 s request (done at +50 s) is known, the 100 s one is not yet
    at_100 = _as_of(consumer, "a", T0 + pd.Timedelta(seconds=100))
    assert at_100["c_n"] == 1 and at_100["c_demand_last"] == pytest.approx(20.0)
    after = _as_of(consumer, "a", T0 + pd.Timedelta(seconds=150))
    assert after["c_n"] == 2  # the +0 s (done at +100 s) and the +30 s (done at +50 s)
    assert after["c_demand_last"] == pytest.approx(100.0)  # the latest *completed*
    assert after["c_demand_mean"] == pytest.approx(60.0)
    assert after["event_timestamp"] == T0 + pd.Timedelta(seconds=100) + EPSILON
    # population and producer views follow the same rule
    tables = build_feature_tables(requests)
    pop = tables["population_profile"]
    first = pop[pop["event_timestamp"] <= T0 + pd.Timedelta(seconds=30)]
    assert first["pop_n"].max() == 1  # only b's 5 s request had completed by +30 s
    load = tables["producer_load"]
    assert load[load["event_timestamp"] <= T0 + pd.Timedelta(seconds=30)]["p_n_1h"].max() == 1


def test_non_duration_targets_wait_for_the_feedback_delay():
    requests = _requests([0, 30, 90], [500.0, 10.0, 10.0], ["a", "a", "a"], unit="tokens")
    consumer = build_feature_tables(requests, feedback_delay=60)["consumer_profile"]
    assert _as_of(consumer, "a", T0 + pd.Timedelta(seconds=30)) is None
    assert _as_of(consumer, "a", T0 + pd.Timedelta(seconds=90))["c_demand_last"] == 500.0
    slower = build_feature_tables(requests, feedback_delay="120s")["consumer_profile"]
    assert _as_of(slower, "a", T0 + pd.Timedelta(seconds=90)) is None


def _write_trace(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [("12:00:00", "A", 100), ("12:00:30", "A", 20), ("12:02:30", "A", 7),
            ("12:00:10", "B", 5)]
    rows.sort(key=lambda r: r[0])
    lines = ["timestamp,consumer_id,producer_id,request_type,steps,demand"]
    lines += [f"2024-05-01 {t},{c},P0,T,10,{d}" for t, c, d in rows]
    path = folder / "inflight.csv"
    path.write_text("\n".join(lines) + "\n")
    (folder / "inflight.schema.yaml").write_text(
        "target: demand\ntarget_unit: seconds\ncategorical: [consumer_id, producer_id, "
        "request_type]\nnumeric: [steps]\ntime: timestamp\n")
    return path


@pytest.mark.slow
def test_feast_training_set_and_online_store_respect_completion(tmp_path):
    from features.store import historical_features, ingest, materialize, online_features, open_store

    trace = read_request_trace(_write_trace(tmp_path / "data"))
    ingested = ingest(Settings(home=tmp_path / "state"), trace)
    requests = ingested.requests.frame
    features = historical_features(ingested.repo, requests)
    by_time = dict(zip(requests["event_timestamp"].dt.strftime("%H:%M:%S"),
                       features.to_dict("records"), strict=True))
    # +30 s: A's first request (100 s) still running -> A is unknown, population features
    assert by_time["12:00:30"]["c_n"] == 0 and by_time["12:00:30"]["consumer_known"] == 0
    # +150 s: both earlier A requests have completed
    assert by_time["12:02:30"]["c_n"] == 2
    assert by_time["12:02:30"]["c_demand_last"] == pytest.approx(100.0)

    # online: materialising up to +60 s serves only what was known then (A's +30 s request,
    # done at +50 s), not the 100 s request still running
    key = {"consumer_id": "A", "producer_id": "P0", "request_type": "T"}
    materialize(ingested.repo, end=(T0 + pd.Timedelta(seconds=60)).to_pydatetime())
    online = online_features(open_store(ingested.repo), [key])
    assert online["c_n"].iat[0] == 1 and online["c_demand_last"].iat[0] == pytest.approx(20.0)
    materialize(ingested.repo, end=(T0 + pd.Timedelta(seconds=101)).to_pydatetime())
    online = online_features(open_store(ingested.repo), [key])
    assert online["c_n"].iat[0] == 2 and online["c_demand_last"].iat[0] == pytest.approx(100.0)
