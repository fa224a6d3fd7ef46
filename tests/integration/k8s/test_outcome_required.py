"""A job that succeeded is not a trial that succeeded: only the trainer's outcome in the Trial's
status says that. RayJob status is written the way KubeRay writes it (the test plays KubeRay, as in
test_rayjob_lifecycle), the real operator watches, and the trainer's verdict is written by the
trainer's own Kubernetes reporter."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import TrialState
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import KubeRayExecutor
from campaign_operator.k8s.apply import Applier, TrialBook
from campaign_operator.kube.client import connected
from campaign_operator.lifecycle.outcomes import outcome_not_reported
from campaign_trainer.outcome import Outcome, now_rfc3339
from campaign_trainer.reporters import ClusterConnection, KubernetesReporter
from rig.controlplane import ControlPlane

from .opkit import Kube, kuberay_status, wait_for

pytestmark = pytest.mark.integration


def manifest(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "p",
                    "sweep": {"trials": [{"case": "reported"}, {"case": "silent"}]},
                    "failurePolicy": {"maxFailureRate": 0.5, "retries": 0},
                }
            ],
        },
    }


def trainer_reports(kubeconfig: Path, namespace: str, trial: str) -> Outcome:
    """The trainer's last act before its job ends: its verdict, through its own reporter."""
    verdict = Outcome(
        trial=trial,
        state="Succeeded",
        reason="Completed",
        message="trained 1 of 1 epochs",
        epoch=1,
        metrics={"val_loss": 0.25},
        history=[{"epoch": 1, "metrics": {"val_loss": 0.25}}],
        completion_time=now_rfc3339(),
    )
    KubernetesReporter(trial, namespace, ClusterConnection.from_kubeconfig(str(kubeconfig))).report_outcome(
        verdict
    )
    return verdict


def test_a_job_that_succeeded_without_the_trainers_outcome_fails_the_attempt(
    kube: Kube, control_plane: ControlPlane, namespace: str, operator_factory: Any
) -> None:
    op = operator_factory(namespace)
    kube.create_campaign(namespace, manifest("silent"))
    jobs = wait_for(
        lambda: len(kube.rayjobs(namespace, "silent")) == 2 and kube.rayjobs(namespace, "silent"),
        60,
        "2 RayJobs",
    )
    wait_for(
        lambda: all(t.get("status", {}).get("state") == "Running" for t in kube.trials(namespace, "silent")),
        30,
        "both trials Running",
    )
    trials = {
        t["spec"]["parameters"]["case"]: t["metadata"]["name"] for t in kube.trials(namespace, "silent")
    }
    job_of = {j["metadata"]["labels"]["trial"]: j["metadata"]["name"] for j in jobs}
    for job in job_of.values():
        for step in ("Initializing", "Running"):
            assert kube.patch_rayjob_status(namespace, job, kuberay_status(step, job)).status_code == 200
    trainer_reports(control_plane.kubeconfig_path, namespace, trials["reported"])
    time.sleep(0.3)
    for case in ("reported", "silent"):
        job = job_of[trials[case]]
        code = kube.patch_rayjob_status(namespace, job, kuberay_status("Succeeded", job)).status_code
        # The reported trial's job may already be gone: the operator deletes jobs of finished attempts.
        assert code == 200 or (case == "reported" and code == 404), code

    wait_for(
        lambda: kube.state(namespace, "silent") in ("Succeeded", "Failed"), 60, f"the end\n{op.log_tail()}"
    )
    by_case = {t["spec"]["parameters"]["case"]: t["status"] for t in kube.trials(namespace, "silent")}
    reported, silent = by_case["reported"], by_case["silent"]
    assert (reported["state"], reported["reason"], reported["metrics"]) == (
        "Succeeded",
        "Completed",
        {"val_loss": 0.25},
    )
    assert (silent["state"], silent["reason"]) == ("Failed", "OutcomeNotReported")
    assert silent["message"].startswith(
        f"RayJob {job_of[trials['silent']]} succeeded but the trainer never reported"
    )
    assert "ServiceAccount" in silent["message"] and silent["attempt"] == 1 and "completionTime" in silent
    # 1 of 2 failed is within 50%: the silent one counts as the failure it is, not as a success.
    counts = kube.campaign(namespace, "silent")["status"]["phases"][0]["counts"]
    assert (counts["succeeded"], counts["failed"]) == (1, 1)


def test_a_stale_view_never_overwrites_the_trainers_verdict(
    kube: Kube, control_plane: ControlPlane, namespace: str
) -> None:
    """The operator lists Trials, then asks KubeRay: the trainer may report in between. Recording
    OutcomeNotReported is a JSON patch guarded by a `test` of the state and attempt it saw, so the
    apiserver re-checks the Trial atomically and the trainer's verdict stands."""
    campaign = kube.create_campaign(namespace, manifest("stale"))
    trial = {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "Trial",
        "metadata": {
            "name": "stale-p-0",
            "namespace": namespace,
            "labels": {"campaign": "stale", "phase": "p"},
        },
        "spec": {"campaign": "stale", "phase": "p", "task": "regression", "epochs": 1},
    }
    kube.ok("POST", kube.path(namespace, "campaigntrials"), trial)
    launched = {"state": "Running", "attempt": 1, "startTime": now_rfc3339()}
    kube.ok(
        "PATCH",
        kube.path(namespace, "campaigntrials", "stale-p-0") + "/status",
        {"status": launched},
        "application/merge-patch+json",
    )

    async def record_on_a_stale_view() -> Any:
        async with connected(str(control_plane.kubeconfig_path)) as client:
            book = TrialBook()
            seen = book.put(kube.ok("GET", kube.path(namespace, "campaigntrials", "stale-p-0")))  # Running
            verdict = trainer_reports(control_plane.kubeconfig_path, namespace, "stale-p-0")  # meanwhile
            model = TrainingCampaign.model_validate(campaign)
            executor = KubeRayExecutor(client, model, TrainerSettings())
            applier = Applier(client, model, book, executor, lambda: datetime.now(UTC))
            recorded = await applier.record_outcome(seen, outcome_not_reported("RayJob stale-p-0-a1"))
            return seen, verdict, recorded, applier.conflicts

    seen, verdict, recorded, conflicts = asyncio.run(record_on_a_stale_view())
    assert seen.status.state == TrialState.RUNNING
    assert recorded is None and conflicts == 1
    status = kube.ok("GET", kube.path(namespace, "campaigntrials", "stale-p-0"))["status"]
    assert (status["state"], status["reason"], status["message"]) == (
        verdict.state,
        verdict.reason,
        verdict.message,
    )
