"""The Helm chart, rendered by real helm and judged by a real apiserver (RBAC, PSA, CRD schemas)."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest
import yaml

from rig.controlplane import ControlPlane

from .conftest import CHART, MONITORING_APIS, REPO, apply_object, render

pytestmark = pytest.mark.integration


def test_chart_lints(helm):
    helm("lint", str(CHART), "--strict")


def test_chart_ships_the_generated_crds():
    ours = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert ours == sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    for name in ours:
        assert filecmp.cmp(REPO / "crds" / name, CHART / "crds" / name, shallow=False), (
            f"run `make crds`: {name}"
        )


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_rendered_manifests_are_accepted_by_the_apiserver(control_plane: ControlPlane, helm, namespace, mode):
    values = [] if mode == "cluster-wide" else [f"watchNamespaces={{{namespace}}}"]
    docs = render(helm, namespace, *values, api_versions=MONITORING_APIS)
    kinds = sorted({d["kind"] for d in docs})
    assert {"Deployment", "ServiceMonitor", "PrometheusRule", "ConfigMap", "ServiceAccount", "Pod"} <= set(
        kinds
    )
    for doc in docs:
        r = apply_object(control_plane, doc, namespace, dry_run=True)
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
            assert apply_object(control_plane, doc, namespace).status_code in (200, 201)
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
    sa = f"system:serviceaccount:{namespace}:co-campaign-operator"

    def can(verb: str, resource: str) -> bool:
        r = control_plane.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", sa, check=False)
        return r.stdout.strip() == "yes"

    assert can("create", "campaigntrials.training.campaign-operator.io")
    assert can("patch", "trainingcampaigns.training.campaign-operator.io/status")
    assert can("create", "rayjobs.ray.io")
    assert can("get", "secrets")
    assert not can("list", "secrets")  # tokens are read by name, never enumerated
    assert not can("create", "pods")
    assert not can("delete", "trainingcampaigns.training.campaign-operator.io")
    assert not can("update", "trainingcampaigns.training.campaign-operator.io")  # users own the spec
    assert can("list", "pods") and can("list", "rayclusters.ray.io")  # why a trial's pods wait
    assert not can("delete", "rayclusters.ray.io")  # KubeRay's, not ours
    assert not can("delete", "pods")
    assert can("create", "serviceaccounts") and can("create", "rolebindings.rbac.authorization.k8s.io")
    assert not can("delete", "serviceaccounts") and not can("patch", "rolebindings.rbac.authorization.k8s.io")
    assert can("bind", "clusterroles.rbac.authorization.k8s.io/co-campaign-operator-trainer")
    assert not can("bind", "clusterroles.rbac.authorization.k8s.io/edit")
    assert not can("escalate", "clusterroles.rbac.authorization.k8s.io/co-campaign-operator-trainer")


LOCAL_RIG = (
    "image.repository=localhost/campaign-operator",
    "image.tag=0123abc",
    "image.pullPolicy=Never",
    "trainer.image.repository=localhost/campaign-trainer",
    "trainer.image.tag=0123abc",
    "trainer.image.pullPolicy=Never",
)


def test_images_and_pull_policies_are_settable_for_a_local_rig(helm, namespace):
    (deploy,) = [d for d in render(helm, namespace, *LOCAL_RIG) if d["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "localhost/campaign-operator:0123abc"
    assert container["imagePullPolicy"] == "Never"
    assert "--trainer-image=localhost/campaign-trainer:0123abc" in container["args"]
    assert "--trainer-image-pull-policy=Never" in container["args"]
    assert "--trainer-cluster-role=co-campaign-operator-trainer" in container["args"]
    (default,) = [d for d in render(helm, namespace) if d["kind"] == "Deployment"]
    assert (
        "--trainer-image-pull-policy=IfNotPresent"
        in default["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_values_schema_refuses_a_pull_policy_kubernetes_would_not_know(tools_bin: Path):
    r = subprocess.run(
        [str(tools_bin / "helm"), "template", "co", str(CHART), "--set", "trainer.image.pullPolicy=never"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "trainer/image/pullPolicy" in r.stderr, r.stderr


def test_crds_dir_has_only_crds():
    for p in Path(CHART / "crds").glob("*.yaml"):
        assert yaml.safe_load(p.read_text())["kind"] == "CustomResourceDefinition"
