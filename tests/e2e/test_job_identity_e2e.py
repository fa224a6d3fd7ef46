"""Job identity against a real Ray head (the rayjobs executor), with the operator as its own process
on a real apiserver and the real trainer training and reporting:

- the same campaign name in two namespaces against one Ray cluster trains twice: two jobs, each
  with its own Trial's identity, no adoption across namespaces;
- a campaign re-created against a Ray head that still holds the earlier run's STOPPED job (and a
  job forged under the new attempt's very submission id) adopts neither and trains;
- a job stopped from outside through the Ray Jobs API fails its attempt (JobStoppedExternally), is
  retried, and once retries are spent is counted in the failure rate: exact counts, no job twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from campaign_operator.lifecycle.wire import JOB_TRIAL_UID
from campaign_operator.planner.naming import job_name
from integration.k8s.opkit import MERGE_PATCH, Kube, OperatorProcess, wait_for
from rig.controlplane import ControlPlane

from .conftest import TEMPLATE, RayHead, ray_namespace, start_operator
from .conftest import campaign as rayjobs_campaign

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.chaos]

FINISHED = ("Succeeded", "Failed")


@pytest.fixture(scope="module")
def namespaces(kube: Kube, ray_head: RayHead) -> Iterator[tuple[str, str]]:
    names = (ray_namespace(kube, ray_head, "ident-a"), ray_namespace(kube, ray_head, "ident-b"))
    yield names
    for name in names:
        kube.call("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, namespaces: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for both namespaces, as a cluster-wide one would be."""
    proc = start_operator(
        control_plane,
        namespaces,
        tmp_path_factory.mktemp("operator"),
        *("--leader-election-id", "job-identity-e2e"),
    )
    yield proc
    proc.stop_in_background()


def campaign(name: str, ray_head: RayHead, phase: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """One phase `p` of TEMPLATE trials (overridden by spec["template"]), with more spec fields."""
    body = rayjobs_campaign(name, ray_head, [{"name": "p", **phase}])
    body["spec"]["template"] = {**TEMPLATE, **spec.pop("template", {})}
    body["spec"].update(spec)
    return body


def jobs_of(ray_head: RayHead, uid: str) -> list[dict[str, Any]]:
    """The Ray jobs that carry this Trial's identity, by attempt."""
    every: list[dict[str, Any]] = [dict(j) for j in ray_head.jobs()]
    jobs = [j for j in every if (j.get("metadata") or {}).get(JOB_TRIAL_UID) == uid]
    return sorted(jobs, key=lambda j: int(j["metadata"]["attempt"]))


def ray_call(ray_head: RayHead, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, f"{ray_head.address}{path}", json=body, headers=ray_head.headers(), timeout=30
    )


def ray_status(ray_head: RayHead, sid: str) -> str:
    return str(ray_call(ray_head, "GET", f"/api/jobs/{sid}").json()["status"])


def trial_status(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return kube.ok("GET", kube.path(ns, "campaigntrials", name)).get("status") or {}


def only_trial(kube: Kube, ns: str, campaign_name: str) -> dict[str, Any]:
    (trial,) = wait_for(lambda: kube.trials(ns, campaign_name), 60, f"the trial of {campaign_name}")
    return trial


def finished(
    kube: Kube, ns: str, name: str, op: OperatorProcess, ray_head: RayHead, timeout: float = 420
) -> None:
    wait_for(
        lambda: kube.state(ns, name) in FINISHED,
        timeout,
        f"campaign {ns}/{name} to finish\n{op.log_tail()}\n{ray_head.diagnostics()}",
        interval=1,
    )


def assert_trained(status: dict[str, Any], attempt: int, epochs: int) -> None:
    """What only a real training run writes: every epoch, metrics, then the verdict."""
    assert (status["state"], status["reason"], status["attempt"]) == ("Succeeded", "Completed", attempt), (
        status
    )
    assert status["epoch"] == epochs and [h["epoch"] for h in status["history"]] == list(range(1, epochs + 1))
    assert {"val_loss", "r2"} <= set(status["metrics"]), status


def test_the_same_campaign_in_two_namespaces_on_one_ray_cluster_trains_twice(
    kube: Kube, namespaces: tuple[str, str], operator: OperatorProcess, ray_head: RayHead
) -> None:
    for ns in namespaces:
        kube.create_campaign(ns, campaign("twin", ray_head, {}))
    for ns in namespaces:
        finished(kube, ns, "twin", operator, ray_head)
    trials = {ns: only_trial(kube, ns, "twin") for ns in namespaces}
    a, b = (trials[ns] for ns in namespaces)
    assert a["metadata"]["name"] == b["metadata"]["name"]  # the same deterministic trial name
    refs = set()
    for ns, trial in trials.items():
        assert kube.state(ns, "twin") == "Succeeded"
        status = trial["status"]
        assert_trained(status, attempt=1, epochs=2)
        (job,) = jobs_of(ray_head, trial["metadata"]["uid"])  # its own job, exactly one
        assert job["submission_id"] == status["executorRef"]["name"]
        assert job["submission_id"] == job_name(trial["metadata"]["name"], 1, trial["metadata"]["uid"])
        assert job["metadata"]["namespace"] == ns and job["metadata"]["attempt"] == "1"
        refs.add(job["submission_id"])
    assert len(refs) == 2
    wait_for(
        lambda: {ray_status(ray_head, sid) for sid in refs} == {"SUCCEEDED"}, 60, "both Ray jobs SUCCEEDED"
    )


def test_a_recreated_campaign_adopts_neither_the_earlier_runs_stopped_job_nor_a_forged_one(
    kube: Kube, namespaces: tuple[str, str], operator: OperatorProcess, ray_head: RayHead
) -> None:
    ns = namespaces[0]
    phase = {"failurePolicy": {"retries": 1, "backoffSeconds": 0, "maxFailureRate": 0.0}}
    # The earlier run: deleted while its trial runs; the finalizer stops its job.
    kube.create_campaign(ns, campaign("again", ray_head, phase))
    first = only_trial(kube, ns, "again")
    wait_for(lambda: trial_status(kube, ns, first["metadata"]["name"]).get("state") == "Running", 60, "run 1")
    (old_job,) = jobs_of(ray_head, first["metadata"]["uid"])
    kube.ok("DELETE", kube.path(ns, "trainingcampaigns", "again"))
    wait_for(
        lambda: kube.call("GET", kube.path(ns, "trainingcampaigns", "again")).status_code == 404,
        60,
        f"the first run gone\n{operator.log_tail()}",
    )
    wait_for(lambda: kube.trials(ns, "again") == [], 60, "its trial collected")
    wait_for(
        lambda: ray_status(ray_head, old_job["submission_id"]) == "STOPPED", 60, "the earlier job STOPPED"
    )

    # The same campaign again, suspended until a job is forged under its first attempt's very id.
    kube.create_campaign(ns, campaign("again", ray_head, phase, suspend=True))
    trial = only_trial(kube, ns, "again")
    name, uid = trial["metadata"]["name"], trial["metadata"]["uid"]
    assert name == first["metadata"]["name"] and uid != first["metadata"]["uid"]
    forged = job_name(name, 1, uid)
    r = ray_call(
        ray_head,
        "POST",
        "/api/jobs/",
        {"entrypoint": "sleep 120", "submission_id": forged, "metadata": old_job["metadata"]},
    )
    assert r.status_code == 200, r.text
    ray_call(ray_head, "POST", f"/api/jobs/{forged}/stop")
    wait_for(lambda: ray_status(ray_head, forged) == "STOPPED", 60, "the forged job STOPPED")
    kube.ok("PATCH", kube.path(ns, "trainingcampaigns", "again"), {"spec": {"suspend": False}}, MERGE_PATCH)

    def refused() -> dict[str, Any] | None:
        s = trial_status(kube, ns, name)
        return s if s.get("reason") == "JobIdentityMismatch" or s.get("attempt", 0) > 1 else None

    s = wait_for(refused, 60, f"attempt 1 refused\n{operator.log_tail()}")
    if s.get("reason") == "JobIdentityMismatch":  # unless attempt 2 already replaced it
        assert s["state"] == "Failed" and s["attempt"] == 1
        assert f"Ray job {forged} on {ray_head.address} already exists" in s["message"]
        assert f"Trial {ns}/{name} (uid {first['metadata']['uid']})" in s["message"]
    finished(kube, ns, "again", operator, ray_head)
    assert kube.state(ns, "again") == "Succeeded"
    assert_trained(trial_status(kube, ns, name), attempt=2, epochs=2)
    (ours,) = jobs_of(ray_head, uid)  # attempt 2's own; the forged one names the earlier Trial
    assert ours["submission_id"] == job_name(name, 2, uid) and ours["metadata"]["attempt"] == "2"
    assert ray_status(ray_head, forged) == ray_status(ray_head, old_job["submission_id"]) == "STOPPED"
    mismatch = [e for e in kube.events(ns, "again") if e["reason"] == "JobIdentityMismatch"]
    assert len(mismatch) == 1 and mismatch[0]["type"] == "Warning"


def test_a_job_stopped_through_the_ray_jobs_api_is_retried_and_counted(
    kube: Kube, namespaces: tuple[str, str], operator: OperatorProcess, ray_head: RayHead
) -> None:
    ns = namespaces[1]
    phase = {
        "sweep": {"trials": [{"case": "once"}, {"case": "twice"}]},
        "maxParallelTrials": 1,  # once a1, once a2 (trains), twice a1, twice a2: each stopped as it starts
        "failurePolicy": {"retries": 1, "backoffSeconds": 0, "maxFailureRate": 0.5},
    }
    kube.create_campaign(ns, campaign("outside", ray_head, phase))
    trials = wait_for(
        lambda: len(kube.trials(ns, "outside")) == 2 and kube.trials(ns, "outside"), 60, "trials"
    )
    by_case = {t["spec"]["parameters"]["case"]: t["metadata"] for t in trials}

    def stop_attempt(case: str, attempt: int) -> None:
        """As a user would: the Jobs API's stop, once the operator has recorded the launch."""
        meta = by_case[case]

        def launched() -> bool:
            s = trial_status(kube, ns, meta["name"])
            return s.get("state") == "Running" and s.get("attempt") == attempt

        wait_for(launched, 300, f"{case} attempt {attempt} launched\n{operator.log_tail()}")
        sid = job_name(meta["name"], attempt, meta["uid"])
        assert ray_status(ray_head, sid) in ("PENDING", "RUNNING"), "it ended before it could be stopped"
        assert ray_call(ray_head, "POST", f"/api/jobs/{sid}/stop").status_code == 200
        wait_for(lambda: ray_status(ray_head, sid) == "STOPPED", 60, f"{sid} STOPPED")

    stop_attempt("once", 1)
    stop_attempt("twice", 1)
    stop_attempt("twice", 2)
    finished(kube, ns, "outside", operator, ray_head)

    once = trial_status(kube, ns, by_case["once"]["name"])
    twice = trial_status(kube, ns, by_case["twice"]["name"])
    assert_trained(once, attempt=2, epochs=2)
    assert (twice["state"], twice["reason"], twice["attempt"]) == ("Failed", "JobStoppedExternally", 2), twice
    assert "stopped from outside the operator" in twice["message"]
    status = kube.campaign(ns, "outside")["status"]
    assert status["state"] == "Succeeded"  # 1 failed of 2 is exactly the 50% allowed
    assert status["phases"][0]["counts"] == {
        "total": 2,
        "pending": 0,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "stopped": 0,
        "skipped": 0,
    }
    assert status["phases"][0]["failureRate"] == pytest.approx(0.5)
    # One Ray job per attempt, no attempt submitted twice, none beyond the retries.
    for case, states in (("once", ["STOPPED", "SUCCEEDED"]), ("twice", ["STOPPED", "STOPPED"])):
        jobs = jobs_of(ray_head, by_case[case]["uid"])
        assert [j["metadata"]["attempt"] for j in jobs] == ["1", "2"]
        assert [j["submission_id"] for j in jobs] == [
            job_name(by_case[case]["name"], a, by_case[case]["uid"]) for a in (1, 2)
        ]
        wait_for(
            lambda jobs=jobs, states=states: (
                [ray_status(ray_head, j["submission_id"]) for j in jobs] == states
            ),
            60,
            f"{case}: {states}",
        )
