"""The Kubernetes example in ``deploy/kubernetes/`` (docs/scale-out.md, "Running it").

Every manifest is validated, strictly (unknown fields refused), against Kubernetes' own
OpenAPI schemas for the versions in ``KUBERNETES_VERSIONS``, offline, with the
``kubernetes-validate`` package (kubeconform is not installable here and
``kubectl apply --dry-run=client`` needs an API server). Schemas do not check that the
pieces fit together, so the references between them are checked here too; and the
netguard config in the ConfigMap passes ``netguard check-config`` with the environment the
StatefulSet gives a pod.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from netguard.cluster.config import ClusterConfig
from netguard.daemon.config import DaemonConfig

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
PROMETHEUS = REPO / "config" / "prometheus" / "prometheus-kubernetes.yml"
NETGUARD = Path(sys.executable).parent / "netguard"
# The oldest minor we state support for, and the newest the package ships schemas of.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                found.append((path.name, doc))
    return found


def _one(kind: str) -> dict[str, Any]:
    (doc,) = [d for _, d in _documents() if d["kind"] == kind]
    return doc


def _container(kind: str) -> dict[str, Any]:
    spec = _one(kind)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert isinstance(container, dict)
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def test_the_example_has_every_piece() -> None:
    kinds = sorted(d["kind"] for _, d in _documents())
    assert kinds == ["ConfigMap", "Job", "PodDisruptionBudget", "Secret", "Service",
                     "StatefulSet"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    for name, doc in _documents():
        checked = kubernetes_validate.validate(doc, version, strict=True)
        assert checked == version.rsplit(".", 1)[0], name


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """The check above can fail: a typo (which kubectl would drop silently) is an error."""
    statefulset = copy.deepcopy(_one("StatefulSet"))
    probe = statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_statefulset_service_and_budget_select_the_same_pods() -> None:
    statefulset, service, budget = _one("StatefulSet"), _one("Service"), _one(
        "PodDisruptionBudget")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selector = statefulset["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The Job's pod must not count as a daemon pod (budget, Service, Prometheus).
    job_labels = _one("Job")["spec"]["template"]["metadata"]["labels"]
    assert not budget["spec"]["selector"]["matchLabels"].items() <= job_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # A headless Service, the one the StatefulSet names its pods through.
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in _container("StatefulSet")["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports


def test_the_pod_probes_netguards_endpoints_on_its_metrics_port() -> None:
    container = _container("StatefulSet")
    port_names = {p["name"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    settings = _settings(_pod_env("StatefulSet", "netguard-1"))
    listen_port = int(settings["metrics"]["listen"].rsplit(":", 1)[1])
    assert {p["containerPort"] for p in container["ports"]} == {listen_port}


def test_the_pod_stops_and_rolls_within_netguards_timings() -> None:
    statefulset = _one("StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    settings = _settings(_pod_env("StatefulSet", "netguard-1"))
    shutdown = settings["daemon"].get("shutdown_timeout_seconds",
                                      DaemonConfig().shutdown_timeout_seconds)
    assert pod["terminationGracePeriodSeconds"] > shutdown
    # A replaced pod is available only after the others have seen it join (two
    # heartbeats), before the rolling update stops the next one.
    cluster = ClusterConfig.model_validate(settings["cluster"])
    assert statefulset["spec"]["minReadySeconds"] >= 2 * cluster.heartbeat_seconds


def test_every_secret_and_config_reference_resolves() -> None:
    secret = _one("Secret")
    config_map = _one("ConfigMap")
    for kind in ("StatefulSet", "Job"):
        pod = _one(kind)["spec"]["template"]["spec"]
        for env in _container(kind)["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["name"] == secret["metadata"]["name"], (kind, env["name"])
                assert ref["key"] in secret["stringData"], (kind, env["name"])
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
        # Every ${VAR} the config refers to is given to the container.
        wanted = set(_ENV_REF.findall(config_map["data"]["netguard.yaml"]))
        assert wanted <= set(_env(_container(kind))), (kind, wanted)
    # The pod's name, not a constant: one instance id and MQTT client id per pod.
    pod_name = _env(_container("StatefulSet"))["POD_NAME"]
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def _pod_env(kind: str, pod_name: str) -> dict[str, str]:
    """The environment a pod of ``kind`` gets: its own name and the Secret's values."""
    secret = _one("Secret")["stringData"]
    env: dict[str, str] = {}
    for name, entry in _env(_container(kind)).items():
        source = entry.get("valueFrom", {})
        if "value" in entry:
            env[name] = entry["value"]
        elif "secretKeyRef" in source:
            env[name] = secret[source["secretKeyRef"]["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[name] = pod_name
    return env


def _settings(env: dict[str, str]) -> dict[str, Any]:
    text = _one("ConfigMap")["data"]["netguard.yaml"]
    data = yaml.safe_load(_ENV_REF.sub(lambda m: env[m.group(1)], text))
    assert isinstance(data, dict)
    return data


def test_the_configmaps_config_passes_check_config_in_a_pod(tmp_path: Path) -> None:
    config = tmp_path / "netguard.yaml"
    config.write_text(_one("ConfigMap")["data"]["netguard.yaml"])
    pod_env = _pod_env("StatefulSet", "netguard-2")
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, **pod_env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "store: postgresql" in result.stdout
    assert "cluster: instance netguard-2" in result.stdout
    assert pod_env["NETGUARD_DB_PASSWORD"] not in result.stdout + result.stderr
    settings = _settings(pod_env)
    assert settings["cluster"]["enabled"] is True
    mqtt = settings["iot"]["mqtt"]
    assert mqtt["client_id"] == settings["cluster"]["instance_id"] == "netguard-2"
    assert mqtt["shared_group"]
    # The journal is on the pod's own volume, which outlives the pod.
    mounts = {m["name"]: m["mountPath"] for m in _container("StatefulSet")["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in _one("StatefulSet")["spec"]["volumeClaimTemplates"]}
    assert settings["daemon"]["fault_journal"].startswith(mounts["state"] + "/")
    assert "state" in claims


def test_the_job_runs_the_migration_with_the_same_config(tmp_path: Path) -> None:
    container = _container("Job")
    assert [*container["command"], *container["args"]][:3] == ["netguard", "db", "upgrade"]
    config = tmp_path / "netguard.yaml"
    config.write_text(_one("ConfigMap")["data"]["netguard.yaml"])
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, **_pod_env("Job", "netguard-db-upgrade-x1")})
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_keeps_the_daemon_pods_and_only_them() -> None:
    """The keep rule of prometheus-kubernetes.yml, applied to the manifests' pod labels."""
    (job,) = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    (keep,) = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    prefix = "__meta_kubernetes_pod_label_"

    def kept(labels: dict[str, str], port_name: str) -> bool:
        meta = {prefix + re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in labels.items()}
        meta["__meta_kubernetes_pod_container_port_name"] = port_name
        value = ";".join(meta.get(s, "") for s in keep["source_labels"])
        return re.fullmatch(keep["regex"], value) is not None

    daemon = _one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    (port,) = _container("StatefulSet")["ports"]
    assert kept(daemon, port["name"])
    assert not kept(_one("Job")["spec"]["template"]["metadata"]["labels"], port["name"])
    assert not kept(daemon, "other")
