"""The test rig's control plane is real: versions, CRD schema validation, RBAC, garbage collection."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from rig.controlplane import ControlPlane, versions_from_stamp

pytestmark = pytest.mark.integration

RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def rayjob(name: str, **spec: Any) -> dict[str, Any]:
    assert len(name) <= 47, "KubeRay derives object names from the RayJob name; keep it <= 47 chars"
    base: dict[str, Any] = {
        "entrypoint": "python -c 'print(42)'",
        "shutdownAfterJobFinishes": True,
        "rayClusterSpec": {
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "rayproject/ray:2.58.0",
                                "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
                            }
                        ]
                    }
                },
            }
        },
    }
    base.update(spec)
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name}, "spec": base}


# ------------------------------------------------------------------------------------------ version


def test_apiserver_answers_with_the_stamped_version(control_plane: ControlPlane) -> None:
    assert control_plane.binaries is not None
    version = control_plane.server_version()
    git_version = version["gitVersion"]
    assert re.fullmatch(r"v1\.\d+\.\d+", git_version), f"unstamped or odd version: {version}"
    assert version["major"] == "1"
    assert git_version.startswith(f"v1.{version['minor']}.")

    binary_says = subprocess.run(
        [str(control_plane.binaries.kube_apiserver), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert binary_says == f"Kubernetes {git_version}"

    stamp = versions_from_stamp(control_plane.binaries.bin_dir)
    if stamp:  # built by hack/build-control-plane.sh (not KUBEBUILDER_ASSETS)
        assert stamp["k8s"] == git_version

    client = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert client["serverVersion"]["gitVersion"] == git_version
    if stamp:
        assert client["clientVersion"]["gitVersion"] == git_version


def test_readyz_and_admin_is_system_masters(control_plane: ControlPlane) -> None:
    r = control_plane.request("GET", "/readyz?verbose")
    assert r.status_code == 200, r.text
    assert "[+]etcd ok" in r.text
    review = json.loads(control_plane.kubectl("auth", "whoami", "-o", "json").stdout)
    user = review["status"]["userInfo"]
    assert user["username"] == "admin"
    assert "system:masters" in user["groups"]


# ------------------------------------------------------------------------------------------ CRDs


def test_shared_crds_are_established(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("get", "customresourcedefinitions", "-o", "json").stdout
    crds = {c["metadata"]["name"]: c for c in json.loads(out)["items"]}
    for name in (
        "rayjobs.ray.io",
        "rayclusters.ray.io",
        "servicemonitors.monitoring.coreos.com",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ):
        assert name in crds, f"{name} not installed; have {sorted(crds)}"
        conditions = {c["type"]: c["status"] for c in crds[name]["status"]["conditions"]}
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NamesAccepted") == "True", (name, conditions)


def test_valid_rayjob_is_accepted_and_defaulted(control_plane: ControlPlane, namespace: str) -> None:
    name = "campaign-sweep-a-trial-0007-attempt-1"
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(rayjob(name)))
    got = json.loads(control_plane.kubectl("get", "rayjob", name, "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["entrypoint"] == "python -c 'print(42)'"
    assert got["spec"]["shutdownAfterJobFinishes"] is True
    # Defaults from the structural schema are applied by the apiserver, not by any client.
    assert got["spec"]["submissionMode"] == "K8sJobMode"
    assert got["spec"]["backoffLimit"] == 0


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        pytest.param(
            {"shutdownAfterJobFinishes": "yes"},
            "spec.shutdownAfterJobFinishes",
            "must be of type boolean",
            id="wrong-type",
        ),
        pytest.param(
            {
                "deletionStrategy": {
                    "onSuccess": {"policy": "Bogus"},
                    "onFailure": {"policy": "DeleteCluster"},
                }
            },
            "spec.deletionStrategy.onSuccess.policy",
            'Unsupported value: "Bogus"',
            id="unknown-enum",
        ),
        pytest.param(
            {"managedBy": "someone-else"},
            "spec.managedBy",
            "the managedBy field value must be either",
            id="cel-rule",
        ),
        pytest.param(
            {"rayClusterSpec": {"rayVersion": "2.58.0"}},
            "spec.rayClusterSpec.headGroupSpec",
            "Required value",
            id="missing-required",
        ),
    ],
)
def test_invalid_rayjob_is_rejected_naming_the_field(
    control_plane: ControlPlane, namespace: str, spec: dict[str, Any], field: str, message: str
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    r = control_plane.request("POST", RAYJOBS.format(ns=namespace), json=rayjob(name, **spec))
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    assert field in status["message"], status["message"]
    assert message in status["message"], status["message"]
    assert field in [c.get("field") for c in status["details"]["causes"]], status["details"]
    assert control_plane.request("GET", RAYJOBS.format(ns=namespace) + f"/{name}").status_code == 404


# ------------------------------------------------------------------------------------------ RBAC


def test_rbac_is_enforced_for_rayjobs(control_plane: ControlPlane, namespace: str) -> None:
    user = f"alice-{uuid.uuid4().hex[:6]}"
    kc = control_plane.make_user_kubeconfig(user, groups=["campaign-testers"])
    url = RAYJOBS.format(ns=namespace)

    denied = control_plane.request("GET", url, kubeconfig=kc)
    assert denied.status_code == 403, denied.text
    assert denied.json()["reason"] == "Forbidden"
    assert f'User "{user}" cannot list resource "rayjobs"' in denied.json()["message"]

    control_plane.kubectl(
        "create",
        "role",
        "rayjob-reader",
        "-n",
        namespace,
        "--verb=get,list,watch",
        "--resource=rayjobs.ray.io",
    )
    control_plane.kubectl(
        "create", "rolebinding", "rayjob-reader", "-n", namespace, "--role=rayjob-reader", f"--user={user}"
    )
    # The RBAC authorizer reads bindings through an informer: allow it a moment to see them.
    wait_for(
        lambda: control_plane.request("GET", url, kubeconfig=kc).status_code == 200,
        timeout=15,
        what="the RoleBinding to take effect",
    )
    listed = control_plane.request("GET", url, kubeconfig=kc).json()
    assert listed["kind"] == "RayJobList"

    # Only what was granted, only where it was granted.
    create = control_plane.request("POST", url, json=rayjob("not-allowed"), kubeconfig=kc)
    assert create.status_code == 403, create.text
    other_ns = control_plane.request("GET", RAYJOBS.format(ns="default"), kubeconfig=kc)
    assert other_ns.status_code == 403, other_ns.text
    can_i = control_plane.kubectl(
        "auth", "can-i", "create", "rayjobs.ray.io", "-n", namespace, kubeconfig=kc, check=False
    )
    assert can_i.stdout.strip() == "no"


# ------------------------------------------------------------------------------------------ GC


def test_garbage_collector_deletes_owned_objects(control_plane: ControlPlane, namespace: str) -> None:
    assert control_plane.binaries is not None
    if control_plane.binaries.kube_controller_manager is None:
        pytest.skip(
            f"KUBEBUILDER_ASSETS={control_plane.binaries.bin_dir} has no kube-controller-manager "
            "(envtest ships none); unset it to use hack/build-control-plane.sh's binaries"
        )
    kcm_log = control_plane.log_path("kube-controller-manager")
    assert control_plane.controller_manager_running, f"kube-controller-manager is not running; see {kcm_log}"
    cms = f"/api/v1/namespaces/{namespace}/configmaps"

    def configmap(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if owner:
            meta["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                }
            ]
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}

    owner = control_plane.request("POST", cms, json=configmap("owner"))
    assert owner.status_code == 201, owner.text
    owned = control_plane.request("POST", cms, json=configmap("owned", owner.json()))
    assert owned.status_code == 201, owned.text
    bystander = control_plane.request("POST", cms, json=configmap("bystander"))
    assert bystander.status_code == 201, bystander.text

    # Background propagation: the apiserver deletes the owner at once; only the GC removes "owned".
    deleted = control_plane.request("DELETE", f"{cms}/owner", json={"propagationPolicy": "Background"})
    assert deleted.status_code == 200, deleted.text
    wait_for(
        lambda: control_plane.request("GET", f"{cms}/owned").status_code == 404,
        timeout=60,
        what="the garbage collector to delete the owned ConfigMap",
    )
    assert control_plane.request("GET", f"{cms}/bystander").status_code == 200
