"""The operator's manners: a reconcile that changes nothing writes nothing; SIGTERM lets the plan in
progress finish; a campaign deleted while the operator was down is finalized when it returns.

Real `campaign-operator` processes on the real apiserver; RayJob status is played by FakeKubeRay
(KubeRay's controller needs pods), kept Running here so nothing moves unless the operator moves it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from .opkit import GROUP_PATH, AddedRecorder, FakeKubeRay, Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def sample(op: OperatorProcess, name: str) -> dict[str, float]:
    """One metric's samples by their label text, from the operator's /metrics."""
    pattern = re.compile(rf"^{name}(\{{[^}}]*\}})?\s+([0-9.e+-]+)$", re.M)
    return {m.group(1) or "": float(m.group(2)) for m in pattern.finditer(op.metrics())}


def writes(op: OperatorProcess) -> float:
    """Writes of the operator's reconciles (the leader Lease's renewals are not theirs)."""
    requests = sample(op, "campaign_operator_api_requests_total")
    return sum(
        v
        for labels, v in requests.items()
        if any(f'verb="{w}"' in labels for w in WRITES) and 'resource="leases"' not in labels
    )


def reconciles(op: OperatorProcess) -> float:
    return sum(sample(op, "campaign_reconcile_duration_seconds_count").values())


def running(name: str, trials: int, epochs: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": epochs},
            "maxParallelTrials": 2,
            "executor": {"kind": "kuberay"},
            "phases": [{"name": "p", "sweep": {"grid": {"x": list(range(trials))}}}],
        },
    }


def all_running(kube: Kube, namespace: str, name: str, n: int) -> bool:
    states = [(t.get("status") or {}).get("state") for t in kube.trials(namespace, name)]
    jobs = [(j.get("status") or {}).get("jobDeploymentStatus") for j in kube.rayjobs(namespace, name)]
    return states.count("Running") == n and jobs.count("Running") == n


def test_a_reconcile_that_changes_nothing_writes_nothing(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=3600)
    op = operator_factory(namespace, "--resync-seconds", "2")  # a reconcile every 2 s, not 5 s
    try:
        kube.create_campaign(namespace, running("idle", 4))
        wait_for(lambda: all_running(kube, namespace, "idle", 2), 60, f"2 running\n{op.log_tail()}")
        time.sleep(3)  # the reconcile that saw them run has written its status
        before, seen = writes(op), reconciles(op)
        wait_for(lambda: reconciles(op) >= seen + 3, 40, "three more reconciles", interval=0.5)
        after, done = writes(op), reconciles(op)
    finally:
        fake.close()
    print(f"{done - seen:.0f} no-op reconciles made {after - before:.0f} writes ({before:.0f} before them)")
    assert before > 0 and after == before, (before, after)


def test_sigterm_lets_the_plan_in_progress_finish(kube: Kube, namespace: str, operator_factory: Any) -> None:
    trials_seen = AddedRecorder(kube, GROUP_PATH.format(ns=namespace, plural="campaigntrials"))
    op = operator_factory(namespace)
    try:
        kube.create_campaign(namespace, running("drain", 300))  # one plan creates all 300
        wait_for(lambda: trials_seen.total() >= 1, 60, f"creation started\n{op.log_tail()}", interval=0.02)
        assert op.popen is not None
        op.popen.terminate()
        code = op.popen.wait(timeout=90)
        time.sleep(1)  # the watch delivers the last ADDED
    finally:
        trials_seen.close()
    made = len(kube.trials(namespace, "drain"))
    assert code == 0, op.log_tail()
    assert made == 300, f"{made} of 300 trials: the plan was cut short\n{op.log_tail()}"


def test_a_campaign_deleted_while_the_operator_was_down_is_finalized_when_it_returns(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=3600)
    op = operator_factory(namespace)
    try:
        kube.create_campaign(namespace, running("gone", 2))
        wait_for(lambda: all_running(kube, namespace, "gone", 2), 60, f"2 running\n{op.log_tail()}")
        op.stop()
        kube.call("DELETE", kube.path(namespace, "trainingcampaigns", "gone"))
        time.sleep(2)
        held = kube.campaign(namespace, "gone")  # our finalizer holds it while nobody can stop its jobs
        assert held["metadata"].get("deletionTimestamp") and kube.rayjobs(namespace, "gone")
        op.start()
        wait_for(
            lambda: kube.call("GET", kube.path(namespace, "trainingcampaigns", "gone")).status_code == 404,
            60,
            f"finalized\n{op.log_tail()}",
        )
        wait_for(lambda: kube.rayjobs(namespace, "gone") == [], 30, "its RayJobs deleted")
    finally:
        fake.close()
