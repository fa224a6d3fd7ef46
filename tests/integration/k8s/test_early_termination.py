"""phase.earlyTermination on a real apiserver with the operator: three trials run (RayJobs played by
FakeKubeRay), their trainers report epochs into their Trials' status (the real Kubernetes reporter),
and the operator stops the one that is clearly worse at the first rung Stopped/EarlyTerminated,
deleting its RayJob; the phase still succeeds with the stopped trial outside its failures."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_trainer.reporters import ClusterConnection, KubernetesReporter
from rig.controlplane import ControlPlane

from .opkit import FakeKubeRay, Kube, wait_for

pytestmark = pytest.mark.integration

CURVES = {0.1: [0.5, 0.4], 0.2: [0.6, 0.5], 0.3: [2.0]}  # lr -> val_loss per epoch; 0.3 is clearly bad


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": "et"},
        "spec": {
            "template": {"task": "regression", "epochs": 6},
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "p",
                    "sweep": {"grid": {"lr": list(CURVES)}},
                    "earlyTermination": {
                        "algorithm": "asha",
                        "minEpochs": 1,
                        "reductionFactor": 2,
                        "minTrials": 2,
                    },
                }
            ],
        },
    }


def test_the_operator_stops_a_trial_early_terminated(
    kube: Kube, control_plane: ControlPlane, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=15)
    op = operator_factory(namespace)
    try:
        kube.create_campaign(namespace, manifest())

        def running() -> list[dict[str, Any]]:
            trials = kube.trials(namespace, "et")
            ok = len(trials) == 3 and all((t.get("status") or {}).get("state") == "Running" for t in trials)
            return trials if ok else []

        trials = wait_for(running, 60, f"three Running trials\n{op.log_tail()}")
        by_lr = {t["spec"]["parameters"]["lr"]: t["metadata"]["name"] for t in trials}
        conn = ClusterConnection.from_kubeconfig(str(control_plane.kubeconfig_path))
        # The good trials report first (alone at a rung, with fewer than minTrials peers, a trial
        # continues), then the bad one reaches rung 1 behind both.
        for lr, curve in CURVES.items():
            reporter = KubernetesReporter(by_lr[lr], namespace, conn)
            for epoch, value in enumerate(curve, start=1):
                reporter.report_epoch(epoch, {"val_loss": value})
        bad = by_lr[0.3]

        def stopped() -> dict[str, Any] | None:
            status = kube.ok("GET", kube.path(namespace, "campaigntrials", bad)).get("status") or {}
            return status if status.get("state") == "Stopped" else None

        status = wait_for(stopped, 60, f"{bad} Stopped\n{op.log_tail()}")
        assert status["reason"] == "EarlyTerminated", status
        assert "asha" in status["message"] and "rung epoch 1" in status["message"], status
        wait_for(
            lambda: not [j for j in kube.rayjobs(namespace, "et") if j["metadata"]["labels"]["trial"] == bad],
            30,
            f"{bad}'s RayJob deleted\n{op.log_tail()}",
        )
        wait_for(lambda: kube.state(namespace, "et") == "Succeeded", 90, f"the end\n{op.log_tail()}")
    finally:
        fake.close()

    phase = kube.campaign(namespace, "et")["status"]["phases"][0]
    counts = phase["counts"]
    assert (counts["succeeded"], counts["stopped"], counts["failed"], counts["total"]) == (2, 1, 0, 3)
    assert phase["failureRate"] == 0
    states = {t["metadata"]["name"]: t["status"]["state"] for t in kube.trials(namespace, "et")}
    assert states == {by_lr[0.1]: "Succeeded", by_lr[0.2]: "Succeeded", bad: "Stopped"}
