"""SIGKILL the operator at several points of a campaign and restart it: no Trial is created twice,
no job is submitted twice, and the final counts are exact."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .opkit import GROUP_PATH, RAY_PATH, AddedRecorder, FakeKubeRay, Kube, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

FLAKY = {1, 5}  # these trials of phase a fail their first attempt and are retried once


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": "rs"},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "maxParallelTrials": 3,
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "a",
                    "sweep": {"grid": {"x": list(range(8))}},
                    "failurePolicy": {"retries": 1, "backoffSeconds": 0, "maxFailureRate": 0.0},
                },
                {
                    "name": "b",
                    "dependsOn": ["a"],
                    "sweep": {"seeds": {"count": 6}},
                    "skipWhen": [{"expression": "params.seed == 3", "reason": "NotThisSeed"}],
                },
            ],
        },
    }


def test_sigkill_mid_campaign_neither_duplicates_nor_loses_work(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    trials_seen = AddedRecorder(kube, GROUP_PATH.format(ns=namespace, plural="campaigntrials"))
    jobs_seen = AddedRecorder(kube, RAY_PATH.format(ns=namespace))
    trial_x: dict[str, int] = {}

    def verdict(job: dict[str, Any]) -> str:
        trial = job["metadata"]["labels"]["trial"]
        if trial not in trial_x:
            params = kube.ok("GET", kube.path(namespace, "campaigntrials", trial))["spec"]["parameters"]
            trial_x[trial] = params.get("x", -1)
        first = job["metadata"]["labels"]["attempt"] == "1"
        return "AppFailed" if first and trial_x[trial] in FLAKY else "Succeeded"

    fake = FakeKubeRay(kube, namespace, verdict, run_seconds=1.5)
    op = operator_factory(namespace)
    kills = 0
    try:
        kube.create_campaign(namespace, manifest())
        # Kill points: while phase a's trials are being created and launched, mid-way through its
        # jobs (a retry in flight), as phase b starts, and while phase b runs.
        points = [
            lambda: trials_seen.total() >= 1,
            lambda: jobs_seen.total() >= 4,
            lambda: jobs_seen.total() >= 8,
            lambda: trials_seen.total() >= 9,
            lambda: jobs_seen.total() >= 12,
        ]
        for point in points:
            wait_for(point, 90, f"kill point {kills + 1}\n{op.log_tail()}", interval=0.05)
            op.kill()
            kills += 1
            time.sleep(0.5)
            op.start()
        wait_for(
            lambda: kube.state(namespace, "rs") in ("Succeeded", "Failed"), 180, f"the end\n{op.log_tail()}"
        )
        time.sleep(2)  # anything a confused operator would still do, it does now
    finally:
        fake.close()
        trials_seen.close()
        jobs_seen.close()

    status = kube.campaign(namespace, "rs")["status"]
    assert status["state"] == "Succeeded", status
    assert kills == 5 and op.starts == 6
    assert trials_seen.duplicates() == {}, "a Trial was created twice"
    assert jobs_seen.duplicates() == {}, "a RayJob was submitted twice"
    assert len(trials_seen.added) == 8 + 6
    assert len(jobs_seen.added) == 8 + len(FLAKY) + 5  # one per attempt: retries, no skipped seed
    a, b = status["phases"]
    assert (a["counts"]["succeeded"], a["counts"]["failed"], a["counts"]["total"]) == (8, 0, 8)
    assert (b["counts"]["succeeded"], b["counts"]["skipped"], b["counts"]["total"]) == (5, 1, 6)
    attempts = sorted(
        t["status"]["attempt"] for t in kube.trials(namespace, "rs") if t["spec"]["phase"] == "a"
    )
    assert attempts == [1] * 6 + [2] * 2
