"""How a job system's view of an attempt becomes a trial outcome: one classification for KubeRay,
the Ray Jobs API and the embedded runner's local Ray.

Only consulted for trials the trainer left Running: the trainer reports its own verdict before its
job ends, so a job that succeeded without one is a failure (OutcomeNotReported), never a success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaign_operator.api.common import TrialState

OUTCOME_NOT_REPORTED = "OutcomeNotReported"
UNSCHEDULABLE = "Unschedulable"
EXECUTOR_ERROR = "ExecutorError"
NON_FINITE_LOSS = "NonFiniteLoss"
"""The trainer's verdict on a loss that went NaN/inf: retrying the same parameters would not help."""
JOB_STOPPED = "JobStopped"
SUSPENDED, RESUMED = "Suspended", "Resumed"
MESSAGE_LIMIT = 900
"""Characters of a job system's message kept (its tail: where the error is); status messages stay
far below the CRD's bound."""


@dataclass(frozen=True)
class JobOutcome:
    """What the job system says about an attempt the trainer has not reported an outcome for.

    A terminal `state` ends the trial; a non-terminal one (Running) only updates reason/message,
    e.g. a RayJob that Kueue suspended: waiting for re-admission, not a failure.
    """

    state: TrialState
    reason: str
    message: str


def outcome_not_reported(job: str) -> JobOutcome:
    """A job that succeeded while its Trial is still Running: the trainer never wrote its verdict
    (no RBAC, an entrypoint that never ran it, ...). Without that verdict there are no metrics for
    gates or promotion, so the attempt failed, whatever the job's exit code says."""
    return JobOutcome(
        TrialState.FAILED,
        OUTCOME_NOT_REPORTED,
        f"{job} succeeded but the trainer never reported its outcome into the Trial's status:"
        " check the trainer's ServiceAccount and RBAC (patch trials/status) and its logs",
    )


def unschedulable(job: str, missing: list[str]) -> JobOutcome:
    """Resources no node offers: the job would queue forever."""
    return JobOutcome(TrialState.FAILED, UNSCHEDULABLE, f"{job} needs {', '.join(missing)}")


def executor_error(error: BaseException) -> JobOutcome:
    """The attempt's process ended without the trainer's verdict (worker crash, a task that raised
    outside the trainer)."""
    text = " ".join(str(error).split())[:400]
    return JobOutcome(TrialState.FAILED, EXECUTOR_ERROR, f"{type(error).__name__}: {text}")


def from_rayjob(rayjob: dict[str, Any], was_suspended: bool) -> JobOutcome | None:
    """KubeRay's RayJob status -> an outcome; None when there is nothing to add."""
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
            return JobOutcome(TrialState.STOPPED, JOB_STOPPED, f"{name} was stopped")
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
        return JobOutcome(TrialState.STOPPED, JOB_STOPPED, message or f"{name} was stopped")
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
