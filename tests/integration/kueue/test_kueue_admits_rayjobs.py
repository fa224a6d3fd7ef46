"""A real Kueue (the pinned release, a host process) admits the RayJobs our kuberay executor builds.

On a fresh control plane (etcd + apiserver + controller-manager for garbage collection) with
KubeRay's CRDs and Kueue's: a ClusterQueue with quota for one GPU, RayJobs of one GPU each, created
suspended with the queue label (no webhook runs, so the creator suspends them: our operator's job).
Kueue unsuspends exactly as many as the quota allows, says why the others wait, admits the next one
when quota frees, and orders waiting jobs by WorkloadPriorityClass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rig.kueue import workload_priority_class

from ..k8s.opkit import MERGE_PATCH, RAY_PATH, Kube, wait_for
from .kit import (
    ADMIT_TIMEOUT,
    FLAVOR_LABEL,
    KUEUE_PATH,
    POOL_LABEL,
    QUEUE_LABEL,
    admitted,
    apply,
    condition,
    create,
    get_job,
    kueue_plane,
    queue,
    rayjobs,
    suspended,
    templates,
    waiting_for_quota,
    workload_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kube() -> Iterator[Kube]:
    with kueue_plane() as kube:
        yield kube


def test_one_gpu_of_quota_runs_one_rayjob_and_the_next_when_it_goes(kube: Kube, ns: str) -> None:
    cq, lq = queue(kube, ns, flavor_labels={POOL_LABEL: "gpu", FLAVOR_LABEL: "a"})
    first, second = rayjobs(kube, ns, "fifo", 2, lq)
    t0 = time.monotonic()
    create(kube, ns, first)
    wait_for(lambda: not suspended(kube, ns, first), ADMIT_TIMEOUT, "Kueue to unsuspend the first RayJob")
    t_first = time.monotonic() - t0
    create(kube, ns, second)
    wl2 = wait_for(lambda: waiting_for_quota(kube, ns, second), ADMIT_TIMEOUT, "the second job's verdict")

    # Exactly one runs: the first, admitted by our ClusterQueue; the second stays suspended.
    assert admitted(kube, ns, first)
    assert suspended(kube, ns, second)
    time.sleep(2)  # and stays so (Kueue has had every chance to get it wrong)
    assert suspended(kube, ns, second) and not suspended(kube, ns, first)
    wl1 = workload_of(kube, ns, first)
    assert wl1 is not None
    assert wl1["status"]["admission"]["clusterQueue"] == cq
    assert wl1["spec"]["queueName"] == lq
    # The Workload asks for what our RayJob asks: the head (the GPU) and the submitter (K8sJobMode).
    pod_sets = {ps["name"]: ps for ps in wl1["spec"]["podSets"]}
    assert set(pod_sets) == {"head", "submitter"}
    head_limits = pod_sets["head"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert head_limits["nvidia.com/gpu"] == "1"
    flavors = {a["name"]: a["flavors"] for a in wl1["status"]["admission"]["podSetAssignments"]}
    assert flavors["head"]["nvidia.com/gpu"] == f"gpu-{ns.removeprefix('kq-')}"
    # Why the second waits, in words a person can act on.
    message = condition(wl2, "QuotaReserved")["message"]
    assert "insufficient unused quota for nvidia.com/gpu" in message, message
    assert condition(wl2, "Admitted").get("status") != "True"
    lq_status = kube.ok("GET", f"{KUEUE_PATH}/namespaces/{ns}/localqueues/{lq}")["status"]
    assert (lq_status["admittedWorkloads"], lq_status["pendingWorkloads"]) == (1, 1), lq_status

    # What Kueue wrote on the admitted RayJob: the flavor's node labels merged into every pod
    # template (the pool's own selector kept), the pod set's name, the Workload's name.
    running = get_job(kube, ns, first["metadata"]["name"])
    for name, tpl in templates(running).items():
        assert tpl["spec"]["nodeSelector"] == {POOL_LABEL: "gpu", FLAVOR_LABEL: "a"}, name
        assert tpl["metadata"]["labels"]["kueue.x-k8s.io/podset"] == name
        assert tpl["metadata"]["annotations"]["kueue.x-k8s.io/workload"] == wl1["metadata"]["name"]
    assert running["metadata"]["labels"] == {**first["metadata"]["labels"]}  # the job's own labels: untouched
    for name, tpl in templates(get_job(kube, ns, second["metadata"]["name"])).items():
        assert "kueue.x-k8s.io/podset" not in tpl["metadata"]["labels"], name  # nothing before admission

    # The first goes (its trial ended): its quota comes back and the second is admitted.
    t1 = time.monotonic()
    kube.ok("DELETE", f"{RAY_PATH.format(ns=ns)}/{first['metadata']['name']}")
    wait_for(lambda: not suspended(kube, ns, second), ADMIT_TIMEOUT, "Kueue to admit the second RayJob")
    t_second = time.monotonic() - t1
    assert admitted(kube, ns, second)
    print(f"\nunsuspended {t_first:.1f}s after create; next admitted {t_second:.1f}s after the delete")


def test_a_higher_priority_job_is_admitted_before_an_older_lower_one(kube: Kube, ns: str) -> None:
    suffix = ns.removeprefix("kq-")
    low, high = f"low-{suffix}", f"high-{suffix}"
    apply(kube, workload_priority_class(low, 100), workload_priority_class(high, 1000))
    _, lq = queue(kube, ns)
    (blocker,) = rayjobs(kube, ns, "blocker", 1, lq)
    (older_low,) = rayjobs(kube, ns, "explore", 1, lq, priority_class=low)
    (newer_high,) = rayjobs(kube, ns, "quality", 1, lq, priority_class=high)
    create(kube, ns, blocker)
    wait_for(lambda: not suspended(kube, ns, blocker), ADMIT_TIMEOUT, "the blocker to run")
    create(kube, ns, older_low)
    wait_for(lambda: waiting_for_quota(kube, ns, older_low), ADMIT_TIMEOUT, "the low job to wait")
    time.sleep(1.1)  # creation timestamps have one-second resolution: make "older" unambiguous
    create(kube, ns, newer_high)
    wl_high = wait_for(lambda: waiting_for_quota(kube, ns, newer_high), ADMIT_TIMEOUT, "the high job to wait")
    wl_low = workload_of(kube, ns, older_low)
    assert wl_low is not None
    # The label became the Workload's priority.
    assert (wl_low["spec"]["priority"], wl_high["spec"]["priority"]) == (100, 1000)
    assert wl_low["spec"]["priorityClassRef"] == {
        "group": "kueue.x-k8s.io",
        "kind": "WorkloadPriorityClass",
        "name": low,
    }
    assert wl_low["metadata"]["creationTimestamp"] < wl_high["metadata"]["creationTimestamp"]

    kube.ok("DELETE", f"{RAY_PATH.format(ns=ns)}/{blocker['metadata']['name']}")
    wait_for(
        lambda: not suspended(kube, ns, newer_high), ADMIT_TIMEOUT, "the high-priority job to be admitted"
    )
    assert suspended(kube, ns, older_low)
    assert waiting_for_quota(kube, ns, older_low) is not None
    # No preemption in this ClusterQueue: the low one waits for the high one to finish, then runs.
    kube.ok("DELETE", f"{RAY_PATH.format(ns=ns)}/{newer_high['metadata']['name']}")
    wait_for(lambda: not suspended(kube, ns, older_low), ADMIT_TIMEOUT, "the low-priority job, last")


def test_an_unlabelled_or_unsuspended_rayjob_is_not_queued_behind_kueues_back(kube: Kube, ns: str) -> None:
    """Without the webhook, suspending is the creator's job: an unsuspended queue-labelled RayJob is
    suspended by Kueue only after the fact (KubeRay may already have started its cluster), and a job
    without the label is not Kueue's at all."""
    _, lq = queue(kube, ns)
    blocker, late, unlabelled = rayjobs(kube, ns, "late", 3, lq)
    create(kube, ns, blocker)
    wait_for(lambda: not suspended(kube, ns, blocker), ADMIT_TIMEOUT, "the blocker to run")
    late["spec"]["suspend"] = False
    create(kube, ns, late)
    wait_for(lambda: suspended(kube, ns, late), ADMIT_TIMEOUT, "Kueue to suspend the unsuspended RayJob")
    wait_for(lambda: waiting_for_quota(kube, ns, late), ADMIT_TIMEOUT, "the late job to wait for quota")
    del unlabelled["metadata"]["labels"][QUEUE_LABEL]
    unlabelled["spec"]["suspend"] = False
    create(kube, ns, unlabelled)
    time.sleep(3)
    assert workload_of(kube, ns, unlabelled) is None
    assert not suspended(kube, ns, unlabelled)


def test_a_finished_rayjob_frees_its_quota_before_it_is_deleted(kube: Kube, ns: str) -> None:
    """Quota comes back when the job ends, not when its RayJob goes (the TTL may keep it a while)."""
    _, lq = queue(kube, ns)
    first, second = rayjobs(kube, ns, "done", 2, lq)
    create(kube, ns, first)
    wait_for(lambda: not suspended(kube, ns, first), ADMIT_TIMEOUT, "the first to run")
    create(kube, ns, second)
    wait_for(lambda: waiting_for_quota(kube, ns, second), ADMIT_TIMEOUT, "the second to wait")
    t0 = time.monotonic()
    # What KubeRay writes when the Ray job succeeded (its status subresource; no KubeRay runs here).
    done = {"status": {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}}
    kube.ok("PATCH", f"{RAY_PATH.format(ns=ns)}/{first['metadata']['name']}/status", done, MERGE_PATCH)
    wait_for(lambda: not suspended(kube, ns, second), ADMIT_TIMEOUT, "the second to be admitted")
    print(f"\nnext admitted {time.monotonic() - t0:.1f}s after the first finished")
    wl = workload_of(kube, ns, first)
    assert wl is not None
    assert (condition(wl, "Finished")["status"], condition(wl, "Finished")["reason"]) == ("True", "Succeeded")
    assert not suspended(kube, ns, first)  # Kueue leaves a finished job as it is
