"""A server given a shard of leadtime.yaml decides for that shard's pools only, says so in
/readyz, and refuses a shard that names no pool of the configuration."""

from __future__ import annotations

import yaml
from fastapi.testclient import TestClient

from leadtime.settings import Settings
from serving.app import create_app

CONFIG = {"engine": {"mode": "dry_run"},
          "pools": {"web": {"defaults": {"capacity_per_instance": 10},
                            "producers": [{"id": "hot"}, {"id": "cool"}]},
                    "jobs": {"producers": [{"id": "solo", "capacity_per_instance": 5}]}}}


def client(tmp_path, **shard) -> TestClient:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "leadtime.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    app = create_app(Settings(home=tmp_path / "home", config_path=path, **shard), load=False)
    app.state.leadtime.decisions.tier3 = None  # no Tier 3 service in the fast tests
    return TestClient(app)


def test_a_shard_serves_its_pools_only(tmp_path):
    with client(tmp_path, shard_pools="jobs") as c:
        config = c.get("/readyz").json()["config"]
        assert config["producers"] == 1 and config["shard"]["pools"] == ["jobs"]
        assert [d["producer_id"] for d in c.get("/v1/decisions").json()["decisions"]] == ["solo"]
        assert c.get("/v1/producers/hot").status_code == 404


def test_a_shard_by_hash_and_a_shard_that_names_nothing(tmp_path):
    owned = []
    for index in (0, 1):  # "jobs" hashes to shard 0 of 2, "web" to shard 1
        with client(tmp_path / str(index), shard_index=index, shard_count=2) as c:
            owned.append(c.get("/readyz").json()["config"]["shard"]["pools"])
    assert owned == [["jobs"], ["web"]]
    with client(tmp_path / "c", shard_pools="nope") as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "shard pools nope: not in the configuration" in r.json()["config"]["error"]
