"""Job identity and jobs ended from outside, with the real operator on a real apiserver (the test plays
KubeRay's controller, as in test_rayjob_lifecycle.py).

One phase, four trials, retries 1:
- `foreign`: someone else's RayJob already holds its first attempt's name. It is not adopted (the
  attempt fails JobIdentityMismatch, with a Warning Event), not deleted, and attempt 2 trains.
- `deleted`: its RayJob is deleted underneath it (`kubectl delete rayjob`): JobLost, retried.
- `stopped`: its Ray job is stopped underneath it twice: JobStoppedExternally, retried once, then
  counted as the failure it is.
- `rule`: a stop rule fires (the planner's backstop): the product's own stop stays Stopped, and is
  not taken for an external one once its RayJob is gone.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.trial import Trial
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import LABEL_TRIAL_UID, build_rayjob
from campaign_operator.planner.naming import job_name

from .opkit import MERGE_PATCH, RAY_PATH, AddedRecorder, Kube, kuberay_status, trainer_verdict, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

CASES = ["foreign", "deleted", "stopped", "rule"]
OTHER_UID = "0b7e5a3c-1d2f-4e6a-8c9b-7a6f5e4d3c2b"
STOPPED = {
    "jobDeploymentStatus": "Complete",
    "jobStatus": "STOPPED",
    "message": "Job was intentionally stopped.",
}


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": "ident"},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "suspend": True,  # the trials exist (with their uids) before anything launches
            "phases": [
                {
                    "name": "p",
                    "sweep": {"trials": [{"case": c} for c in CASES]},
                    # backoff: each attempt's failure stays visible a few seconds before its retry
                    "failurePolicy": {"retries": 1, "backoffSeconds": 3, "maxFailureRate": 0.5},
                    "stopRules": [
                        {"metric": "val_loss", "comparison": ">", "threshold": 100.0, "reason": "TooHigh"}
                    ],
                }
            ],
        },
    }


def test_jobs_of_other_trials_are_never_adopted_and_jobs_ended_from_outside_are_retried_and_counted(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    ns = namespace
    jobs_path = RAY_PATH.format(ns=ns)
    op = operator_factory(ns)
    kube.create_campaign(ns, manifest())
    wait_for(lambda: len(kube.trials(ns, "ident")) == 4, 60, f"4 trials\n{op.log_tail()}")
    trials = {t["spec"]["parameters"]["case"]: t for t in kube.trials(ns, "ident")}
    names = {c: t["metadata"]["name"] for c, t in trials.items()}
    uids = {c: t["metadata"]["uid"] for c, t in trials.items()}

    def job(case: str, attempt: int) -> str:
        return job_name(names[case], attempt, uids[case])

    # Someone else's RayJob under the foreign trial's first job name: labelled for another Trial of
    # that name (as a re-created campaign's or another namespace's would be), not for our campaign.
    model = TrainingCampaign.model_validate(kube.campaign(ns, "ident"))
    other = Trial.model_validate(trials["foreign"]).model_copy(deep=True)
    other.metadata.uid = OTHER_UID
    squatter = build_rayjob(other, 1, model, TrainerSettings())
    squatter["metadata"].pop("ownerReferences")
    squatter["metadata"]["name"] = job("foreign", 1)
    squatter["metadata"]["labels"] = {"trial": names["foreign"], "attempt": "1", LABEL_TRIAL_UID: OTHER_UID}
    squatter_uid = kube.ok("POST", jobs_path, squatter)["metadata"]["uid"]

    added = AddedRecorder(kube, jobs_path)
    try:
        kube.ok(
            "PATCH", kube.path(ns, "trainingcampaigns", "ident"), {"spec": {"suspend": False}}, MERGE_PATCH
        )

        def status(case: str) -> dict[str, Any]:
            return kube.ok("GET", kube.path(ns, "campaigntrials", names[case])).get("status") or {}

        def shows(case: str, state: str, reason: str | None, attempt: int) -> dict[str, Any] | None:
            s = status(case)
            ok = s.get("state") == state and s.get("attempt") == attempt and reason in (None, s.get("reason"))
            return s if ok else None

        def exists(name: str) -> bool:
            return kube.call("GET", f"{jobs_path}/{name}").status_code == 200

        def runs(case: str, attempt: int) -> None:
            name = wait_for(
                lambda: exists(job(case, attempt)) and job(case, attempt), 60, f"{case} a{attempt}"
            )
            for step in ("Initializing", "Running"):
                assert kube.patch_rayjob_status(ns, name, kuberay_status(step, name)).status_code == 200
            wait_for(lambda: shows(case, "Running", None, attempt), 30, f"{case} attempt {attempt} Running")

        # Attempt 1. The foreign trial's job is not its own: a failed attempt that says whose it is.
        s = wait_for(
            lambda: shows("foreign", "Failed", "JobIdentityMismatch", 1), 60, f"mismatch\n{op.log_tail()}"
        )
        assert (
            f"RayJob {ns}/{job('foreign', 1)} already exists and belongs to attempt 1 of Trial"
            in s["message"]
        )
        assert OTHER_UID in s["message"] and uids["foreign"] in s["message"]
        for case in ("deleted", "stopped", "rule"):
            runs(case, 1)

        kube.ok("DELETE", f"{jobs_path}/{job('deleted', 1)}")
        assert kube.patch_rayjob_status(ns, job("stopped", 1), STOPPED).status_code == 200
        epoch = {"epoch": 1, "metrics": {"val_loss": 1000.0}}  # a trainer that did not stop itself
        kube.ok(
            "PATCH",
            kube.path(ns, "campaigntrials", names["rule"]) + "/status",
            {"status": {**epoch, "history": [epoch]}},
            MERGE_PATCH,
        )
        s = wait_for(lambda: shows("deleted", "Failed", "JobLost", 1), 60, f"JobLost\n{op.log_tail()}")
        assert "was deleted, not by the operator" in s["message"]
        s = wait_for(
            lambda: shows("stopped", "Failed", "JobStoppedExternally", 1), 60, "JobStoppedExternally"
        )
        assert "stopped from outside the operator" in s["message"] and "intentionally stopped" in s["message"]
        wait_for(lambda: shows("rule", "Stopped", "TooHigh", 1), 60, f"the stop rule\n{op.log_tail()}")

        # Attempt 2 of each failed one, under its own name; the stopped one is stopped again.
        for case in ("foreign", "deleted", "stopped"):
            runs(case, 2)
        for case in ("foreign", "deleted"):
            trainer_verdict(kube, ns, names[case])
            kube.patch_rayjob_status(ns, job(case, 2), kuberay_status("Succeeded", job(case, 2)))
        assert kube.patch_rayjob_status(ns, job("stopped", 2), STOPPED).status_code == 200

        wait_for(lambda: kube.state(ns, "ident") in ("Succeeded", "Failed"), 90, f"the end\n{op.log_tail()}")
        time.sleep(3)  # anything a confused operator would still do (relaunch, delete), it does now
    finally:
        added.close()

    got = {c: (s["state"], s.get("reason"), s["attempt"]) for c in CASES for s in [status(c)]}
    assert got == {
        "foreign": ("Succeeded", "Completed", 2),
        "deleted": ("Succeeded", "Completed", 2),
        "stopped": ("Failed", "JobStoppedExternally", 2),
        "rule": ("Stopped", "TooHigh", 1),
    }
    phase = kube.campaign(ns, "ident")["status"]["phases"][0]
    assert kube.state(ns, "ident") == "Succeeded"
    assert phase["counts"] == {
        "total": 4,
        "pending": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "stopped": 1,
        "skipped": 0,
    }
    assert phase["failureRate"] == pytest.approx(0.25)

    # Every job once: nothing started twice, attempt 1 of the foreign trial never created, the rule's
    # trial never relaunched; all of ours deleted once over, the squatter left exactly as it was.
    ours = [job(c, a) for c, a in (("deleted", 1), ("stopped", 1), ("rule", 1))] + [
        job(c, 2) for c in ("foreign", "deleted", "stopped")
    ]
    assert added.duplicates() == {}
    assert sorted(added.added) == sorted([job("foreign", 1), *ours])
    assert not exists(job("rule", 2))
    left = kube.rayjobs(ns)
    assert [j["metadata"]["name"] for j in left] == [job("foreign", 1)]
    assert left[0]["metadata"]["uid"] == squatter_uid and "deletionTimestamp" not in left[0]["metadata"]
    warnings = [e for e in kube.events(ns, "ident") if e["reason"] == "JobIdentityMismatch"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
