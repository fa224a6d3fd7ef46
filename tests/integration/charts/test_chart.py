"""The Helm chart, rendered by real helm and judged by a real apiserver (RBAC, PSA, CRD schemas)."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.controlplane import ControlPlane

from .conftest import CHART, REPO

pytestmark = pytest.mark.integration


def render(helm, namespace: str, *values: str) -> list[dict[str, Any]]:
    args = ["template", "co", str(CHART), "--namespace", namespace]
    for v in values:
        args += ["--set", v]
    return [d for d in yaml.safe_load_all(helm(*args)) if d]


def test_chart_lints(helm):
    helm("lint", str(CHART), "--strict")


def test_chart_ships_the_generated_crds():
    ours = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert ours == sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    for name in ours:
        assert filecmp.cmp(REPO / "crds" / name, CHART / "crds" / name, shallow=False), (
            f"run `make crds`: {name}"
        )


def test_dashboard_is_valid_grafana_json():
    dash = json.loads((CHART / "dashboards" / "campaign-operator.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    for metric in ("campaign_phase_failure_rate", "campaign_phase_max_failure_rate", "campaign_phase_trials"):
        assert any(metric in e for e in exprs)


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_rendered_manifests_are_accepted_by_the_apiserver(control_plane: ControlPlane, helm, namespace, mode):
    values = [] if mode == "cluster-wide" else [f"watchNamespaces={{{namespace}}}"]
    docs = render(helm, namespace, *values)
    kinds = sorted({d["kind"] for d in docs})
    assert {"Deployment", "ServiceMonitor", "PrometheusRule", "ConfigMap", "ServiceAccount"} <= set(kinds)
    for doc in docs:
        r = _dry_run_apply(control_plane, doc, namespace)
        assert r.status_code in (200, 201), f"{doc['kind']}/{doc['metadata']['name']}: {r.text[:500]}"


def test_operator_pod_passes_restricted_pod_security(control_plane: ControlPlane, helm, namespace):
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    (deploy,) = [d for d in render(helm, namespace) if d["kind"] == "Deployment"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-psa-check", "namespace": namespace},
        "spec": deploy["spec"]["template"]["spec"] | {"serviceAccountName": "default"},
    }
    r = control_plane.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", json=pod)
    assert r.status_code == 201, r.text[:600]
    # The check can fail: a root container is refused in the same namespace.
    pod["spec"]["securityContext"] = {"runAsNonRoot": False}
    r = control_plane.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", json=pod)
    assert r.status_code == 403 and "restricted" in r.text


def test_rbac_is_least_privilege(control_plane: ControlPlane, helm, namespace):
    for doc in render(helm, namespace):
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Role", "RoleBinding"):
            assert _apply(control_plane, doc, namespace).status_code in (200, 201)
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
    sa = f"system:serviceaccount:{namespace}:campaign-operator"

    def can(verb: str, resource: str) -> bool:
        r = control_plane.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", sa, check=False)
        return r.stdout.strip() == "yes"

    assert can("create", "trials.training.campaign-operator.io")
    assert can("patch", "trainingcampaigns.training.campaign-operator.io/status")
    assert can("create", "rayjobs.ray.io")
    assert can("get", "secrets")
    assert not can("list", "secrets")  # tokens are read by name, never enumerated
    assert not can("create", "pods")
    assert not can("delete", "trainingcampaigns.training.campaign-operator.io")
    assert not can("update", "trainingcampaigns.training.campaign-operator.io")  # users own the spec


def _dry_run_apply(cp: ControlPlane, doc: dict[str, Any], namespace: str):
    return _apply(cp, doc, namespace, dry_run=True)


def _apply(cp: ControlPlane, doc: dict[str, Any], namespace: str, dry_run: bool = False):
    """Server-side apply of one object, as `kubectl apply --server-side` would."""
    api = doc["apiVersion"]
    group_path = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    plural = _plural(cp, api, doc["kind"])
    ns = doc.get("metadata", {}).get("namespace") or (None if _cluster_scoped(doc["kind"]) else namespace)
    scope = f"/namespaces/{ns}" if ns else ""
    query = "fieldManager=test&force=true" + ("&dryRun=All" if dry_run else "")
    with cp.session() as s:
        return s.patch(
            f"{cp.server}{group_path}{scope}/{plural}/{doc['metadata']['name']}?{query}",
            data=json.dumps(doc),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )


def _cluster_scoped(kind: str) -> bool:
    return kind in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace")


def _plural(cp: ControlPlane, api: str, kind: str) -> str:
    path = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    for res in cp.request("GET", path).json()["resources"]:
        if res["kind"] == kind and "/" not in res["name"]:
            return str(res["name"])
    raise AssertionError(f"{kind} not served at {path}")


def test_crds_dir_has_only_crds():
    for p in Path(CHART / "crds").glob("*.yaml"):
        assert yaml.safe_load(p.read_text())["kind"] == "CustomResourceDefinition"
