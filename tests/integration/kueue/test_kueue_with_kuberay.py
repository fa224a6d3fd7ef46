"""Kueue and the real KubeRay operator together on a RayJob of ours (no node: pods stay Pending).

What the operator sees while a trial waits in Kueue's queue, and what KubeRay does on admission:
a created-suspended RayJob never gets a RayCluster and shows jobDeploymentStatus Suspended (the
executor keeps the trial Running with reason Suspended); once Kueue admits it, KubeRay creates its
RayCluster from the spec Kueue rewrote, so the pods carry the flavor's node labels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from campaign_operator.api.common import TrialState
from campaign_operator.lifecycle.outcomes import from_rayjob

from ..k8s.opkit import RAY_PATH, Kube, wait_for
from .kit import (
    ADMIT_TIMEOUT,
    FLAVOR_LABEL,
    POOL_LABEL,
    admitted,
    create,
    get_job,
    kueue_plane,
    queue,
    suspended,
    trial_jobs,
    waiting_for_quota,
)

pytestmark = pytest.mark.integration

CLUSTERS = "/apis/ray.io/v1/namespaces/{ns}/rayclusters"


@pytest.fixture(scope="module")
def kube() -> Iterator[Kube]:
    with kueue_plane(kuberay=True) as kube:
        yield kube


def deployment(kube: Kube, ns: str, job: dict[str, Any]) -> str:
    return str(
        (get_job(kube, ns, job["metadata"]["name"]).get("status") or {}).get("jobDeploymentStatus", "")
    )


def clusters_of(kube: Kube, ns: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    items = kube.ok("GET", CLUSTERS.format(ns=ns))["items"]
    uid = get_job(kube, ns, job["metadata"]["name"])["metadata"]["uid"]
    return [c for c in items if any(o["uid"] == uid for o in c["metadata"].get("ownerReferences", []))]


def test_a_queued_rayjob_waits_suspended_and_runs_on_the_flavor_once_admitted(kube: Kube, ns: str) -> None:
    _, lq = queue(kube, ns, flavor_labels={POOL_LABEL: "gpu", FLAVOR_LABEL: "b"})
    (_, first), (_, second) = trial_jobs(kube, ns, "kr", 2, lq)
    t0 = time.monotonic()
    create(kube, ns, first)
    wait_for(lambda: clusters_of(kube, ns, first), ADMIT_TIMEOUT, "KubeRay to create the first RayCluster")
    t_cluster = time.monotonic() - t0
    assert admitted(kube, ns, first)
    (cluster,) = clusters_of(kube, ns, first)
    head = cluster["spec"]["headGroupSpec"]["template"]
    assert head["spec"]["nodeSelector"] == {POOL_LABEL: "gpu", FLAVOR_LABEL: "b"}
    assert head["metadata"]["labels"]["kueue.x-k8s.io/podset"] == "head"

    create(kube, ns, second)
    wait_for(lambda: deployment(kube, ns, second) == "Suspended", ADMIT_TIMEOUT, "KubeRay: Suspended")
    wait_for(lambda: waiting_for_quota(kube, ns, second), ADMIT_TIMEOUT, "Kueue: no quota for the second")
    assert suspended(kube, ns, second)
    assert clusters_of(kube, ns, second) == []
    # The executor's view of the waiting attempt: still Running, reason Suspended (not a failure).
    seen = from_rayjob(get_job(kube, ns, second["metadata"]["name"]), was_suspended=False)
    assert seen is not None and (seen.state, seen.reason) == (TrialState.RUNNING, "Suspended"), seen
    assert deployment(kube, ns, first) in ("Initializing", "Running")

    # The first attempt is over (the operator deletes its RayJob): the second is admitted and KubeRay
    # builds its cluster; its startTime restarts, so the wait in the queue is not pre-running time.
    queued_since = get_job(kube, ns, second["metadata"]["name"])["status"].get("startTime")
    t1 = time.monotonic()
    kube.ok("DELETE", f"{RAY_PATH.format(ns=ns)}/{first['metadata']['name']}")
    wait_for(lambda: clusters_of(kube, ns, second), ADMIT_TIMEOUT, "KubeRay to create the second RayCluster")
    t_next = time.monotonic() - t1
    assert not suspended(kube, ns, second)
    status = get_job(kube, ns, second["metadata"]["name"])["status"]
    assert status["jobDeploymentStatus"] == "Initializing"
    assert queued_since is None or status["startTime"] > queued_since
    print(f"\nfirst RayCluster {t_cluster:.1f}s after create; second {t_next:.1f}s after the first's delete")
