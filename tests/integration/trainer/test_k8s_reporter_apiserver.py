"""The Kubernetes reporter against a real kube-apiserver with the generated Trial CRD: a trial runs,
its status subresource is patched with the least privilege a trainer needs, what lands in etcd is
what the operator's Trial model reads back, the operator's lifecycle fields stay the operator's, and
a trainer that may not report stops with a message that says why."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator.api import Objective, Trial
from campaign_trainer.harness import run_trial
from campaign_trainer.outcome import Outcome
from campaign_trainer.reporters import ClusterConnection, KubernetesReporter, ReportFailed
from rig.controlplane import ControlPlane

pytestmark = pytest.mark.integration

TRAINER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: campaign-trainer, namespace: NS}
rules:
- apiGroups: [training.campaign-operator.io]
  resources: [campaigntrials/status]
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


# What the operator writes when it launches attempt 2 (k8s/apply.py `launch`).
LAUNCHED = {
    "state": "Running",
    "attempt": 2,
    "startTime": "2026-01-01T00:00:00Z",
    "executorRef": {"kind": "RayJob", "name": "collapse-1-a2", "attempt": 2},
}


def create_launched_trial(cp: ControlPlane, doc: dict[str, Any]) -> dict[str, Any]:
    """The Trial as the operator leaves it after launching attempt 2; returns its stored status."""
    cp.kubectl("create", "-f", "-", input=json.dumps(doc))
    meta = doc["metadata"]
    status = json.dumps({"status": LAUNCHED})
    cp.kubectl(
        "patch",
        "ctrial",
        meta["name"],
        "-n",
        meta["namespace"],
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    )
    return stored_status(cp, meta["namespace"], meta["name"])


def stored_status(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    stored = json.loads(cp.kubectl("get", "ctrial", name, "-n", namespace, "-o", "json").stdout)
    status: dict[str, Any] = stored.get("status") or {}
    return status


def test_trial_status_written_by_the_trainer(control_plane: ControlPlane, namespace: str) -> None:
    doc = trial_doc("collapse-1", namespace)
    create_launched_trial(control_plane, doc)
    control_plane.kubectl("apply", "-f", "-", input=TRAINER_ROLE.replace("NS", namespace))
    runner_kubeconfig: Path = control_plane.make_user_kubeconfig("trial-runner")

    reporter = KubernetesReporter(
        "collapse-1", namespace, ClusterConnection.from_kubeconfig(str(runner_kubeconfig))
    )
    outcome = run_trial(doc, reporter)
    assert (outcome.state, outcome.reason, outcome.epoch) == ("Stopped", "VarianceCollapse", 3)

    stored = json.loads(
        control_plane.kubectl("get", "ctrial", "collapse-1", "-n", namespace, "-o", "json").stdout
    )
    status = stored["status"]
    # every field survived the CRD's structural schema (unknown fields would have been pruned), and
    # the operator's launch fields are as it wrote them
    assert status == {**LAUNCHED, **outcome.to_status()}
    assert status["state"] == "Stopped" and status["reason"] == "VarianceCollapse"
    assert [h["epoch"] for h in status["history"]] == [1, 2, 3]
    assert status["metrics"]["variance_ratio"] < 0.1 and "samples_per_sec" in status["metrics"]
    parsed = Trial.model_validate(stored)  # the operator's model reads it back
    assert parsed.spec == Trial.model_validate(doc).spec  # and the status patch left spec alone
    assert parsed.status.state.value == "Stopped" and parsed.status.epoch == 3
    assert parsed.status.best is not None and parsed.status.attempt == 2


def test_reports_never_touch_the_operators_lifecycle_fields(
    control_plane: ControlPlane, namespace: str
) -> None:
    doc = trial_doc("collapse-1", namespace)
    create_launched_trial(control_plane, doc)
    control_plane.kubectl("apply", "-f", "-", input=TRAINER_ROLE.replace("NS", namespace))
    conn = ClusterConnection.from_kubeconfig(str(control_plane.make_user_kubeconfig("trial-runner")))
    reporter = KubernetesReporter("collapse-1", namespace, conn, objective=Objective(metric="loss"))

    reporter.preflight()
    for epoch in (1, 2):
        reporter.report_epoch(epoch, {"loss": 1.0 / epoch, "r2": 0.5})
    after_epochs = stored_status(control_plane, namespace, "collapse-1")
    assert {k: after_epochs[k] for k in LAUNCHED} == LAUNCHED
    assert after_epochs["epoch"] == 2 and [h["epoch"] for h in after_epochs["history"]] == [1, 2]

    verdict = Outcome(
        trial="collapse-1",
        state="Succeeded",
        reason="Completed",
        epoch=2,
        metrics={"loss": 0.5},
        history=[{"epoch": e, "metrics": {"loss": 1.0 / e}} for e in (1, 2)],
        completion_time="2026-01-01T00:05:00Z",
    )
    reporter.report_outcome(verdict)
    final = stored_status(control_plane, namespace, "collapse-1")
    assert (final["attempt"], final["startTime"], final["executorRef"]) == (
        2,
        LAUNCHED["startTime"],
        LAUNCHED["executorRef"],
    )
    assert (final["state"], final["reason"], final["completionTime"]) == (
        "Succeeded",
        "Completed",
        "2026-01-01T00:05:00Z",
    )


def service_account_kubeconfig(cp: ControlPlane, namespace: str, account: str, tmp_path: Path) -> Path:
    """A kubeconfig with a real ServiceAccount token (TokenRequest), as a trainer pod has one."""
    cp.kubectl("create", "serviceaccount", account, "-n", namespace)
    token = cp.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "pod",
        "contexts": [{"name": "pod", "context": {"cluster": "rig", "user": account}}],
        "clusters": [
            {"name": "rig", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_path)}}
        ],
        "users": [{"name": account, "user": {"token": token}}],
    }
    path = tmp_path / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def run_trainer(doc: dict[str, Any], kubeconfig: Path, *reporters: str) -> subprocess.CompletedProcess[str]:
    """The trainer as a cluster executor starts it: the trial in CAMPAIGN_TRIAL, nothing on stdin."""
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env |= {"CAMPAIGN_TRIAL": json.dumps(doc), "KUBECONFIG": str(kubeconfig)}
    args = [sys.executable, "-m", "campaign_trainer", "run", "--trial-env", "CAMPAIGN_TRIAL"]
    for r in reporters:
        args += ["--reporter", r]
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )


def test_an_unbound_service_account_stops_the_trainer_before_it_trains(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    doc = trial_doc("collapse-1", namespace)
    launched = create_launched_trial(control_plane, doc)
    kubeconfig = service_account_kubeconfig(control_plane, namespace, "campaign-trainer", tmp_path)
    proc = run_trainer(doc, kubeconfig, "kubernetes")
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"campaign_trainer: trainer may not get campaigntrials/status in namespace {namespace} as"
        f" system:serviceaccount:{namespace}:campaign-trainer (403): bind the campaign-trainer role"
    )
    assert stored_status(control_plane, namespace, "collapse-1") == launched  # nothing written


SERVICE_ACCOUNT_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: campaign-trainer-sa, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: campaign-trainer}
subjects:
- {kind: ServiceAccount, name: campaign-trainer, namespace: NS}
"""

# What EKS/GKE/OIDC kubeconfigs do (aws eks get-token, gke-gcloud-auth-plugin, kubelogin): a command
# prints an ExecCredential with the token. This one reads it from a file and counts its runs.
CREDENTIAL_PLUGIN = """
import json, pathlib, sys
token_file, runs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token_file.read_text().strip()}}))
"""


def test_a_kubeconfig_with_a_credential_plugin_and_an_inline_ca_reports(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """A Ray head outside the cluster reporting through a managed cluster's kubeconfig."""
    doc = trial_doc("collapse-1", namespace)
    create_launched_trial(control_plane, doc)
    control_plane.kubectl("create", "serviceaccount", "campaign-trainer", "-n", namespace)
    roles = TRAINER_ROLE + "---" + SERVICE_ACCOUNT_BINDING
    control_plane.kubectl("apply", "-f", "-", input=roles.replace("NS", namespace))
    token_file, runs = tmp_path / "token", tmp_path / "plugin-runs"
    token_file.write_text(
        control_plane.kubectl("create", "token", "campaign-trainer", "-n", namespace).stdout
    )
    plugin = tmp_path / "credential-plugin.py"
    plugin.write_text(CREDENTIAL_PLUGIN)
    exec_user = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin), str(token_file), str(runs)],
        "interactiveMode": "Never",
    }
    ca_data = base64.b64encode(control_plane.ca_path.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "managed",
        "contexts": [{"name": "managed", "context": {"cluster": "rig", "user": "plugin"}}],
        "clusters": [
            {
                "name": "rig",
                "cluster": {"server": control_plane.server, "certificate-authority-data": ca_data},
            }
        ],
        "users": [{"name": "plugin", "user": {"exec": exec_user}}],
    }
    kubeconfig = tmp_path / "managed.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))

    conn = ClusterConnection.from_kubeconfig(str(kubeconfig))
    reporter = KubernetesReporter("collapse-1", namespace, conn, objective=Objective(metric="loss"))
    reporter.preflight()
    reporter.report_epoch(1, {"loss": 1.0})
    reporter.report_outcome(
        Outcome(trial="collapse-1", state="Succeeded", reason="Completed", epoch=1, metrics={"loss": 1.0})
    )
    final = stored_status(control_plane, namespace, "collapse-1")
    assert (final["state"], final["epoch"], final["attempt"]) == ("Succeeded", 1, 2)
    assert int(runs.read_text()) >= 1  # the token came from the plugin: the kubeconfig holds none

    # The plugin hands out another account's token now (rotation, or a different role): a new
    # reporter runs it again and is refused as that account, with nothing written.
    control_plane.kubectl("create", "serviceaccount", "unbound-trainer", "-n", namespace)
    token_file.write_text(control_plane.kubectl("create", "token", "unbound-trainer", "-n", namespace).stdout)
    before = int(runs.read_text())
    refused = KubernetesReporter("collapse-1", namespace, ClusterConnection.from_kubeconfig(str(kubeconfig)))
    with pytest.raises(ReportFailed) as failure:
        refused.report_outcome(Outcome(trial="collapse-1", state="Failed", reason="Error"))
    assert str(failure.value) == (
        f"trainer may not patch campaigntrials/status in namespace {namespace} as"
        f" system:serviceaccount:{namespace}:unbound-trainer (403): bind the campaign-trainer role"
    )
    assert int(runs.read_text()) > before
    assert stored_status(control_plane, namespace, "collapse-1") == final


READ_ONLY_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: trial-reader, namespace: NS}
rules:
- apiGroups: [training.campaign-operator.io]
  resources: [campaigntrials/status]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: trial-reader, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: trial-reader}
subjects:
- {kind: ServiceAccount, name: campaign-trainer, namespace: NS}
"""


def test_a_refused_status_patch_stops_training_after_the_first_epoch(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    doc = trial_doc("collapse-1", namespace)
    doc["spec"]["stopRules"] = []
    doc["spec"]["epochs"] = 30
    launched = create_launched_trial(control_plane, doc)
    kubeconfig = service_account_kubeconfig(control_plane, namespace, "campaign-trainer", tmp_path)
    control_plane.kubectl("apply", "-f", "-", input=READ_ONLY_ROLE.replace("NS", namespace))
    proc = run_trainer(doc, kubeconfig, "stdout", "kubernetes")
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"campaign_trainer: trainer may not patch campaigntrials/status in namespace {namespace} as"
        f" system:serviceaccount:{namespace}:campaign-trainer (403): bind the campaign-trainer role"
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [line["type"] for line in lines] == ["epoch", "outcome"]  # 1 of 30 epochs, then it stopped
    assert (lines[-1]["status"]["state"], lines[-1]["status"]["reason"]) == ("Failed", "ReportFailed")
    assert stored_status(control_plane, namespace, "collapse-1") == launched  # nothing written


def test_trainer_identity_cannot_touch_spec_or_other_trials(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=TRAINER_ROLE.replace("NS", namespace))
    runner = control_plane.make_user_kubeconfig("trial-runner")
    r = control_plane.kubectl(
        "auth",
        "can-i",
        "patch",
        "campaigntrials.training.campaign-operator.io",
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
        "campaigntrials.training.campaign-operator.io",
        "--subresource=status",
        "-n",
        namespace,
        kubeconfig=runner,
        check=False,
    )
    assert r.stdout.strip() == "yes"
    assert yaml.safe_load(TRAINER_ROLE.split("---")[0])["rules"][0]["verbs"] == ["get", "patch"]
