"""Several resources per producer in leadtime.yaml and in the engine: the binding one sizes."""

from __future__ import annotations

import pytest

from leadtime.config import ConfigError, parse_config
from leadtime.engine import CombinedPrediction, ProducerState, decide_all

TWO = {"pools": {"p": {"producers": [
    {"id": "web", "capacity_per_instance": 10},
    {"id": "db", "resources": {"cpu": {"capacity_per_instance": 4},
                               "memory": {"capacity_per_instance": 16,
                                          "target_utilisation": 0.8}}}]}}}


def test_a_producer_without_resources_has_its_one_load():
    config = parse_config(TWO)
    assert config.resource_keys()["web"] == {"load": "web"}
    assert config.resource_configs()["web"] == config.producers()["web"]


def test_declared_resources_are_keyed_and_take_the_producers_utilisations():
    config = parse_config(TWO)
    assert config.resource_keys()["db"] == {"cpu": "db/cpu", "memory": "db/memory"}
    cpu, memory = (config.resource_configs()[k] for k in ("db/cpu", "db/memory"))
    assert (cpu.capacity_per_instance, cpu.target_utilisation, cpu.max_utilisation) == (4, 0.7, 0.9)
    assert (memory.capacity_per_instance, memory.target_utilisation) == (16, 0.8)
    assert config.producers()["db"].capacity_per_instance == 4  # its first resource


def test_pool_defaults_declare_resources_for_every_producer():
    config = parse_config({"pools": {"p": {
        "defaults": {"resources": {"cpu": {"capacity_per_instance": 2},
                                   "network": {"capacity_per_instance": 1e8}}},
        "producers": [{"id": "a"}, {"id": "b"}]}}})
    assert set(config.resource_configs()) == {"a/cpu", "a/network", "b/cpu", "b/network"}


@pytest.mark.parametrize(("resources", "says"), [
    ({"CPU": {"capacity_per_instance": 1}}, "resources.CPU[key]"),
    ({"cpu": {}}, "resources.cpu.capacity_per_instance"),
    ({"cpu": {"capacity_per_instance": 1, "max_utilisation": 0.5}},
     "resources.cpu.max_utilisation: must be >= its target_utilisation"),
])
def test_a_bad_resource_is_refused_in_one_line(resources, says):
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace(".", r"\.")):
        parse_config({"pools": {"p": {"producers": [{"id": "db", "resources": resources}]}}})


def test_a_resource_key_may_not_be_another_producers_id():
    with pytest.raises(ConfigError, match="keyed 'db/cpu'"):
        parse_config({"pools": {"p": {"producers": [
            {"id": "db", "resources": {"cpu": {"capacity_per_instance": 1}}},
            {"id": "db/cpu", "capacity_per_instance": 1}]}}})


def test_the_engine_sizes_on_the_binding_resource_and_says_which():
    """cpu needs 3 instances for its window, memory 6: memory binds, and the reasons say so."""
    config = parse_config(TWO)
    keys = config.resource_keys()
    configs = {k: c for k, c in config.resource_configs().items() if k.startswith("db/")}
    predictions = {"db/cpu": CombinedPrediction(7, 6, 8, {"tier1": 1.0}, ()),
                   "db/memory": CombinedPrediction(70, 60, 80, {"tier1": 1.0}, ())}
    from leadtime.engine import TierPrediction

    tiers = {k: {"tier1": TierPrediction(p.point, p.lower, p.upper)}
             for k, p in predictions.items()}
    states = {k: ProducerState(instances=2) for k in configs}
    fleet = decide_all(configs, tiers, states, {"p": ["db"]}, weights={"tier1": 1.0},
                       threshold=0.0, resources={"db": keys["db"]})
    d = fleet.decisions["db"]
    assert set(fleet.decisions) == {"db"}
    assert (d.resource, d.target_instances, d.by_resource) == ("memory", 6, {"cpu": 3,
                                                                             "memory": 6})
    assert d.reasons[0] == "binding resource memory: 6 instance(s) (cpu 3)"
    assert all(r.startswith("memory: ") for r in d.reasons[1:])
    assert d.action == "scale_out" and fleet.pools["p"].redirect == {"db": 1.0}


def test_one_load_decides_exactly_as_before():
    """A producer with its one load gets the very decision it got without resources."""
    config = parse_config(TWO)
    configs = {"web": config.producers()["web"]}
    from leadtime.engine import TierPrediction

    tiers = {"web": {"tier1": TierPrediction(50, 40, 60)}}
    states = {"web": ProducerState(instances=3, current_load=30)}
    plain = decide_all(configs, tiers, states, {"p": ["web"]}, weights={"tier1": 1.0},
                       threshold=0.6)
    keyed = decide_all(configs, tiers, states, {"p": ["web"]}, weights={"tier1": 1.0},
                       threshold=0.6, resources=config.resource_keys())
    assert plain == keyed and keyed.decisions["web"].resource == "load"


@pytest.mark.parametrize("doc", ["README.md", "docs/design.md"])
def test_the_documented_two_resource_producer_is_valid(doc):
    """The two-resource example the README and the design show parses as written."""
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).parents[2] / doc).read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "orders-db" in b)
    producers = yaml.safe_load(block)
    producers = producers["pools"]["data"]["producers"] if "pools" in producers else producers
    config = parse_config({"pools": {"data": {"producers": producers}}})
    assert set(config.resource_keys()["orders-db"]) == {"cpu", "memory"}


def _long_trace(tmp_path, resources: list[str]):
    rows = ["timestamp,producer_id,resource,value"]
    for minute in range(6):
        for r in resources:
            rows.append(f"2024-03-04 00:0{minute}:00,db,{r},{minute + 1}")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_load_trace_in_the_long_format_has_one_series_per_resource(tmp_path):
    from leadtime.data import check_resources, read_load_trace

    trace = read_load_trace(_long_trace(tmp_path, ["cpu", "memory", ""]))
    assert sorted(trace.producers) == ["db", "db/cpu", "db/memory"]  # blank: its one load
    assert trace.series("db/memory").tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    config = parse_config(TWO)
    check_resources(read_load_trace(_long_trace(tmp_path, ["cpu", "memory"])),
                    config.resource_keys())  # both declared: accepted


def test_a_resource_leadtime_yaml_does_not_declare_is_refused_in_one_line(tmp_path):
    from leadtime.data import TraceError, check_resources, read_load_trace

    trace = read_load_trace(_long_trace(tmp_path, ["cpu", "gpu"]))
    with pytest.raises(TraceError) as refused:
        check_resources(trace, parse_config(TWO).resource_keys())
    assert str(refused.value) == ("long.csv: producer 'db' has no resource 'gpu' in "
                                  "leadtime.yaml (its resources: cpu, memory)")


def test_a_malformed_resource_name_refuses_the_file(tmp_path):
    from leadtime.data import TraceError, read_load_trace

    with pytest.raises(TraceError, match=r"resource.*is not a resource name"):
        read_load_trace(_long_trace(tmp_path, ["CPU load"]))
