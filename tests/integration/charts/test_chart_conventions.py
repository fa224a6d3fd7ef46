"""Helm's conventions, from real `helm template`/`helm lint` output: a strict values schema, names
derived from the release, app.kubernetes.io labels on every object and pod, the monitoring objects on
only when asked or where their CRDs are served, and `helm test` hooks that pass restricted Pod
Security on a real apiserver."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rig.controlplane import ControlPlane

from .conftest import CHART, MONITORING_APIS, render

pytestmark = pytest.mark.integration

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
HOOK = "helm.sh/hook"


def template(tools_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools_bin / "helm"), "template", "co", str(CHART), *args], capture_output=True, text=True
    )


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_lint_strict_is_clean_with_the_defaults_and_with_every_option_on(tools_bin: Path):
    for extra in (
        [],
        ["--set", "watchNamespaces={a,b}", "--set", "replicas=3", "--set", "grafanaDashboard.enabled=true"],
    ):
        r = subprocess.run(
            [str(tools_bin / "helm"), "lint", "--strict", str(CHART), *extra], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout, r.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("metrics.port=notaport", "at '/metrics/port': got string, want integer"),
        ("metrics.prot=9090", "at '/metrics': additional properties 'prot' not allowed"),
        ("imag.tag=x", "additional properties 'imag' not allowed"),
        ("trainer.image.tga=x", "at '/trainer/image': additional properties 'tga' not allowed"),
        ("replicas=two", "at '/replicas': got string, want integer"),
        ("leaderElection.enabled=yes", "at '/leaderElection/enabled': got string, want boolean"),
        ("metrics.serviceMonitor.enabled=yes", "at '/metrics/serviceMonitor/enabled': value must be one of"),
        ("metrics.serviceMonitor.interval=30", "at '/metrics/serviceMonitor/interval'"),
        ("watchNamespaces={Team_A}", "at '/watchNamespaces/0'"),
        ("metrics.prometheusRule.warnAtFractionOfThreshold=2", "warnAtFractionOfThreshold"),
    ],
)
def test_a_typo_or_a_wrong_type_is_refused_with_a_schema_message(tools_bin: Path, value: str, message: str):
    r = template(tools_bin, "--set", value)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_every_object_of_the_schema_refuses_unknown_keys():
    """additionalProperties: false wherever the schema declares properties (maps declare none)."""

    def walk(node: dict[str, Any], path: str) -> list[str]:
        loose = []
        if "properties" in node and node.get("additionalProperties") is not False:
            loose.append(path or "/")
        for key, child in (node.get("properties") or {}).items():
            loose += walk(child, f"{path}/{key}")
        if isinstance(node.get("items"), dict):
            loose += walk(node["items"], f"{path}/[]")
        return loose

    assert walk(SCHEMA, "") == []


def test_a_port_of_8081_is_refused_by_name(tools_bin: Path):
    r = template(tools_bin, "--set", "metrics.port=8081")
    assert r.returncode != 0 and "metrics.port 8081 is taken" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("release", "values", "fullname"),
    [
        ("co", [], "co-campaign-operator"),
        ("campaign-operator-prod", [], "campaign-operator-prod"),  # already holds the chart's name
        ("co", ["nameOverride=campaigns"], "co-campaigns"),
        ("co", ["fullnameOverride=ops-campaigns"], "ops-campaigns"),
        ("r" * 53, [], "r" * 53 + "-campaign"),  # cut to 63 characters, then the trailing dash
    ],
)
def test_every_object_is_named_from_the_release(helm, release: str, values: list[str], fullname: str):
    docs = [
        d
        for d in render(helm, "ops", *values, release=release, api_versions=MONITORING_APIS)
        if HOOK not in d["metadata"].get("annotations", {})
    ]
    assert len(fullname) <= 63
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    trainer, dashboard, viewer, editor = (
        f"{fullname[: 62 - len(suffix)].rstrip('-')}-{suffix}"
        for suffix in ("trainer", "dashboard", "viewer", "editor")
    )
    assert max(len(trainer), len(dashboard), len(viewer), len(editor)) <= 63
    assert names == {
        ("ServiceAccount", fullname),
        ("ClusterRole", fullname),
        ("ClusterRoleBinding", fullname),
        ("ClusterRole", f"{fullname}-scan"),
        ("ClusterRoleBinding", f"{fullname}-scan"),
        ("ClusterRole", trainer),
        ("ClusterRole", viewer),
        ("ClusterRole", editor),
        ("Role", f"{fullname}-leader"),
        ("RoleBinding", f"{fullname}-leader"),
        ("Service", fullname),
        ("Deployment", fullname),
        ("ServiceMonitor", fullname),
        ("PrometheusRule", fullname),
        ("ConfigMap", dashboard),
    }
    (deploy,) = by_kind(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--trainer-cluster-role={trainer}" in args
    assert f"--leader-election-id={fullname}" in args
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == fullname
    (leader,) = by_kind(docs, "Role")
    assert leader["rules"][1]["resourceNames"] == [fullname]  # the Lease it may update
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": "ops"}]


def test_namespaced_roles_are_named_from_the_release_too(helm):
    docs = render(helm, "ops", "watchNamespaces={a,b}", release="second")
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in by_kind(docs, "Role")}
    assert roles == {
        ("a", "second-campaign-operator"),
        ("b", "second-campaign-operator"),
        ("ops", "second-campaign-operator-leader"),
    }


LABELS = ("name", "instance", "version", "managed-by", "part-of", "component")


def test_every_object_and_pod_template_carries_the_recommended_labels(helm):
    docs = render(helm, "ops", "podLabels.team=ml", api_versions=MONITORING_APIS)
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for key in LABELS:
            assert labels.get(f"app.kubernetes.io/{key}"), (doc["kind"], doc["metadata"]["name"], key)
        assert (
            labels["app.kubernetes.io/instance"] == "co"
            and labels["app.kubernetes.io/part-of"] == "campaign-operator"
        )
    (deploy,) = by_kind(docs, "Deployment")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    for key in LABELS:
        assert pod_labels.get(f"app.kubernetes.io/{key}"), key
    assert pod_labels["app.kubernetes.io/component"] == "operator" and pod_labels["team"] == "ml"
    # The selector is stable across chart and app versions (a Deployment's selector is immutable).
    assert deploy["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "campaign-operator",
        "app.kubernetes.io/instance": "co",
    }
    # The Service and ServiceMonitor select the operator's pods, never the helm test pod.
    (svc,) = by_kind(docs, "Service")
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (test_pod,) = by_kind(docs, "Pod")
    test_labels = test_pod["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert not svc["spec"]["selector"].items() <= test_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def test_monitoring_objects_are_on_only_when_asked_or_where_their_crds_are_served(helm, tools_bin: Path):
    def kinds(*values: str, apis: tuple[str, ...] = ()) -> set[str]:
        return {d["kind"] for d in render(helm, "ops", *values, api_versions=apis)}

    monitoring = {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    assert not kinds() & monitoring  # auto, and no prometheus-operator
    assert kinds(apis=MONITORING_APIS) >= monitoring  # auto, and it is there
    assert kinds("metrics.serviceMonitor.enabled=auto", apis=MONITORING_APIS[:1]) & monitoring == {
        "ServiceMonitor",
        "ConfigMap",
    }
    off = (
        "metrics.serviceMonitor.enabled=false",
        "metrics.prometheusRule.enabled=false",
        "grafanaDashboard.enabled=false",
    )
    assert not kinds(*off, apis=MONITORING_APIS) & monitoring
    assert "ConfigMap" in kinds("grafanaDashboard.enabled=true")  # a ConfigMap needs no CRD
    for key, kind in (
        ("metrics.serviceMonitor.enabled", "ServiceMonitor"),
        ("metrics.prometheusRule.enabled", "PrometheusRule"),
    ):
        r = template(tools_bin, "--set", f"{key}=true")
        assert r.returncode != 0, r.stdout
        assert f"{key}=true, but this cluster does not serve monitoring.coreos.com/v1/{kind}" in r.stderr, (
            r.stderr
        )
        assert f"--api-versions monitoring.coreos.com/v1/{kind}" in r.stderr


def test_kube_prometheus_stack_discovery_labels_and_dashboard_folder(helm):
    docs = render(
        helm,
        "ops",
        "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
        "metrics.serviceMonitor.scrapeTimeout=5s",
        "metrics.prometheusRule.labels.release=kube-prometheus-stack",
        "grafanaDashboard.folder=Training",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.labels.team=ml",
        api_versions=MONITORING_APIS,
    )
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (rule,) = by_kind(docs, "PrometheusRule")
    (dash,) = by_kind(docs, "ConfigMap")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "5s"}
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert dash["metadata"]["namespace"] == "monitoring"
    assert (
        dash["metadata"]["labels"]["grafana_dashboard"] == "1" and dash["metadata"]["labels"]["team"] == "ml"
    )
    assert dash["metadata"]["annotations"] == {"grafana_folder": "Training"}
    json.loads(dash["data"]["campaign-operator.json"])


def test_trainer_image_and_service_account_are_values(helm):
    docs = render(
        helm, "ops", "trainer.image.repository=reg.example/trainer", "trainer.serviceAccount=team-trainer"
    )
    (deploy,) = by_kind(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--trainer-image=reg.example/trainer:0.1.0" in args  # the tag defaults to appVersion
    assert "--trainer-service-account=team-trainer" in args


def test_helm_test_hooks_rerun_and_pass_restricted_pod_security(control_plane: ControlPlane, helm, namespace):
    docs = [d for d in render(helm, namespace) if d["metadata"].get("annotations", {}).get(HOOK) == "test"]
    assert sorted(d["kind"] for d in docs) == ["ClusterRole", "ClusterRoleBinding", "Pod", "ServiceAccount"]
    for doc in docs:  # reruns replace the last run's objects
        assert "before-hook-creation" in doc["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    (pod,) = by_kind(docs, "Pod")
    (role,) = by_kind(docs, "ClusterRole")
    # Least privilege: get, on the chart's CRDs by name, nothing else.
    crds = sorted(p.name.removesuffix(".yaml") for p in (CHART / "crds").glob("*.yaml"))
    assert role["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get"],
            "resourceNames": crds,
        }
    ]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-c"] and "urllib" in container["args"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CO_SERVICE"] == f"co-campaign-operator.{namespace}.svc" and env["CO_CRDS"] == ",".join(crds)
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    r = control_plane.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", json=pod)
    assert r.status_code == 201, r.text[:600]
    # The check can fail: the same pod as root is refused there.
    pod["spec"]["securityContext"]["runAsNonRoot"] = False
    r = control_plane.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", json=pod)
    assert r.status_code == 403 and "restricted" in r.text
