"""Kubernetes manifests (deploy/k8s), checked by structure (no cluster here): probes on
/readyz and /healthz, non-root with a read-only root filesystem, Service/HPA/PDB pointing at the
Deployment, Redis as a StatefulSet with persistence and the compose Redis settings, every
ConfigMap value one the service accepts, API keys only in a Secret that is not applied."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import ENV_PREFIX, Settings, load_settings
from tests.deploy.stack import dockerfile_stages, load_compose
from tests.support.processes import ROOT

K8S = ROOT / "deploy" / "k8s"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, key
            out[key] = doc
    return out


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert files - listed == {"secret.example.yaml", "worker.example.yaml"}
    assert listed <= files


def test_kinds(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(objects) == {
        ("ConfigMap", "tad-config"),
        ("Deployment", "tad"),
        ("Service", "tad"),
        ("HorizontalPodAutoscaler", "tad"),
        ("PodDisruptionBudget", "tad"),
        ("Service", "redis"),
        ("StatefulSet", "redis"),
        ("NetworkPolicy", "redis"),
    }


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return dict(c)


def test_deployment_probes_and_security(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    dep = objects[("Deployment", "tad")]
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    config = objects[("ConfigMap", "tad-config")]["data"]
    (port,) = c["ports"]
    assert port["name"] == "http" and str(port["containerPort"]) == config["TAD_PORT"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"

    uid = int(dockerfile_stages()["runtime"].user().split(":")[0])
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == uid and ctx["fsGroup"] == uid
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False

    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/tmp"] in volumes and "emptyDir" in volumes[mounts["/tmp"]]
    assert config["TAD_MODEL_DIR"] in mounts, "the models volume is where the service looks"
    env_from = c["envFrom"]
    assert {"configMapRef": {"name": "tad-config"}} in env_from
    assert {"secretRef": {"name": "tad-api-keys", "optional": True}} in env_from
    assert "command" not in c and "args" not in c, "the image's entry point and command"
    compose_image = load_compose({"GRAFANA_ADMIN_PASSWORD": "x"})["services"]["service"]["image"]
    assert c["image"] == compose_image
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_service_hpa_and_pdb_select_the_deployment(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    dep = objects[("Deployment", "tad")]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = objects[("Service", "tad")]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    pdb = objects[("PodDisruptionBudget", "tad")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects[("HorizontalPodAutoscaler", "tad")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tad"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert pdb["spec"]["minAvailable"] < hpa["minReplicas"]


def test_redis_statefulset_persists_like_compose(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    sts = objects[("StatefulSet", "redis")]
    c = container(sts)
    compose_redis = load_compose({"GRAFANA_ADMIN_PASSWORD": "x"})["services"]["redis"]
    assert c["command"] == compose_redis["command"]
    assert c["image"] == compose_redis["image"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    data_dir = c["command"][c["command"].index("--dir") + 1]
    assert {"name": claim["metadata"]["name"], "mountPath": data_dir} in c["volumeMounts"]
    assert c["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    headless = objects[("Service", "redis")]
    assert headless["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == "redis"
    url = objects[("ConfigMap", "tad-config")]["data"]["TAD_REDIS_URL"]
    assert url == "redis://redis:6379/0"
    policy = objects[("NetworkPolicy", "redis")]["spec"]
    assert (
        policy["podSelector"]["matchLabels"].items()
        <= sts["spec"]["template"]["metadata"]["labels"].items()
    )
    allowed = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    dep_labels = objects[("Deployment", "tad")]["spec"]["template"]["metadata"]["labels"]
    assert allowed.items() <= dep_labels.items()


def test_configmap_is_a_valid_service_configuration(
    objects: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    data = objects[("ConfigMap", "tad-config")]["data"]
    names = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    assert "TAD_API_KEYS" not in data, "keys belong in the Secret"
    assert set(data) - names == {"TAD_SEED_MODEL_DIR"}
    assert names - set(data) == {"TAD_API_KEYS", "TAD_MQTT_PASSWORD"}  # the Secret's
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values are strings"
    env = {**data, "TAD_MODEL_DIR": str(tmp_path)}
    old = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(ENV_PREFIX)}
    try:
        os.environ.update(env)
        settings = load_settings()
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(old)
    assert settings.redis_url == data["TAD_REDIS_URL"] and settings.host == "0.0.0.0"


def test_secret_example_holds_only_api_keys() -> None:
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "tad-api-keys"
    assert set(secret["stringData"]) == {"TAD_API_KEYS"}


def test_the_pod_memory_limit_holds_the_stream_cache_and_a_clustering_job(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Issue 25: the pod was limited to 1 GiB while the defaults allowed a 100,000-stream cache
    (≈ 1–3 GB) and a 4,096 MB clustering job in the same container (deploy/README.md)."""
    config = objects[("ConfigMap", "tad-config")]["data"]
    (container,) = [
        c
        for c in objects[("Deployment", "tad")]["spec"]["template"]["spec"]["containers"]
        if c["name"] == "tad"
    ]
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    limit_mb = float(limit[:-2]) * 1024
    cache_mb = int(config["TAD_STREAM_CACHE_SIZE"]) * 34 / 1024  # 34 KB a served stream
    need_mb = 300 + cache_mb + int(config["TAD_CLUSTERING_MAX_MEMORY_MB"])
    assert limit_mb >= 1.1 * need_mb, (limit, need_mb)


def test_the_worker_example_shares_redis_and_a_models_claim(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """worker.example.yaml: `tad worker` on the trainer image, the service's configuration,
    a ReadWriteMany models claim, the same hardening, and the Redis policy lets it in."""
    docs = {
        (d["kind"], d["metadata"]["name"]): d
        for d in yaml.safe_load_all((K8S / "worker.example.yaml").read_text())
    }
    claim = docs[("PersistentVolumeClaim", "tad-models")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    dep = docs[("Deployment", "tad-worker")]
    pod, c = dep["spec"]["template"]["spec"], container(dep)
    assert c["command"] == ["tad", "worker"]
    assert c["livenessProbe"]["exec"]["command"] == ["tad", "worker", "--check"]
    compose = load_compose({"GRAFANA_ADMIN_PASSWORD": "x"})["services"]
    assert c["image"] == compose["worker"]["image"]
    assert {"configMapRef": {"name": "tad-config"}} in c["envFrom"]
    uid = int(dockerfile_stages()["trainer"].user().split(":")[0])
    assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config = objects[("ConfigMap", "tad-config")]["data"]
    models = volumes[mounts[config["TAD_MODEL_DIR"]]]
    assert models["persistentVolumeClaim"]["claimName"] == "tad-models"
    cap_mb = int(config["TAD_CLUSTERING_MAX_MEMORY_MB"])
    limit = c["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(limit[:-2]) >= cap_mb + 512, "a job fits under the limit"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    policy = objects[("NetworkPolicy", "redis")]["spec"]["ingress"][0]["from"]
    assert any(p["podSelector"]["matchLabels"].items() <= labels.items() for p in policy)
