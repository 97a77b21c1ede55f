"""Point-in-time correctness of the feature rows and of Feast's training set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.profiles import EPSILON, history_rows
from features.synthetic import write_request_trace
from leadtime.data import read_request_trace
from leadtime.settings import Settings


def test_history_rows_are_stamped_after_their_request():
    t = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 00:05"])
    frame = pd.DataFrame({"consumer_id": ["a", "a", "a"], "event_timestamp": t,
                          "y": [1.0, 3.0, 5.0], "heavy": [0.0, 1.0, 1.0]})
    rows = history_rows(frame, ["consumer_id"], "c")
    # two requests share a timestamp: one row for both, stamped just after them
    assert list(rows["c_n"]) == [2, 3]
    assert rows["event_timestamp"].iloc[0] == t[0] + EPSILON
    assert rows["c_demand_mean"].iloc[0] == pytest.approx(2.0)


@pytest.mark.slow
def test_training_set_uses_only_requests_completed_earlier(tmp_path):
    from features.profiles import known_at
    from features.store import historical_features, ingest

    trace = read_request_trace(write_request_trace(tmp_path / "data", n=300))
    ingested = ingest(Settings(home=tmp_path / "state"), trace)
    requests = ingested.requests.frame
    features = historical_features(ingested.repo, requests)
    assert len(features) == len(requests)

    # the truth, computed directly: a consumer's requests that had *completed* (arrival +
    # demand seconds) strictly before each request arrived, in completion order
    done = requests.assign(done=known_at(requests, "seconds")).sort_values("done", kind="stable")
    for i in range(0, len(requests), 7):
        row = requests.iloc[i]
        earlier = done[(done["consumer_id"] == row["consumer_id"])
                       & (done["done"] < row["event_timestamp"])]
        assert features["c_n"].iat[i] == len(earlier)
        if len(earlier):
            assert features["consumer_known"].iat[i] == 1
            assert features["c_demand_mean"].iat[i] == pytest.approx(earlier["y"].mean())
            assert features["c_demand_last"].iat[i] == pytest.approx(earlier["y"].iat[-1])
        else:  # a new consumer gets population features, never its own future
            assert features["consumer_known"].iat[i] == 0
        same_type = earlier[earlier["request_type"] == row["request_type"]]
        assert features["ct_n"].iat[i] == len(same_type)
        recent = done[(done["producer_id"] == row["producer_id"])
                      & (done["done"] < row["event_timestamp"])]
        assert features["p_n_1h"].iat[i] <= len(recent)
    # nothing in the features equals the request's own demand by construction
    assert not np.allclose(features["c_demand_last"], requests["y"])
