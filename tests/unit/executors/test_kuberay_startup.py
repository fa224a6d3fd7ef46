"""Before an attempt's Ray job runs: what the trial shows while its pods wait, and when the operator's
own pre-running deadline fails it (KubeRay 1.4/1.5 have none)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaign_operator.api.common import RESERVED_LABELS, TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.executors.kuberay import (
    LABEL_ATTEMPT,
    PodProblem,
    _labels,
    has_started,
    startup_outcome,
    startup_problem,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEADLINE = 900
SCHEDULER = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available"


def trial(reason: str | None = None, started: datetime = T0) -> Trial:
    status: dict[str, Any] = {"state": "Running", "attempt": 1, "startTime": started.isoformat()}
    if reason:
        status |= {"reason": reason, "message": "..."}
    return Trial.model_validate(
        {
            "metadata": {"name": "t-1", "namespace": "ns"},
            "spec": {"campaign": "c", "phase": "p", "task": "regression", "epochs": 1},
            "status": status,
        }
    )


def rayjob(deployment: str = "Initializing", job: str = "", start: datetime | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"jobDeploymentStatus": deployment, "rayClusterName": "t-1-a1-raycluster-x"}
    if job:
        status["jobStatus"] = job
    if start is not None:
        status["startTime"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": "t-1-a1"}, "status": status}


def pod(
    name: str, *, scheduled: str | None = None, waiting: str | None = None, deleting: bool = False
) -> Any:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = T0.isoformat()
    status: dict[str, Any] = {"phase": "Pending"}
    if scheduled is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduled}
        ]
    if waiting is not None:
        status["containerStatuses"] = [
            {"name": "ray-head", "state": {"waiting": {"reason": waiting, "message": f"{waiting} for x"}}}
        ]
    return {"metadata": meta, "status": status}


def test_an_unschedulable_pod_shows_on_the_running_trial_with_the_schedulers_message() -> None:
    problem = startup_problem([], [pod("head", scheduled=SCHEDULER)])
    out = startup_outcome(rayjob(), trial(), DEADLINE, T0 + timedelta(seconds=60), problem)
    assert out is not None
    assert (out.state, out.reason) == (TrialState.RUNNING, "Unschedulable")
    assert SCHEDULER in out.message and "t-1-a1" in out.message


def test_past_the_deadline_the_attempt_fails_and_says_why() -> None:
    problem = startup_problem([], [pod("head", scheduled=SCHEDULER)])
    now = T0 + timedelta(seconds=DEADLINE + 1)
    out = startup_outcome(rayjob(), trial("Unschedulable"), DEADLINE, now, problem)
    assert out is not None
    assert (out.state, out.reason) == (TrialState.FAILED, "PreRunningDeadlineExceeded")
    assert SCHEDULER in out.message and f"{DEADLINE}s" in out.message
    # Exactly at the deadline it is not exceeded yet.
    at = startup_outcome(rayjob(), trial(), DEADLINE, T0 + timedelta(seconds=DEADLINE), None)
    assert at is None


def test_without_a_pod_problem_the_deadline_message_quotes_kuberay() -> None:
    out = startup_outcome(rayjob("Running", "PENDING"), trial(), 60, T0 + timedelta(seconds=61), None)
    assert out is not None and out.reason == "PreRunningDeadlineExceeded"
    assert "jobDeploymentStatus Running, jobStatus PENDING" in out.message


def test_a_running_ray_job_is_past_the_deadlines_reach() -> None:
    late = T0 + timedelta(days=2)
    for status in ("RUNNING", "SUCCEEDED", "FAILED", "STOPPED"):
        assert has_started(rayjob("Running", status))
        assert startup_outcome(rayjob("Running", status), trial(), DEADLINE, late, None) is None
    # KubeRay says Running as soon as it created the submitter; the Ray job may not run yet.
    assert not has_started(rayjob("Running", "PENDING"))
    assert not has_started(rayjob("Running"))


def test_the_waiting_reason_is_replaced_once_the_pods_run() -> None:
    starting = startup_outcome(rayjob(), trial("Unschedulable"), DEADLINE, T0, None)
    assert starting is not None and (starting.state, starting.reason) == (TrialState.RUNNING, "Starting")
    assert startup_outcome(rayjob(), trial("Starting"), DEADLINE, T0, None) is None  # already shown
    started = startup_outcome(rayjob("Running", "RUNNING"), trial("Starting"), DEADLINE, T0, None)
    assert started is not None and (started.state, started.reason) == (TrialState.RUNNING, "Started")
    # Reasons that are not ours to clear stay (e.g. Kueue's Resumed, handled by from_rayjob).
    assert startup_outcome(rayjob("Running", "RUNNING"), trial("Resumed"), DEADLINE, T0, None) is None


def test_time_suspended_in_kueue_does_not_count() -> None:
    # KubeRay restarts the RayJob's startTime when Kueue admits it; the clock starts there.
    admitted = T0 + timedelta(hours=5)
    job = rayjob(start=admitted)
    assert startup_outcome(job, trial(), DEADLINE, admitted + timedelta(seconds=60), None) is None
    out = startup_outcome(job, trial(), DEADLINE, admitted + timedelta(seconds=DEADLINE + 1), None)
    assert out is not None and out.reason == "PreRunningDeadlineExceeded"


def test_problems_scheduling_first_then_containers_deleted_pods_ignored() -> None:
    assert startup_problem([], []) is None
    assert startup_problem([], [pod("a")]) is None
    stuck = startup_problem([], [pod("a", waiting="ErrImageNeverPull")])
    assert stuck == PodProblem("ErrImageNeverPull", "pod a, container ray-head: ErrImageNeverPull for x")
    both = startup_problem([], [pod("a", waiting="ImagePullBackOff"), pod("b", scheduled=SCHEDULER)])
    assert both is not None and both.reason == "Unschedulable" and both.message == f"pod b: {SCHEDULER}"
    assert startup_problem([], [pod("old", scheduled=SCHEDULER, deleting=True)]) is None
    # Ordinary waiting (a container being created) is not a problem.
    assert startup_problem([], [pod("a", waiting="ContainerCreating")]) is None


def test_pods_kuberay_could_not_create_show_the_apiservers_refusal() -> None:
    refusal = (
        'FailedCreateHeadPod: pods "t-1-a1-head-x" is forbidden: error looking up service account'
        ' ns/campaign-trainer: serviceaccount "campaign-trainer" not found'
    )
    cluster = {
        "metadata": {"name": "t-1-a1-raycluster-x"},
        "status": {
            "conditions": [
                {"type": "HeadPodReady", "status": "False", "reason": "HeadPodNotFound"},
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreateHeadPod",
                    "message": refusal,
                },
            ]
        },
    }
    problem = startup_problem([cluster], [])
    assert problem == PodProblem("FailedCreateHeadPod", f"RayCluster t-1-a1-raycluster-x: {refusal}")
    out = startup_outcome(rayjob(), trial(), DEADLINE, T0, problem)
    assert out is not None and (out.state, out.reason) == (TrialState.RUNNING, "FailedCreateHeadPod")
    # Deleting pods that failed is KubeRay's own business, not a reason the trial waits.
    cluster["status"]["conditions"][1]["reason"] = "FailedDeleteWorkerPod"
    assert startup_problem([cluster], []) is None


def test_the_api_reserves_exactly_the_labels_the_executor_sets_on_pods() -> None:
    assert set(RESERVED_LABELS) == {*_labels(trial()), LABEL_ATTEMPT}
