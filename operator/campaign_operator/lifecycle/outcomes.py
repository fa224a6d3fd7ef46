"""How a job system's view of an attempt becomes a trial outcome: one classification for KubeRay,
the Ray Jobs API and the embedded runner's local Ray.

Only consulted for trials the trainer left Running: the trainer reports its own verdict before its
job ends, so a job that succeeded without one is a failure (OutcomeNotReported), never a success.

Nor has the product itself stopped such an attempt: every stop it asks for (a stop rule, a failed
phase's cancellation, the campaign's deletion) records the trial's end first and stops its job after.
So a job seen STOPPED, deleted or gone here was stopped by someone else (the Ray Jobs API, `kubectl
delete rayjob`, a lost Ray head): a failure of that attempt (JobStoppedExternally, JobLost), retried
and counted like any other, never a deliberate Stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaign_operator.api.common import TrialState

from .wire import JOB_ATTEMPT, JOB_NAMESPACE, JOB_TRIAL, JOB_TRIAL_UID

OUTCOME_NOT_REPORTED = "OutcomeNotReported"
UNSCHEDULABLE = "Unschedulable"
EXECUTOR_ERROR = "ExecutorError"
NON_FINITE_LOSS = "NonFiniteLoss"
"""The trainer's verdict on a loss that went NaN/inf: retrying the same parameters would not help."""
DATA_ERROR = "DataError"
"""The trainer's verdict on the trial's data file (missing, empty, not CSV/Parquet, unparseable, a
column missing): the same file fails the same way again, so it is not retried."""
INPUT_MISSING = "InputMissing"
"""An input the trial consumes (an earlier phase's outputs, spec.inputs) is not there: not retried."""
POINT_LABEL_LIMIT = 160
"""Characters of a trial's identifying parameters a message quotes."""
JOB_STOPPED_EXTERNALLY = "JobStoppedExternally"
JOB_LOST = "JobLost"
JOB_IDENTITY_MISMATCH = "JobIdentityMismatch"
SUSPENDED, RESUMED = "Suspended", "Resumed"
MESSAGE_LIMIT = 900
"""Characters of a job system's message kept (its tail: where the error is); status messages stay
far below the CRD's bound."""
CLAIM_LIMIT = 80
"""Characters of each identity field a foreign job claims that a message quotes."""


@dataclass(frozen=True)
class JobOutcome:
    """What the job system says about an attempt the trainer has not reported an outcome for.

    A terminal `state` ends the trial; a non-terminal one (Running) only updates reason/message,
    e.g. a RayJob that Kueue suspended: waiting for re-admission, not a failure.
    """

    state: TrialState
    reason: str
    message: str


def point_label(point: Mapping[str, Any]) -> str:
    """A trial's identifying parameters (its sweep point) as a user names them, e.g.
    ``symbol=LICI window=2022-01-01..2022-06-30``: a mapping by its ``name``, else its values joined
    by ``..``; bounded (a message quotes it)."""
    text = " ".join(f"{k}={_point_value(v)}" for k, v in point.items())
    return text if len(text) <= POINT_LABEL_LIMIT else text[: POINT_LABEL_LIMIT - 3] + "..."


def _point_value(value: Any) -> str:
    if isinstance(value, Mapping):
        if "name" in value:
            return str(value["name"])
        return "..".join(_point_value(v) for v in value.values())
    if isinstance(value, list | tuple):
        return ",".join(_point_value(v) for v in value)
    return str(value)


def outcome_not_reported(job: str) -> JobOutcome:
    """A job that succeeded while its Trial is still Running: the trainer never wrote its verdict
    (no RBAC, an entrypoint that never ran it, ...). Without that verdict there are no metrics for
    gates or promotion, so the attempt failed, whatever the job's exit code says."""
    return JobOutcome(
        TrialState.FAILED,
        OUTCOME_NOT_REPORTED,
        f"{job} succeeded but the trainer never reported its outcome into the Trial's status:"
        " check the trainer's ServiceAccount and RBAC (patch campaigntrials/status) and its logs",
    )


def unschedulable(job: str, missing: list[str]) -> JobOutcome:
    """Resources no node offers: the job would queue forever."""
    return JobOutcome(TrialState.FAILED, UNSCHEDULABLE, f"{job} needs {', '.join(missing)}")


def executor_error(error: BaseException) -> JobOutcome:
    """The attempt's process ended without the trainer's verdict (worker crash, a task that raised
    outside the trainer)."""
    text = " ".join(str(error).split())[:400]
    return JobOutcome(TrialState.FAILED, EXECUTOR_ERROR, f"{type(error).__name__}: {text}")


def stopped_externally(job: str, detail: str = "") -> JobOutcome:
    """The attempt's job was stopped, and not by the product (see the module docstring)."""
    text = f"{job} was stopped from outside the operator (not by a stop rule, a cancellation or a deletion)"
    if detail:
        text += f": {detail[-MESSAGE_LIMIT:]}"
    return JobOutcome(TrialState.FAILED, JOB_STOPPED_EXTERNALLY, text)


def job_lost(job: str, where: str) -> JobOutcome:
    """The attempt's job is gone (deleted, or its Ray cluster forgot it) while the trial ran."""
    return JobOutcome(TrialState.FAILED, JOB_LOST, f"{job} {where}; the attempt is lost")


def identity_mismatch(job: str, claimed: Mapping[str, str], uid: str, attempt: int) -> JobOutcome | None:
    """None when `claimed` (the identity a job found under our job name carries: its Ray job metadata,
    its RayJob labels) names this very Trial uid and attempt; else the Failed outcome that says whose
    it is. Such a job is neither adopted nor stopped: it belongs to something else."""
    if claimed.get(JOB_TRIAL_UID) == uid and claimed.get(JOB_ATTEMPT) == str(attempt):
        return None
    if claimed.get(JOB_TRIAL_UID):
        shown = {k: str(claimed.get(k) or "?")[:CLAIM_LIMIT] for k in (JOB_TRIAL, JOB_TRIAL_UID, JOB_ATTEMPT)}
        where = f"{str(claimed[JOB_NAMESPACE])[:CLAIM_LIMIT]}/" if claimed.get(JOB_NAMESPACE) else ""
        owner = (
            f"attempt {shown[JOB_ATTEMPT]} of Trial {where}{shown[JOB_TRIAL]} (uid {shown[JOB_TRIAL_UID]})"
        )
    else:
        owner = "no Trial (it carries no campaign-operator identity)"
    return JobOutcome(
        TrialState.FAILED,
        JOB_IDENTITY_MISMATCH,
        f"{job} already exists and belongs to {owner}, not to attempt {attempt} of this Trial (uid {uid}):"
        " it was neither adopted nor stopped",
    )


def from_rayjob(rayjob: dict[str, Any], was_suspended: bool) -> JobOutcome | None:
    """KubeRay's RayJob status -> an outcome; None when there is nothing to add.

    A RayJob being deleted while its attempt runs was deleted by someone else (`kubectl delete`):
    the operator deletes a RayJob only once it has recorded the attempt's end."""
    outcome = _from_rayjob_status(rayjob, was_suspended)
    if (outcome is None or not outcome.state.is_terminal) and rayjob.get("metadata", {}).get(
        "deletionTimestamp"
    ):
        return job_lost(
            f"RayJob {rayjob['metadata'].get('name', '?')}", "is being deleted, not by the operator"
        )
    return outcome


def _from_rayjob_status(rayjob: dict[str, Any], was_suspended: bool) -> JobOutcome | None:
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or ""
    job = status.get("jobStatus") or ""
    reason = status.get("reason") or ""
    message = (status.get("message") or "")[-MESSAGE_LIMIT:]
    name = f"RayJob {rayjob.get('metadata', {}).get('name', '?')}"
    if deployment == "Complete":
        if job == "SUCCEEDED":
            return outcome_not_reported(name)
        if job == "STOPPED":
            return stopped_externally(name, f"KubeRay reports jobStatus STOPPED. {message}".strip())
        return JobOutcome(
            TrialState.FAILED, reason or "AppFailed", message or f"{name} finished with job status {job}"
        )
    if deployment == "Failed":
        # DeadlineExceeded, PreRunningDeadlineExceeded, SubmissionFailed, AppFailed, ... : KubeRay's
        # reason is already CamelCase and specific; keep it and its message.
        why = reason or "JobDeploymentFailed"
        return JobOutcome(TrialState.FAILED, why, message or f"{name} failed ({why})")
    if deployment == "ValidationFailed":
        return JobOutcome(TrialState.FAILED, "ValidationFailed", message or f"KubeRay rejected {name}")
    if deployment in ("Suspended", "Suspending"):
        # Kueue holds the job (not admitted yet, or preempted): not a failure. The RayJob stays, so
        # Kueue re-admits it in its queue position; the trial keeps its slot meanwhile.
        return JobOutcome(
            TrialState.RUNNING,
            SUSPENDED,
            f"{name} is suspended (Kueue: not admitted yet, or preempted); it resumes on admission",
        )
    if was_suspended:
        return JobOutcome(TrialState.RUNNING, RESUMED, f"{name} is {deployment or 'starting'}")
    return None


def from_ray_job(details: dict[str, Any]) -> JobOutcome | None:
    """The Ray Jobs API's JobDetails -> an outcome; None while the job runs."""
    status = details.get("status")
    name = f"Ray job {details.get('submission_id') or '?'}"
    message = (details.get("message") or "").strip()
    if status == "SUCCEEDED":
        return outcome_not_reported(name)
    if status == "STOPPED":
        return stopped_externally(name, message)
    if status != "FAILED":
        return None
    error = details.get("error_type") or ""
    if error in ("JOB_ENTRYPOINT_COMMAND_ERROR", ""):
        reason = "AppFailed"
    elif "START" in error or "SUPERVISOR" in error:
        reason = "SubmissionFailed"
    else:
        reason = "".join(w.capitalize() for w in error.lower().split("_")) or "JobFailed"
    code = details.get("driver_exit_code")
    suffix = f" (exit code {code})" if code is not None else ""
    return JobOutcome(TrialState.FAILED, reason, (message or f"{name} failed")[-MESSAGE_LIMIT:] + suffix)
