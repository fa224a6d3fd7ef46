"""The chart's user roles on a real apiserver: its viewer and editor ClusterRoles aggregate into
Kubernetes' own view and edit, so a user bound to `view` in a namespace can follow campaigns there
with `kubectl campaign` and cannot change them; `edit` can suspend them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from integration.k8s.opkit import wait_for
from rig.controlplane import ControlPlane

from .conftest import apply_object, render
from .test_trainer_identity import token_kubeconfig

VENV_BIN = Path(sys.executable).parent


def bind(cp: ControlPlane, namespace: str, user: str, role: str) -> None:
    cp.kubectl(
        "create",
        "rolebinding",
        f"{user}-{role}",
        f"--clusterrole={role}",
        f"--serviceaccount={namespace}:{user}",
        "-n",
        namespace,
    )


def can(cp: ControlPlane, namespace: str, user: str, verb: str, resource: str) -> bool:
    who = f"system:serviceaccount:{namespace}:{user}"
    r = cp.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", who, check=False)
    return r.stdout.strip() == "yes"


def test_view_and_edit_include_the_chart_user_roles(
    control_plane: ControlPlane, helm, namespace: str, tmp_path: Path
):
    for doc in render(helm, namespace):
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"].endswith(("-viewer", "-editor")):
            assert apply_object(control_plane, doc, namespace).status_code in (200, 201), doc["metadata"]
    for user, role in (("ana", "view"), ("eve", "edit")):
        control_plane.kubectl("create", "serviceaccount", user, "-n", namespace)
        bind(control_plane, namespace, user, role)
    campaigns, trials = (
        "trainingcampaigns.training.campaign-operator.io",
        "campaigntrials.training.campaign-operator.io",
    )
    wait_for(
        lambda: can(control_plane, namespace, "ana", "watch", trials), 60, "view aggregating the viewer role"
    )
    assert can(control_plane, namespace, "ana", "list", campaigns) and can(
        control_plane, namespace, "ana", "get", "rayjobs.ray.io"
    )
    assert not can(control_plane, namespace, "ana", "patch", campaigns)
    wait_for(
        lambda: can(control_plane, namespace, "eve", "patch", campaigns),
        60,
        "edit aggregating the editor role",
    )
    assert not can(control_plane, namespace, "eve", "create", trials)  # trials are the operator's

    manifest = {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": "followed", "namespace": namespace},
        "spec": {"template": {"task": "regression", "epochs": 1}, "phases": [{"name": "p"}]},
    }
    (tmp_path / "c.json").write_text(json.dumps(manifest))
    control_plane.kubectl("apply", "-f", str(tmp_path / "c.json"))
    viewer = token_kubeconfig(control_plane, namespace, "ana", tmp_path / "ana.kubeconfig")
    plugin = [str(VENV_BIN / "kubectl-campaign")]
    env = control_plane.env(viewer)
    shown = subprocess.run(
        [*plugin, "status", "followed", "-n", namespace], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0 and "campaign followed" in shown.stdout, (shown.stdout, shown.stderr)
    refused = subprocess.run(
        [*plugin, "suspend", "followed", "-n", namespace], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    assert "may not patch trainingcampaigns" in refused.stderr, refused.stderr
    editor = token_kubeconfig(control_plane, namespace, "eve", tmp_path / "eve.kubeconfig")
    done = subprocess.run(
        [*plugin, "suspend", "followed", "-n", namespace],
        capture_output=True,
        text=True,
        env=control_plane.env(editor),
    )
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load(
        control_plane.kubectl("get", "tc", "followed", "-n", namespace, "-o", "yaml").stdout
    )["spec"]
    assert spec["suspend"] is True
