"""RayJob lifecycle -> trial outcomes, with RayJob status written the way KubeRay writes it.

No KubeRay controller runs here: the test plays it, patching each RayJob's status subresource through
the real apiserver, while the real operator (a separate process) watches and reacts. A successful
trial's verdict comes from its trainer, as on a cluster: the test writes it into the Trial's status.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .opkit import RAY_PATH, Kube, condition, kuberay_status, wait_for

pytestmark = pytest.mark.integration

TRAINER_SUCCEEDED = "TrainerSucceeded"  # the trainer reports its verdict before KubeRay sees the job end
CASES = ["ok", "app-failed", "deadline", "submission-failed", "preempted-then-ok"]
SCRIPTS: dict[str, list[str]] = {
    "ok": ["Initializing", "Running", TRAINER_SUCCEEDED],
    "app-failed": ["Initializing", "Running", "AppFailed"],
    "deadline": ["Initializing", "Running", "DeadlineExceeded"],
    "submission-failed": ["Initializing", "SubmissionFailed"],
    "preempted-then-ok": ["Initializing", "Running", "Suspended"],
}
EXPECTED = {
    "ok": ("Succeeded", "Completed"),
    "app-failed": ("Failed", "AppFailed"),
    "deadline": ("Failed", "DeadlineExceeded"),
    "submission-failed": ("Failed", "SubmissionFailed"),
    "preempted-then-ok": ("Succeeded", "Completed"),
}


def campaign(name: str, cases: list[str], max_failure_rate: float, **phase: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "p",
                    "sweep": {"trials": [{"case": c} for c in cases]},
                    "failurePolicy": {"maxFailureRate": max_failure_rate, "retries": 0},
                    **phase,
                }
            ],
        },
    }


def case_of(kube: Kube, ns: str, job: dict[str, Any]) -> str:
    trial = job["metadata"]["labels"]["trial"]
    return str(kube.ok("GET", kube.path(ns, "campaigntrials", trial))["spec"]["parameters"]["case"])


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def trainer_reports_success(kube: Kube, ns: str, job: str) -> None:
    """What the trainer writes into its Trial's status when training finished (then its job ends)."""
    trial = kube.ok("GET", f"{RAY_PATH.format(ns=ns)}/{job}")["metadata"]["labels"]["trial"]
    verdict = {
        "state": "Succeeded",
        "reason": "Completed",
        "message": "trained 1 epoch",
        "completionTime": utc_now(),
    }
    kube.ok(
        "PATCH",
        kube.path(ns, "campaigntrials", trial) + "/status",
        {"status": verdict},
        "application/merge-patch+json",
    )


def trial_by_case(kube: Kube, ns: str, name: str) -> dict[str, dict[str, Any]]:
    return {t["spec"]["parameters"]["case"]: t for t in kube.trials(ns, name)}


def test_rayjob_statuses_become_trial_outcomes(kube: Kube, namespace: str, operator_factory: Any) -> None:
    op = operator_factory(namespace)
    # 3 of 5 failed is exactly 60%: at the threshold, not over it, so the phase still succeeds.
    kube.create_campaign(namespace, campaign("life", CASES, 0.6))
    jobs = wait_for(
        lambda: len(kube.rayjobs(namespace, "life")) == 5 and kube.rayjobs(namespace, "life"), 60, "5 RayJobs"
    )
    by_case = {case_of(kube, namespace, j): j["metadata"]["name"] for j in jobs}
    assert sorted(by_case) == sorted(CASES)
    wait_for(
        lambda: all(t.get("status", {}).get("state") == "Running" for t in kube.trials(namespace, "life")),
        30,
        "all trials Running",
    )
    for step in range(3):
        for case, job in by_case.items():
            script = SCRIPTS[case]
            if step < len(script) and script[step] == TRAINER_SUCCEEDED:
                trainer_reports_success(kube, namespace, job)
            elif step < len(script):
                if script[step] == "Suspended":  # Kueue suspends the spec first, KubeRay then reports it
                    kube.ok(
                        "PATCH",
                        f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs/{job}",
                        {"spec": {"suspend": True}},
                        "application/merge-patch+json",
                    )
                r = kube.patch_rayjob_status(namespace, job, kuberay_status(script[step], job))
                assert r.status_code == 200, r.text
        time.sleep(0.3)

    # Preempted by Kueue: not a failure, the trial keeps running (waiting for re-admission).
    def preempted() -> bool:
        t = trial_by_case(kube, namespace, "life")["preempted-then-ok"]["status"]
        return t["state"] == "Running" and t.get("reason") == "Suspended"

    wait_for(preempted, 30, "the preempted trial to show Suspended")
    assert kube.state(namespace, "life") == "Running"
    job = by_case["preempted-then-ok"]
    kube.ok(
        "PATCH",
        f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs/{job}",
        {"spec": {"suspend": False}},
        "application/merge-patch+json",
    )
    for step in ("Initializing", "Running"):
        assert kube.patch_rayjob_status(namespace, job, kuberay_status(step, job)).status_code == 200
        time.sleep(0.2)
    trainer_reports_success(kube, namespace, job)

    wait_for(lambda: kube.state(namespace, "life") == "Succeeded", 60, f"campaign Succeeded\n{op.log_tail()}")
    trials = trial_by_case(kube, namespace, "life")
    got = {case: (t["status"]["state"], t["status"].get("reason")) for case, t in trials.items()}
    assert got == EXPECTED
    assert all(
        t["status"]["attempt"] == 1 and t["status"]["executorRef"]["kind"] == "RayJob"
        for t in trials.values()
    )
    assert "activeDeadlineSeconds" in trials["deadline"]["status"]["message"]

    status = kube.campaign(namespace, "life")["status"]
    phase = status["phases"][0]
    assert phase["counts"] == {
        "total": 5,
        "pending": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 3,
        "stopped": 0,
        "skipped": 0,
    }
    assert phase["failureRate"] == pytest.approx(0.6)
    assert condition(kube.campaign(namespace, "life"), "Succeeded")["status"] == "True"
    # Finished RayJobs are deleted by the operator (KubeRay's TTL only removes the Ray cluster).
    wait_for(lambda: kube.rayjobs(namespace, "life") == [], 30, "finished RayJobs deleted")
    reasons = {e["reason"] for e in kube.events(namespace, "life")}
    assert {"TrialsCreated", "PhaseStarted", "PhaseSucceeded", "CampaignSucceeded"} <= reasons

    text = op.metrics()
    series = f'campaign_phase_trials{{campaign="life",namespace="{namespace}",phase="p",state="Failed"}} 3.0'
    assert series in text, text[-3000:]
    assert f'campaign_phase_failure_rate{{campaign="life",namespace="{namespace}",phase="p"}} 0.6' in text


def test_crossing_the_threshold_fails_the_phase_and_stops_its_running_jobs(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    operator_factory(namespace)
    cases = ["a", "b", "c", "d", "e"]
    kube.create_campaign(namespace, campaign("thr", cases, 0.2))
    jobs = wait_for(
        lambda: len(kube.rayjobs(namespace, "thr")) == 5 and kube.rayjobs(namespace, "thr"), 60, "RayJobs"
    )
    by_case = {case_of(kube, namespace, j): j["metadata"]["name"] for j in jobs}
    wait_for(
        lambda: all(t.get("status", {}).get("state") == "Running" for t in kube.trials(namespace, "thr")),
        30,
        "Running",
    )
    for case in ("a", "b"):  # 2 of 5 = 40% > 20%: fail-fast
        kube.patch_rayjob_status(namespace, by_case[case], kuberay_status("AppFailed", by_case[case]))
    wait_for(lambda: kube.state(namespace, "thr") == "Failed", 60, "campaign Failed")
    status = kube.campaign(namespace, "thr")["status"]
    assert status["reason"] == "FailureThresholdExceeded"
    assert "phase p" in status["message"] and "40.0%" in status["message"] and "20.0%" in status["message"]
    states = {
        c: (t["status"]["state"], t["status"].get("reason"))
        for c, t in trial_by_case(kube, namespace, "thr").items()
    }
    assert states == {
        "a": ("Failed", "AppFailed"),
        "b": ("Failed", "AppFailed"),
        "c": ("Stopped", "Cancelled"),
        "d": ("Stopped", "Cancelled"),
        "e": ("Stopped", "Cancelled"),
    }
    wait_for(lambda: kube.rayjobs(namespace, "thr") == [], 30, "every RayJob deleted (stopped)")
    assert condition(kube.campaign(namespace, "thr"), "Failed")["reason"] == "FailureThresholdExceeded"


def test_suspend_pauses_launches_and_delete_stops_running_jobs(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    operator_factory(namespace)
    manifest = campaign("sus", ["a", "b", "c"], 0.0, maxParallelTrials=2)
    manifest["spec"]["suspend"] = True
    kube.create_campaign(namespace, manifest)
    wait_for(lambda: kube.state(namespace, "sus") == "Suspended", 30, "Suspended")
    assert len(kube.trials(namespace, "sus")) == 3
    time.sleep(2)
    assert kube.rayjobs(namespace, "sus") == [], "a suspended campaign launched a job"
    assert condition(kube.campaign(namespace, "sus"), "Suspended")["status"] == "True"

    kube.ok(
        "PATCH",
        kube.path(namespace, "trainingcampaigns", "sus"),
        {"spec": {"suspend": False}},
        "application/merge-patch+json",
    )
    wait_for(lambda: len(kube.rayjobs(namespace, "sus")) == 2, 30, "2 RayJobs (maxParallelTrials)")
    time.sleep(1)
    assert len(kube.rayjobs(namespace, "sus")) == 2

    kube.ok("DELETE", kube.path(namespace, "trainingcampaigns", "sus"))
    # The finalizer stops (deletes) the running jobs before the campaign may go.
    wait_for(
        lambda: kube.call("GET", kube.path(namespace, "trainingcampaigns", "sus")).status_code == 404,
        30,
        "campaign gone",
    )
    wait_for(lambda: kube.rayjobs(namespace, "sus") == [], 30, "RayJobs of the deleted campaign stopped")


SCHEDULER_SAYS = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available"
REFUSAL = 'FailedCreateHeadPod: pods is forbidden: serviceaccount "team-a" not found'


def unschedulable_head(kube: Kube, ns: str, job: dict[str, Any]) -> None:
    """Plays KubeRay and the scheduler: the job's head pod, Pending for want of a GPU."""
    template = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    name = f"{job['metadata']['name']}-head-x1"
    labels = {
        **template["metadata"]["labels"],
        "ray.io/cluster": f"{job['metadata']['name']}-raycluster-abcde",
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": template["spec"],
    }
    kube.ok("POST", f"/api/v1/namespaces/{ns}/pods", pod)
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": SCHEDULER_SAYS,
        "lastTransitionTime": utc_now(),
    }
    kube.ok(
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/{name}/status",
        {"status": {"phase": "Pending", "conditions": [scheduled]}},
        "application/merge-patch+json",
    )


def refused_head(kube: Kube, ns: str, job: dict[str, Any]) -> None:
    """Plays KubeRay when the apiserver refuses its head pod: the RayCluster (it copies the RayJob's
    labels) with the ReplicaFailure condition KubeRay 1.4/1.5 set."""
    name = job["metadata"]["name"]
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": f"{name}-raycluster-abcde",
            "namespace": ns,
            "labels": {**job["metadata"]["labels"], "ray.io/originated-from-cr-name": name},
        },
        "spec": job["spec"]["rayClusterSpec"],
    }
    path = f"/apis/ray.io/v1/namespaces/{ns}/rayclusters"
    kube.ok("POST", path, cluster)
    failure = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreateHeadPod",
        "message": REFUSAL,
        "lastTransitionTime": utc_now(),
    }
    kube.ok(
        "PATCH",
        f"{path}/{cluster['metadata']['name']}/status",
        {"status": {"conditions": [failure]}},
        "application/merge-patch+json",
    )


def test_pods_that_never_run_show_why_then_fail_at_the_pre_running_deadline(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    operator_factory(namespace)
    manifest = campaign("pre", ["stuck", "refused", "runs"], 1.0)
    manifest["spec"]["executor"]["preRunningDeadlineSeconds"] = 15
    kube.create_campaign(namespace, manifest)
    jobs = wait_for(
        lambda: len(kube.rayjobs(namespace, "pre")) == 3 and kube.rayjobs(namespace, "pre"), 60, "RayJobs"
    )
    by_case = {case_of(kube, namespace, j): j for j in jobs}
    assert "preRunningDeadlineSeconds" not in by_case["stuck"]["spec"]  # KubeRay 1.5 would drop it
    wait_for(
        lambda: all(t.get("status", {}).get("state") == "Running" for t in kube.trials(namespace, "pre")),
        30,
        "the trials Running",
    )
    stuck, refused, runs = (by_case[c]["metadata"]["name"] for c in ("stuck", "refused", "runs"))
    unschedulable_head(kube, namespace, by_case["stuck"])
    refused_head(kube, namespace, by_case["refused"])
    for job in (stuck, refused):
        assert (
            kube.patch_rayjob_status(namespace, job, kuberay_status("Initializing", job)).status_code == 200
        )
    for step in ("Initializing", "Running"):
        assert kube.patch_rayjob_status(namespace, runs, kuberay_status(step, runs)).status_code == 200
    started = time.monotonic()

    # While they wait, the trials say why: Running, with the scheduler's or KubeRay's words.
    def showing(case: str, reason: str) -> dict[str, Any] | None:
        status = trial_by_case(kube, namespace, "pre")[case]["status"]
        return status if status.get("reason") == reason else None

    status = wait_for(lambda: showing("stuck", "Unschedulable"), 30, "the stuck trial to show Unschedulable")
    assert status["state"] == "Running" and SCHEDULER_SAYS in status["message"]
    status = wait_for(lambda: showing("refused", "FailedCreateHeadPod"), 30, "the refused trial to say so")
    assert status["state"] == "Running" and REFUSAL in status["message"]

    for case, words in (("stuck", SCHEDULER_SAYS), ("refused", REFUSAL)):
        status = wait_for(
            lambda case=case: showing(case, "PreRunningDeadlineExceeded"),
            45,
            f"{case} to fail at its deadline",
        )
        assert time.monotonic() - started >= 10  # not before its deadline (15 s from KubeRay's start)
        assert status["state"] == "Failed" and words in status["message"] and "15s" in status["message"]
    wait_for(
        lambda: [j["metadata"]["name"] for j in kube.rayjobs(namespace, "pre")] == [runs],
        30,
        "the RayJobs that never ran deleted",
    )
    # The job whose Ray job runs is not the deadline's business, however long it runs.
    other = trial_by_case(kube, namespace, "pre")["runs"]["status"]
    assert (other["state"], other.get("reason")) == ("Running", "Launched"), other
