"""A real Feast apply / materialise / online read on SQLite."""

from __future__ import annotations

import pytest

from features.synthetic import write_request_trace
from leadtime.data import read_request_trace
from leadtime.settings import Settings


@pytest.mark.slow
def test_apply_materialize_and_online_read(tmp_path):
    import yaml

    from features.store import ingest, materialize, online_features, open_store

    settings = Settings(home=tmp_path / "state")
    trace = read_request_trace(write_request_trace(tmp_path / "data", n=200))
    ingested = ingest(settings, trace)
    config = yaml.safe_load((ingested.repo / "feature_store.yaml").read_text())
    assert config["online_store"]["type"] == "sqlite"
    assert str(tmp_path) in config["online_store"]["path"]  # built from the settings
    materialize(ingested.repo)

    store = open_store(ingested.repo)
    frame = ingested.requests.frame
    last = frame.iloc[-1]
    consumer = frame[frame["consumer_id"] == last["consumer_id"]]
    rows = [
        {"consumer_id": last["consumer_id"], "producer_id": last["producer_id"],
         "request_type": last["request_type"]},
        {"consumer_id": "never-seen", "producer_id": "P0", "request_type": "TXT_2_IMG"},
    ]
    features = online_features(store, rows)
    assert features["c_n"].iat[0] == len(consumer)  # the latest profile, all its requests
    assert features["c_demand_last"].iat[0] == pytest.approx(consumer["y"].iat[-1])
    assert features["consumer_known"].tolist() == [1.0, 0.0]
    # the unknown consumer is given the population's profile
    assert features["c_demand_p50"].iat[1] == pytest.approx(features["pop_demand_p50"].iat[1])
    assert features["c_n"].iat[1] == 0


def test_redis_online_store_by_setting(tmp_path, monkeypatch):
    from features.store import write_config

    monkeypatch.setenv("LEADTIME_ONLINE_STORE", "redis")
    monkeypatch.setenv("LEADTIME_REDIS_URL", "127.0.0.1:6390")
    repo = write_config(Settings(home=tmp_path), "x.csv")
    text = (repo / "feature_store.yaml").read_text()
    assert "type: redis" in text and "127.0.0.1:6390" in text
