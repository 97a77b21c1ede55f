"""deploy/kubernetes: the manifests pass Kubernetes' and KEDA's schemas, and agree with the
leadtime.yaml they carry (producer, replica bounds, the scaler's port)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from leadtime.config import parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def docs(name: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d}


def test_scaled_object_agrees_with_the_leadtime_config():
    app, so = docs("leadtime.yaml"), docs("scaledobject.yaml")["ScaledObject"]
    config = parse_config(yaml.safe_load(app["ConfigMap"]["data"]["leadtime.yaml"]))
    assert config.dry_run  # the manifests start in dry run
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "external" and trigger["metricType"] == "AverageValue"
    pid = trigger["metadata"]["producerId"]
    settings = config.settings_of(pid)
    assert so["spec"]["minReplicaCount"] == settings.min_instances
    assert so["spec"]["maxReplicaCount"] == settings.max_instances
    args = app["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    port = args[args.index("--keda-port") + 1]
    assert trigger["metadata"]["scalerAddress"].endswith(f":{port}")
    assert app["Deployment"]["spec"]["replicas"] == 1
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 0  # leadtime's rule governs


@pytest.mark.slow
def test_manifests_pass_the_kubernetes_and_keda_schemas(tmp_path):
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node/npm not installed: deploy/kubernetes/validate needs them")
    done = subprocess.run([str(DEPLOY / "validate")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": valid") == 7  # leadtime.yaml 4, the sharded 2, the ScaledObject
    # and the schemas do refuse a bad one
    bad = tmp_path / "bad.yaml"
    so = docs("scaledobject.yaml")["ScaledObject"]
    so["spec"]["minReplicaCount"] = "one"
    bad.write_text(yaml.safe_dump(so))
    work = tmp_path / "copy"
    shutil.copytree(DEPLOY, work)
    for f in work.glob("*.yaml"):
        f.unlink()
    shutil.copy(bad, work / "bad.yaml")
    refused = subprocess.run([str(work / "validate")], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1 and "minReplicaCount must be integer" in refused.stdout


def test_the_sharded_statefulset_names_each_pod_its_shard():
    """One pod per shard: the replica count is LEADTIME_SHARD_COUNT, each pod's index its
    LEADTIME_SHARD_INDEX, each with its own state volume and the single deployment's config."""
    sharded, single = docs("leadtime-sharded.yaml"), docs("leadtime.yaml")
    spec = sharded["StatefulSet"]["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert int(env["LEADTIME_SHARD_COUNT"]["value"]) == spec["replicas"]
    assert env["LEADTIME_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']")
    assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["state"]
    config_map = next(v for v in spec["template"]["spec"]["volumes"] if "configMap" in v)
    assert config_map["configMap"]["name"] == single["ConfigMap"]["metadata"]["name"]
    assert sharded["Service"]["spec"]["clusterIP"] == "None"
    assert spec["serviceName"] == sharded["Service"]["metadata"]["name"]
