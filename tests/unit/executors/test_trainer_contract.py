"""What the cluster executors hand the trainer (entrypoint, trial document) and how they read a job
that ended without the trainer's verdict."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.executors.common import TrainerSettings, entrypoint, trial_document
from campaign_operator.lifecycle.outcomes import from_ray_job, from_rayjob
from campaign_operator.lifecycle.wire import TRIAL_ENV
from campaign_trainer.config import parse_trial

pytestmark = pytest.mark.unit

# What a shell would act on anywhere in a word (whitespace separates the words).
SHELL_SPECIAL = set("$`\\\"'|&;<>(){}[]*?~!#")


def trial(**parameters: Any) -> Trial:
    return Trial.model_validate(
        {
            "metadata": {"name": "t-1", "namespace": "team-a"},
            "spec": {
                "campaign": "c",
                "phase": "p",
                "task": "regression",
                "epochs": 1,
                "parameters": parameters,
            },
            "status": {"state": "Running", "attempt": 2},
        }
    )


def test_the_entrypoint_is_plain_words_that_name_the_trial_variable() -> None:
    line = entrypoint(TrainerSettings(python="/opt/venv/bin/python"))
    assert not SHELL_SPECIAL & set(line)
    assert (
        shlex.split(line)
        == line.split(" ")
        == [
            "/opt/venv/bin/python",
            "-m",
            "campaign_trainer",
            "run",
            "--trial-env",
            TRIAL_ENV,
            "--reporter",
            "kubernetes",
        ]
    )


def test_the_trial_document_survives_double_quotes_and_reads_back_whole() -> None:
    t = trial(note="$HOME `id` \"q\" 'a' \\ é", lr=1e-05)
    doc = trial_document(t)
    assert not {"$", "`"} & set(doc) and doc.isascii()
    wire = t.to_wire()
    del wire["status"]  # the trainer reports a verdict; attempt and lifecycle stay the operator's
    assert json.loads(doc) == wire
    cfg = parse_trial(doc)
    assert cfg.parameters == {"note": "$HOME `id` \"q\" 'a' \\ é", "lr": 1e-05}


def kuberay_job(deployment: str, job: str) -> dict[str, Any]:
    return {"metadata": {"name": "t-1-a2"}, "status": {"jobDeploymentStatus": deployment, "jobStatus": job}}


def test_a_job_that_succeeded_without_the_trainers_outcome_failed() -> None:
    for out, job in (
        (from_rayjob(kuberay_job("Complete", "SUCCEEDED"), was_suspended=False), "RayJob t-1-a2"),
        (from_ray_job({"status": "SUCCEEDED", "submission_id": "t-1-a2"}), "Ray job t-1-a2"),
    ):
        assert out is not None
        assert (out.state, out.reason) == (TrialState.FAILED, "OutcomeNotReported")
        assert out.message.startswith(f"{job} succeeded but the trainer never reported its outcome")
        assert "ServiceAccount" in out.message and "RBAC" in out.message


def test_other_endings_keep_their_meaning() -> None:
    # The operator records its own stops before it stops a job: a STOPPED job of a Running trial
    # was stopped from outside, a failure of the attempt.
    stopped = from_rayjob(kuberay_job("Complete", "STOPPED"), was_suspended=False)
    assert stopped is not None and (stopped.state, stopped.reason) == (
        TrialState.FAILED,
        "JobStoppedExternally",
    )
    failed = from_ray_job({"status": "FAILED", "submission_id": "s", "driver_exit_code": 4})
    assert failed is not None and (failed.state, failed.reason) == (TrialState.FAILED, "AppFailed")
    assert failed.message.endswith("(exit code 4)")
