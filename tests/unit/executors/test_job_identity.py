"""The cluster executors adopt only their own jobs: what they submit, adopt, refuse, stop and clean up,
against in-memory stand-ins for the Ray Jobs API and the Kubernetes API (the real ones: tests/e2e and
tests/integration/k8s)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.trial import Trial
from campaign_operator.executors.base import JobIdentityConflict
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import LABEL_TRIAL_UID, KubeRayExecutor, build_rayjob
from campaign_operator.executors.rayjobs import LEFTOVER_AFTER_S, RayJobsExecutor
from campaign_operator.kube.client import AlreadyExists, Conflict, NotFound
from campaign_operator.lifecycle.outcomes import JOB_IDENTITY_MISMATCH, JOB_LOST
from campaign_operator.lifecycle.wire import JOB_TRIAL_UID, job_identity
from campaign_operator.planner.naming import job_name

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
UID, OTHER = "6f1c2d9e-8a51-4f3e-9b7a-0c2d4e6f8a10", "0b7e5a3c-1d2f-4e6a-8c9b-7a6f5e4d3c2b"


def campaign(kind: str) -> TrainingCampaign:
    executor: dict[str, Any] = {"kind": kind}
    if kind == "rayjobs":
        executor["address"] = "http://ray:8265"
    return TrainingCampaign.model_validate(
        {
            "metadata": {"name": "c", "namespace": "ns-a", "uid": "cu"},
            "spec": {"template": {"task": "regression"}, "executor": executor, "phases": [{"name": "p"}]},
        }
    )


def trial(state: str = "Pending", attempt: int = 0, uid: str = UID, ref: str | None = None) -> Trial:
    status: dict[str, Any] = {"state": state, "attempt": attempt}
    if ref:
        status["executorRef"] = {"kind": "x", "name": ref, "attempt": attempt}
    return Trial.model_validate(
        {
            "metadata": {"name": "c-p-0123456789", "namespace": "ns-a", "uid": uid},
            "spec": {"campaign": "c", "phase": "p", "task": "regression", "epochs": 1},
            "status": status,
        }
    )


# -- the Ray Jobs API ------------------------------------------------------------------------------
class FakeRay(RayJobsExecutor):
    """The Jobs API as a dict of JobDetails; every call recorded."""

    def __init__(self, jobs: dict[str, dict[str, Any]] | None = None, race: dict[str, Any] | None = None):
        super().__init__(campaign("rayjobs"), TrainerSettings(), session=None, token=None)  # type: ignore[arg-type]
        self.ray = dict(jobs or {})
        self.race = race  # a job someone submits between our GET and our POST
        self.calls: list[tuple[str, str]] = []

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        self.calls.append((method, path))
        sid = path.removeprefix("/api/jobs/").removesuffix("/stop")
        if method == "GET" and path == "/api/jobs/":
            return 200, list(self.ray.values())
        if method == "GET":
            return (200, self.ray[sid]) if sid in self.ray else (404, "not found")
        if method == "POST" and path.endswith("/stop"):
            if sid not in self.ray:
                return 404, "not found"
            self.ray[sid]["status"] = "STOPPED"
            return 200, {"stopped": True}
        assert body is not None
        if self.race is not None:
            self.ray[body["submission_id"]] = self.race
        if body["submission_id"] in self.ray:
            return 400, f"Job with submission_id {body['submission_id']} already exists."
        self.ray[body["submission_id"]] = {**body, "status": "PENDING"}
        return 200, {"submission_id": body["submission_id"]}

    def posts(self) -> list[str]:
        return [p for m, p in self.calls if m == "POST"]


def ray_job(sid: str, uid: str, attempt: int, status: str = "RUNNING", ns: str = "ns-a") -> dict[str, Any]:
    return {
        "submission_id": sid,
        "status": status,
        "metadata": job_identity("c-p-0123456789", ns, uid, attempt),
    }


def test_rayjobs_submits_under_the_uids_name_with_the_trials_identity() -> None:
    ray = FakeRay()
    ref = asyncio.run(ray.submit(trial(), 1))
    sid = job_name("c-p-0123456789", 1, UID)
    assert ref.name == sid and ray.posts() == ["/api/jobs/"]
    meta = ray.ray[sid]["metadata"]
    assert meta[JOB_TRIAL_UID] == UID and meta["attempt"] == "1" and meta["namespace"] == "ns-a"
    assert (meta["campaign"], meta["phase"], meta["trial"]) == ("c", "p", "c-p-0123456789")
    # A repeated submit (after a crash) adopts it: exactly one job.
    assert asyncio.run(ray.submit(trial(), 1)) == ref and ray.posts() == ["/api/jobs/"]


@pytest.mark.parametrize(
    "foreign",
    [
        ray_job("x", OTHER, 1, ns="ns-b"),  # the same campaign name in another namespace
        ray_job("x", UID, 2),  # another attempt's identity under this name
        {"submission_id": "x", "status": "STOPPED", "metadata": {"trial": "c-p-0123456789"}},  # older run
        {"submission_id": "x", "status": "SUCCEEDED"},  # someone's own job
    ],
)
def test_rayjobs_never_adopts_a_job_that_is_not_this_attempts(foreign: dict[str, Any]) -> None:
    sid = job_name("c-p-0123456789", 1, UID)
    ray = FakeRay({sid: {**foreign, "submission_id": sid}})
    before = dict(ray.ray[sid])
    with pytest.raises(JobIdentityConflict) as caught:
        asyncio.run(ray.submit(trial(), 1))
    assert caught.value.outcome.reason == JOB_IDENTITY_MISMATCH and caught.value.ref.name == sid
    assert f"Ray job {sid} on http://ray:8265 already exists" in caught.value.outcome.message
    assert ray.posts() == [] and ray.ray[sid] == before  # neither adopted, replaced nor stopped


def test_rayjobs_checks_the_job_it_lost_a_submit_race_to() -> None:
    ray = FakeRay(race=ray_job("x", OTHER, 1))
    with pytest.raises(JobIdentityConflict):
        asyncio.run(ray.submit(trial(), 1))
    ray = FakeRay()
    ray.race = ray_job(job_name("c-p-0123456789", 1, UID), UID, 1)  # our own, submitted meanwhile
    assert asyncio.run(ray.submit(trial(), 1)).name == job_name("c-p-0123456789", 1, UID)


def test_rayjobs_observe_stops_only_its_own_attempts_that_are_over() -> None:
    current, old = job_name("c-p-0123456789", 2, UID), job_name("c-p-0123456789", 1, UID)
    done = trial("Stopped", 1, uid=OTHER)  # recorded Stopped, then the operator died before the stop
    done.status.completion_time = NOW - timedelta(seconds=LEFTOVER_AFTER_S + 1)
    # Its trainer just reported: its driver is still on its way out, and is left to end by itself.
    verdict = trial("Succeeded", 1, uid="uid-just-reported")
    verdict.status.completion_time = NOW - timedelta(seconds=5)
    ray = FakeRay(
        {
            current: ray_job(current, UID, 2),
            old: ray_job(old, UID, 1),
            "stopped-trials-job": ray_job("stopped-trials-job", OTHER, 1),
            "just-reported": ray_job("just-reported", "uid-just-reported", 1),
            "someone-elses": {"submission_id": "someone-elses", "status": "RUNNING"},
            "other-ns": ray_job("other-ns", "uid-of-a-trial-elsewhere", 1, ns="ns-b"),
        }
    )
    ray.now = lambda: NOW
    asyncio.run(ray.observe([trial("Running", 2, ref=current), done, verdict]))
    assert sorted(p for p in ray.posts()) == sorted(
        f"/api/jobs/{s}/stop" for s in (old, "stopped-trials-job")
    )
    assert {ray.ray[s]["status"] for s in (current, "just-reported", "someone-elses", "other-ns")} == {
        "RUNNING"
    }


def test_rayjobs_stop_leaves_a_foreign_job_alone_and_a_vanished_one_is_lost() -> None:
    sid = job_name("c-p-0123456789", 1, UID)
    ray = FakeRay({sid: ray_job(sid, OTHER, 1)})
    asyncio.run(ray.stop(trial("Running", 1, ref=sid)))
    assert ray.posts() == []
    ray = FakeRay()
    out = asyncio.run(ray.poll(trial("Running", 1, ref=sid)))
    assert out is not None and out.reason == JOB_LOST and f"Ray job {sid} is unknown to" in out.message


# -- KubeRay ---------------------------------------------------------------------------------------
class FakeKube:
    """RayJobs of one namespace in a dict; the calls the executor makes, recorded."""

    def __init__(self, jobs: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        self.jobs = {j["metadata"]["name"]: j for j in jobs}
        self.calls: list[tuple[str, str]] = []

    async def list_objects(self, group: str, version: str, plural: str, ns: str, selector: str) -> list[Any]:
        return list(self.jobs.values()) if plural == "rayjobs" else []

    async def get(self, group: str, version: str, plural: str, ns: str, name: str) -> dict[str, Any]:
        if name not in self.jobs:
            raise NotFound(404, "NotFound")
        return self.jobs[name]

    async def create(self, group: str, version: str, plural: str, ns: str, body: dict[str, Any]) -> Any:
        self.calls.append(("create", body["metadata"]["name"]))
        if body["metadata"]["name"] in self.jobs:
            raise AlreadyExists(409, "AlreadyExists")
        self.jobs[body["metadata"]["name"]] = {**body, "metadata": {**body["metadata"], "uid": "rj-uid"}}
        return body

    async def delete(
        self, group: str, version: str, plural: str, ns: str, name: str, *, uid: str | None = None
    ) -> None:
        self.calls.append(("delete", name))
        if name in self.jobs and uid and self.jobs[name]["metadata"].get("uid") != uid:
            raise Conflict(409, "Conflict")
        self.jobs.pop(name, None)

    async def ensure(self, *args: Any) -> None:
        return None


def rayjob(name: str, labels: dict[str, str], owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-of-{name}", "labels": {"campaign": "c", **labels}}
    if owner:
        meta["ownerReferences"] = [
            {"kind": "Trial", "name": "c-p-0123456789", "uid": owner, "controller": True}
        ]
    return {"metadata": meta, "status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}}


def kuberay(kube: FakeKube) -> KubeRayExecutor:
    return KubeRayExecutor(kube, campaign("kuberay"), TrainerSettings())  # type: ignore[arg-type]


def test_kuberay_names_and_labels_its_rayjobs_with_the_trials_identity() -> None:
    body = build_rayjob(trial(), 3, campaign("kuberay"), TrainerSettings())
    assert body["metadata"]["name"] == job_name("c-p-0123456789", 3, UID)
    labels = body["metadata"]["labels"]
    assert (labels[LABEL_TRIAL_UID], labels["attempt"], labels["trial"]) == (UID, "3", "c-p-0123456789")


def test_kuberay_adopts_its_own_rayjob_and_refuses_anyone_elses() -> None:
    name = job_name("c-p-0123456789", 1, UID)
    kube = FakeKube()
    executor = kuberay(kube)
    asyncio.run(executor.submit(trial(), 1))
    asyncio.run(executor.submit(trial(), 1))  # the repeat after a crash: AlreadyExists, ours, adopted
    assert kube.calls == [("create", name), ("create", name)] and len(kube.jobs) == 1

    foreign = rayjob(name, {"trial": "c-p-0123456789", "attempt": "1", LABEL_TRIAL_UID: OTHER})
    for observed in (False, True):
        kube = FakeKube([foreign])
        executor = kuberay(kube)
        if observed:
            asyncio.run(executor.observe([trial()]))
        with pytest.raises(JobIdentityConflict) as caught:
            asyncio.run(executor.submit(trial(), 1))
        assert caught.value.outcome.reason == JOB_IDENTITY_MISMATCH
        assert (
            f"RayJob ns-a/{name} already exists and belongs to attempt 1 of Trial"
            in caught.value.outcome.message
        )
        assert kube.jobs == {name: foreign} and ("delete", name) not in kube.calls


def test_kuberay_deletes_only_its_own_rayjobs() -> None:
    current, old = job_name("c-p-0123456789", 2, UID), job_name("c-p-0123456789", 1, UID)
    same_name_other_trial = rayjob(
        "c-p-0123456789-a1", {"trial": "c-p-0123456789", "attempt": "1"}, owner=OTHER
    )
    legacy = rayjob(
        "c-p-0123456789-a0", {"trial": "c-p-0123456789", "attempt": "0"}, owner=UID
    )  # pre-uid label
    kube = FakeKube(
        [
            rayjob(current, {"trial": "c-p-0123456789", "attempt": "2", LABEL_TRIAL_UID: UID}),
            rayjob(old, {"trial": "c-p-0123456789", "attempt": "1", LABEL_TRIAL_UID: UID}),
            same_name_other_trial,
            legacy,
        ]
    )
    executor = kuberay(kube)
    running = trial("Running", 2, ref=current)
    asyncio.run(executor.observe([running]))
    assert sorted(kube.jobs) == sorted([current, "c-p-0123456789-a1"])
    # stop(): this attempt's RayJob only, and not a foreign one under its name.
    asyncio.run(executor.stop(trial("Running", 1, ref="c-p-0123456789-a1")))
    assert "c-p-0123456789-a1" in kube.jobs
    asyncio.run(executor.stop(running))
    assert sorted(kube.jobs) == ["c-p-0123456789-a1"]
    out = asyncio.run(kuberay(kube).poll(running))
    assert out is not None and out.reason == JOB_LOST and "was deleted, not by the operator" in out.message
