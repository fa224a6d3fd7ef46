"""Kueue with its admission webhooks registered (by loopback URL: the apiserver is a host process), as
in a real install: Kueue suspends queue-labelled RayJobs itself, validates what it manages, and every
RayJob our executor builds for a queued campaign passes that validation."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import build_rayjob
from rig.kueue import QUEUE_LABEL

from ..k8s.opkit import RAY_PATH, Kube, wait_for
from ..k8s.test_rayjob_manifests import CASES, trials_of
from .kit import ADMIT_TIMEOUT, admitted, get_job, kueue_plane, queue, suspended, trial_jobs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kube() -> Iterator[Kube]:
    with kueue_plane(webhooks=True) as kube:
        yield kube


def test_kueue_suspends_a_queued_rayjob_on_create_and_admits_it(kube: Kube, ns: str) -> None:
    _, lq = queue(kube, ns)  # our queue manifests pass Kueue's own validation
    (_, queued), (_, unqueued) = trial_jobs(kube, ns, "wh", 2, lq)
    queued["spec"].pop("suspend")
    stored = kube.ok("POST", RAY_PATH.format(ns=ns), queued)
    assert stored["spec"]["suspend"] is True  # Kueue's defaulting webhook, before anything could start
    wait_for(lambda: not suspended(kube, ns, queued), ADMIT_TIMEOUT, "Kueue to admit it")
    assert admitted(kube, ns, queued)
    # Not Kueue's: no label, no suspension.
    del unqueued["metadata"]["labels"][QUEUE_LABEL]
    unqueued["spec"].pop("suspend")
    assert kube.ok("POST", RAY_PATH.format(ns=ns), unqueued)["spec"].get("suspend") in (None, False)
    assert not suspended(kube, ns, unqueued)
    assert get_job(kube, ns, unqueued["metadata"]["name"])["metadata"]["labels"].get(QUEUE_LABEL) is None


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda spec: spec.update(shutdownAfterJobFinishes=False),
            "a kueue managed job should delete the cluster after finishing",
        ),
        (
            lambda spec: spec["rayClusterSpec"].update(enableInTreeAutoscaling=True),
            "a kueue managed job should only use autoscaling when workload slicing is enabled",
        ),
    ],
    ids=["keeps-its-cluster", "autoscales"],
)
def test_kueue_refuses_rayjobs_it_cannot_manage(
    kube: Kube, ns: str, change: Callable[[dict[str, Any]], None], refusal: str
) -> None:
    _, lq = queue(kube, ns)
    ((_, job),) = trial_jobs(kube, ns, "bad", 1, lq)
    change(job["spec"])
    r = kube.call("POST", RAY_PATH.format(ns=ns), job)
    assert r.status_code == 403, r.text[:1000]
    assert refusal in r.json()["message"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rayjob_we_build_for_a_queued_campaign_passes_kueues_validation(
    kube: Kube, ns: str, case: str
) -> None:
    spec = copy.deepcopy(CASES[case])
    spec["queueName"] = "team-a"
    campaign, trials = trials_of(ns, f"c-{case}"[:40], spec)
    for trial in trials:
        job = build_rayjob(trial, 1, campaign, TrainerSettings())
        assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a"
        r = kube.call("POST", RAY_PATH.format(ns=ns) + "?dryRun=All", job)
        assert r.status_code == 201, f"{case}: HTTP {r.status_code}: {r.text[:2000]}"
        assert r.json()["spec"]["suspend"] is True
