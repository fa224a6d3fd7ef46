"""The Kubernetes reporter against a real kube-apiserver with the generated Trial CRD: a trial runs,
its status subresource is patched with the least privilege a trainer needs, and what lands in etcd
is what the operator's Trial model reads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator.api import Trial
from campaign_trainer.harness import run_trial
from campaign_trainer.reporters import ClusterConnection, KubernetesReporter
from rig.controlplane import ControlPlane

pytestmark = pytest.mark.integration

TRAINER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: campaign-trainer, namespace: NS}
rules:
- apiGroups: [training.campaign-operator.io]
  resources: [trials/status]
  verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: campaign-trainer, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: campaign-trainer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: trial-runner}
"""


def trial_doc(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"campaign": "nba-deep", "phase": "smoke"},
        },
        "spec": {
            "campaign": "nba-deep",
            "phase": "smoke",
            "task": "regression",
            "parameters": {
                "seed": 7,
                "hidden_dims": [32, 16],
                "output_init_std": 1e-4,
                "dropout": 0.7,
                "weight_decay": 0.5,
            },
            "dataset": {"synthetic": {"samples": 1024, "seed": 0, "options": {"signal": 0.3, "noise": 1.0}}},
            "epochs": 6,
            "batchSize": 128,
            "stopRules": [
                {
                    "metric": "variance_ratio",
                    "comparison": "<",
                    "threshold": 0.1,
                    "afterEpoch": 2,
                    "action": "Stop",
                    "reason": "VarianceCollapse",
                    "message": "predictions collapsed",
                }
            ],
        },
    }


def test_trial_status_written_by_the_trainer(control_plane: ControlPlane, namespace: str) -> None:
    doc = trial_doc("collapse-1", namespace)
    control_plane.kubectl("create", "-f", "-", input=json.dumps(doc))
    control_plane.kubectl("apply", "-f", "-", input=TRAINER_ROLE.replace("NS", namespace))
    runner_kubeconfig: Path = control_plane.make_user_kubeconfig("trial-runner")

    reporter = KubernetesReporter(
        "collapse-1", namespace, ClusterConnection.from_kubeconfig(str(runner_kubeconfig))
    )
    outcome = run_trial(doc, reporter)
    assert (outcome.state, outcome.reason, outcome.epoch) == ("Stopped", "VarianceCollapse", 3)

    stored = json.loads(
        control_plane.kubectl("get", "trial", "collapse-1", "-n", namespace, "-o", "json").stdout
    )
    status = stored["status"]
    # every field survived the CRD's structural schema (unknown fields would have been pruned)
    assert status == outcome.to_status()
    assert status["state"] == "Stopped" and status["reason"] == "VarianceCollapse"
    assert [h["epoch"] for h in status["history"]] == [1, 2, 3]
    assert status["metrics"]["variance_ratio"] < 0.1 and "samples_per_sec" in status["metrics"]
    parsed = Trial.model_validate(stored)  # the operator's model reads it back
    assert parsed.spec == Trial.model_validate(doc).spec  # and the status patch left spec alone
    assert parsed.status.state.value == "Stopped" and parsed.status.epoch == 3
    assert parsed.status.best is not None and parsed.status.start_time is not None


def test_trainer_identity_cannot_touch_spec_or_other_trials(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=TRAINER_ROLE.replace("NS", namespace))
    runner = control_plane.make_user_kubeconfig("trial-runner")
    r = control_plane.kubectl(
        "auth",
        "can-i",
        "patch",
        "trials.training.campaign-operator.io",
        "-n",
        namespace,
        kubeconfig=runner,
        check=False,
    )
    assert r.stdout.strip() == "no"
    r = control_plane.kubectl(
        "auth",
        "can-i",
        "patch",
        "trials.training.campaign-operator.io",
        "--subresource=status",
        "-n",
        namespace,
        kubeconfig=runner,
        check=False,
    )
    assert r.stdout.strip() == "yes"
    assert yaml.safe_load(TRAINER_ROLE.split("---")[0])["rules"][0]["verbs"] == ["get", "patch"]
