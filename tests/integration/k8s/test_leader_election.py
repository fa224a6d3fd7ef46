"""Two operator replicas on one namespace: one acts, the other waits; SIGKILL the one that acts and
the other takes over within the lease, with exact counts, no duplicate job and one-shot Events once.

Both replicas are real `campaign-operator` processes on the real apiserver, each with its own pod
name; the Lease is the real coordination.k8s.io object. RayJob status is played by FakeKubeRay, as in
test_restart_safety: the point is who acts, not how a job runs.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from .opkit import GROUP_PATH, RAY_PATH, AddedRecorder, FakeKubeRay, Kube, OperatorProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

LEASE_S = 6
FAST_LEASE = ("--leader-lease-seconds", str(LEASE_S))  # renew deadline 4 s, retry 1 s


def manifest(name: str, trials: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "maxParallelTrials": 2,
            "executor": {"kind": "kuberay"},
            "phases": [
                {"name": "a", "sweep": {"grid": {"x": list(range(trials))}}},
                {"name": "b", "dependsOn": ["a"], "sweep": {"grid": {"y": [0, 1]}}},
            ],
        },
    }


def holder(kube: Kube, namespace: str) -> str | None:
    lease = kube.ok("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/campaign-operator")
    return lease["spec"].get("holderIdentity") or None


def started(op: OperatorProcess) -> bool:
    return "leading: " in op.log_tail(200_000)


def one_shot_events(kube: Kube, namespace: str, name: str) -> Counter[str]:
    """Events the planner emits once per campaign or phase, counted over all Event objects."""
    once = {"TrialsCreated", "PhaseStarted", "PhaseSucceeded", "CampaignSucceeded"}
    counts: Counter[str] = Counter()
    for e in kube.events(namespace, name):
        if e["reason"] in once:
            counts[f"{e['reason']}: {e['message']}"] += int(e.get("count") or 1)
    return counts


def test_one_replica_acts_and_the_standby_takes_over_when_it_is_killed(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    jobs_seen = AddedRecorder(kube, RAY_PATH.format(ns=namespace))
    trials_seen = AddedRecorder(kube, GROUP_PATH.format(ns=namespace, plural="campaigntrials"))
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=1.0)
    first = operator_factory(namespace, *FAST_LEASE)
    wait_for(lambda: started(first), 30, f"the first replica leads\n{first.log_tail()}")
    second = operator_factory(namespace, *FAST_LEASE)  # alive (its liveness answers) as a standby
    try:
        assert holder(kube, namespace) == "operator-0"
        # Its liveness answers from the start; it says standby after its first look at the Lease.
        wait_for(lambda: "standby: lease" in second.log_tail(), 30, f"a standby\n{second.log_tail()}")
        assert not started(second)

        kube.create_campaign(namespace, manifest("le", 6))
        wait_for(lambda: jobs_seen.total() >= 3, 60, f"a's jobs run\n{first.log_tail()}")
        first.kill()
        killed = time.monotonic()
        wait_for(
            lambda: holder(kube, namespace) == "operator-1", 3 * LEASE_S, f"takeover\n{second.log_tail()}"
        )
        took_over = time.monotonic() - killed
        wait_for(lambda: kube.state(namespace, "le") == "Succeeded", 120, f"the end\n{second.log_tail()}")
        time.sleep(2)
    finally:
        fake.close()
        jobs_seen.close()
        trials_seen.close()

    print(f"standby took the lease {took_over:.1f} s after the leader's SIGKILL (lease {LEASE_S} s)")
    assert LEASE_S - 1 <= took_over <= 2 * LEASE_S, took_over  # not before the lease ran out, soon after
    status = kube.campaign(namespace, "le")["status"]
    a, b = status["phases"]
    assert (a["counts"]["succeeded"], a["counts"]["total"], b["counts"]["succeeded"]) == (6, 6, 2)
    assert trials_seen.duplicates() == {} and len(trials_seen.added) == 8
    assert jobs_seen.duplicates() == {} and jobs_seen.total() == 8, "one job per trial, none twice"
    events = one_shot_events(kube, namespace, "le")
    assert events and all(n == 1 for n in events.values()), events
    instances = {e.get("reportingInstance") for e in kube.events(namespace, "le")}
    assert instances <= {"operator-0", "operator-1"} and "operator-1" in instances, instances


def test_a_clean_shutdown_hands_the_lease_over_at_once(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    first = operator_factory(namespace, "--leader-lease-seconds", "60")
    wait_for(lambda: started(first), 30, f"the first replica leads\n{first.log_tail()}")
    second = operator_factory(namespace, "--leader-lease-seconds", "60")
    assert holder(kube, namespace) == "operator-0"
    first.stop()  # SIGTERM: kopf drains, the Lease is released
    stopped = time.monotonic()
    wait_for(lambda: holder(kube, namespace) == "operator-1", 30, f"handover\n{second.log_tail()}")
    handed_over = time.monotonic() - stopped
    print(f"standby took a released lease {handed_over:.1f} s after the leader stopped (lease 60 s)")
    assert handed_over < 15, handed_over  # far less than the 60 s lease: it was handed back
    wait_for(lambda: started(second), 30, second.log_tail())
