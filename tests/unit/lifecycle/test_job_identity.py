"""Job identity and jobs that ended from outside: the pure parts.

An attempt's job is named from its Trial's uid and attempt, carries that identity, and is adopted only
when the identity is this very Trial's; a job stopped, deleted or lost while its trial runs is a failure
of the attempt (the operator records its own stops before it stops a job), retried and counted.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import TrialStatus
from campaign_operator.lifecycle.outcomes import (
    JOB_IDENTITY_MISMATCH,
    JOB_LOST,
    JOB_STOPPED_EXTERNALLY,
    from_ray_job,
    from_rayjob,
    identity_mismatch,
)
from campaign_operator.lifecycle.transitions import attempt_over
from campaign_operator.lifecycle.wire import JOB_TRIAL_UID, job_identity
from campaign_operator.planner import LaunchTrial
from campaign_operator.planner.naming import RAYJOB_NAME_LIMIT, job_name, trial_name

from ..planner.sim import World, campaign

pytestmark = pytest.mark.unit

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
UID = "6f1c2d9e-8a51-4f3e-9b7a-0c2d4e6f8a10"
OTHER_UID = "0b7e5a3c-1d2f-4e6a-8c9b-7a6f5e4d3c2b"
campaigns = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,60}[a-z0-9])?", fullmatch=True)
phases = st.from_regex(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", fullmatch=True)


# -- names -----------------------------------------------------------------------------------------
@given(campaigns, phases, st.uuids(), st.integers(1, 21))
def test_job_names_from_the_uid_are_rayjob_names_within_kuberays_limit(campaign_, phase, uid, attempt):
    trial = trial_name(campaign_, phase, {"seed": 1})
    name = job_name(trial, attempt, str(uid))
    assert DNS_1035.match(name), name
    assert len(name) <= RAYJOB_NAME_LIMIT
    assert name.endswith(f"-a{attempt}")
    assert name == job_name(trial, attempt, str(uid))  # deterministic: a repeated launch finds it


def test_the_same_trial_name_in_two_namespaces_or_incarnations_gets_two_job_names():
    trial = trial_name("nba-deep", "exploration", {"alpha": 0.25})
    uids = [str(uuid.uuid4()) for _ in range(200)]
    assert len({job_name(trial, 1, u) for u in uids}) == len(uids)
    assert job_name(trial, 1, UID) != job_name(trial, 2, UID)


def test_job_names_stay_readable():
    trial = trial_name("nba-deep", "exploration", {"alpha": 0.25})
    name = job_name(trial, 3, UID)
    assert name.startswith("nba-deep-exploration-") and name.endswith("-a3")
    long = trial_name("c" * 60, "phase", {})
    assert job_name(long, 21, UID).startswith("c" * 20)


def test_without_a_uid_the_embedded_runner_keeps_its_names():
    assert job_name("t-abc", 2) == "t-abc-a2"


# -- identity --------------------------------------------------------------------------------------
def test_only_a_job_naming_this_very_trial_uid_and_attempt_is_adopted():
    ours = job_identity("t", "ns-a", UID, 2)
    assert identity_mismatch("Ray job j", ours, UID, 2) is None
    for claimed, words in (
        (job_identity("t", "ns-b", OTHER_UID, 2), f"attempt 2 of Trial ns-b/t (uid {OTHER_UID})"),
        (job_identity("t", "ns-a", UID, 1), f"attempt 1 of Trial ns-a/t (uid {UID})"),
        ({}, "carries no campaign-operator identity"),
        ({"trial": "t", "attempt": "2"}, "carries no campaign-operator identity"),
    ):
        out = identity_mismatch("Ray job j", claimed, UID, 2)
        assert out is not None and (out.state, out.reason) == (TrialState.FAILED, JOB_IDENTITY_MISMATCH)
        assert out.message.startswith("Ray job j already exists and belongs to ")
        assert words in out.message and f"not to attempt 2 of this Trial (uid {UID})" in out.message
        assert "neither adopted nor stopped" in out.message


def test_a_foreign_claim_is_quoted_bounded():
    claimed = {JOB_TRIAL_UID: "u" * 5000, "trial": "t" * 5000, "namespace": "n" * 5000, "attempt": "9" * 99}
    out = identity_mismatch("RayJob j", claimed, UID, 1)
    assert out is not None and len(out.message) < 600


# -- stopped, deleted, lost ------------------------------------------------------------------------
def rayjob(deployment: str, job: str = "", **meta: str) -> dict[str, object]:
    return {
        "metadata": {"name": "t-1", **meta},
        "status": {"jobDeploymentStatus": deployment, "jobStatus": job},
    }


def test_a_stopped_ray_job_is_a_failure_of_the_attempt_not_a_deliberate_stop():
    out = from_ray_job(
        {"status": "STOPPED", "submission_id": "s-a1", "message": "Job was intentionally stopped."}
    )
    assert out is not None and (out.state, out.reason) == (TrialState.FAILED, JOB_STOPPED_EXTERNALLY)
    assert out.message.startswith("Ray job s-a1 was stopped from outside the operator")
    assert out.message.endswith("Job was intentionally stopped.")
    out = from_rayjob(rayjob("Complete", "STOPPED"), was_suspended=False)
    assert out is not None and (out.state, out.reason) == (TrialState.FAILED, JOB_STOPPED_EXTERNALLY)
    assert "RayJob t-1" in out.message and "STOPPED" in out.message


def test_a_rayjob_deleted_under_a_running_attempt_is_lost():
    for status in (rayjob("Running", "RUNNING"), rayjob("Initializing"), rayjob("Suspended")):
        status["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # type: ignore[index]
        out = from_rayjob(status, was_suspended=False)
        assert out is not None and (out.state, out.reason) == (TrialState.FAILED, JOB_LOST)
        assert "RayJob t-1 is being deleted, not by the operator" in out.message
    # An ending KubeRay already reported says more than the deletion that follows it.
    failed = rayjob("Failed", "FAILED", deletionTimestamp="2026-01-01T00:00:00Z")
    failed["status"]["reason"] = "AppFailed"  # type: ignore[index]
    out = from_rayjob(failed, was_suspended=False)
    assert out is not None and out.reason == "AppFailed"


@pytest.mark.parametrize(
    ("state", "current", "attempt", "over"),
    [
        (TrialState.RUNNING, 2, 2, False),
        (TrialState.RUNNING, 2, 1, True),
        (TrialState.PENDING, 0, 1, False),  # submitted just before a crash: the relaunch adopts it
        (TrialState.FAILED, 1, 2, False),  # the retry's job, likewise
        (TrialState.FAILED, 1, 1, True),
        (TrialState.STOPPED, 1, 1, True),
        (TrialState.SUCCEEDED, 1, 1, True),
    ],
)
def test_attempt_over(state: TrialState, current: int, attempt: int, over: bool):
    assert attempt_over(TrialStatus(state=state, attempt=current), attempt) is over


# -- the planner retries and counts them like any failure ------------------------------------------
@pytest.mark.parametrize("reason", [JOB_STOPPED_EXTERNALLY, JOB_LOST, JOB_IDENTITY_MISMATCH])
def test_jobs_ended_from_outside_are_retried_then_counted(reason: str):
    w = World(
        campaign(
            {
                "phases": [
                    {"name": "a", "failurePolicy": {"retries": 1, "backoffSeconds": 0, "maxFailureRate": 1.0}}
                ]
            }
        )
    )
    w.step()
    (t,) = w.running()
    w.finish(t, TrialState.FAILED)
    t.status.reason = reason
    w.now += timedelta(seconds=1)
    p = w.step()
    assert [a for a in p.actions if isinstance(a, LaunchTrial)] == [LaunchTrial(t.name, 2)]
    assert p.status.phases[0].counts.failed == 0
    w.finish(t, TrialState.FAILED)
    t.status.reason = reason
    w.now += timedelta(seconds=1)
    p = w.step()
    counts = p.status.phases[0].counts
    assert (counts.failed, counts.stopped, p.status.phases[0].failure_rate) == (1, 0, 1.0)
    assert not any(isinstance(a, LaunchTrial) for a in p.actions)
