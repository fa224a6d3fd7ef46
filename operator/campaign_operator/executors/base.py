"""The interfaces executors offer: submit / poll / stop, in the two shapes the shells need.

Executors make no decisions: the planner says which attempt to start or stop; an executor only
starts it, reports how it ended and stops it on request. Progress (per-epoch metrics, the outcome)
travels through the trainer's reporter, not through the executor.

* `Executor` (async, per trial): the operator's cluster executors (kuberay, rayjobs). The operator
  reconciles on events and timers and asks each running trial's job how it stands.
* `BatchExecutor` (blocking, batched): the embedded runner's local Ray executor. The runner owns
  the trials' processes and sleeps until the next one ends, so `poll` waits for completions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.lifecycle.outcomes import JobOutcome, identity_mismatch

__all__ = ["BatchExecutor", "Completion", "Executor", "JobIdentityConflict", "JobOutcome"]


class JobIdentityConflict(Exception):
    """submit() found a job under the attempt's name that does not name this Trial and attempt
    (`lifecycle.outcomes.identity_mismatch`): nothing was adopted, started or stopped; `outcome` is
    the Failed outcome to record for the attempt, `ref` the job that is in the way."""

    def __init__(self, outcome: JobOutcome, ref: ExecutorRef):
        super().__init__(outcome.message)
        self.outcome = outcome
        self.ref = ref


def adopted(job: str, claimed: Mapping[str, str], uid: str, attempt: int, ref: ExecutorRef) -> ExecutorRef:
    """A job found under the attempt's name (submitted before a crash): `ref` when it names this very
    Trial and attempt; anything else raises JobIdentityConflict."""
    mismatch = identity_mismatch(job, claimed, uid, attempt)
    if mismatch is not None:
        raise JobIdentityConflict(mismatch, ref)
    return ref


class Executor(Protocol):
    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        """Start `attempt` of `trial` under the deterministic job name; a repeat adopts the job it
        started before (exactly once), and only a job whose identity names this very Trial uid and
        attempt: any other raises JobIdentityConflict."""
        ...

    async def poll(self, trial: Trial) -> JobOutcome | None:
        """How the trial's current attempt stands; None when there is nothing to add."""
        ...

    async def stop(self, trial: Trial) -> None:
        """Stop the trial's current attempt (and clean up what it left); idempotent. A job that does
        not carry the trial's identity is left alone. Callers record the trial's end before they
        stop its job: a stopped job the operator sees on a Running trial was stopped by someone else."""
        ...


@dataclass(frozen=True)
class Completion:
    """An attempt a BatchExecutor saw end."""

    trial: str
    attempt: int
    outcome: dict[str, Any] | None
    """The trainer's outcome status (camelCase Trial status), when it got that far."""
    failure: JobOutcome | None = None
    """Why the attempt ended without an outcome (unschedulable, worker crash, cancelled, ...)."""
    cancelled: bool = False
    """It ended because stop() was called."""


class BatchExecutor(Protocol):
    kind: str

    def submit(self, trial: Trial, attempt: int, *, resume: bool = False) -> ExecutorRef:
        """Start `attempt` of `trial` (its checkpoint, if any, is resumed from); idempotent per
        (trial, attempt) while that attempt runs."""
        ...

    def poll(self, timeout: float = 0.0) -> list[Completion]:
        """Attempts that ended since the last poll; waits up to `timeout` seconds for the first."""
        ...

    def stop(self, trial: str, *, graceful: bool = False) -> None:
        """Stop the trial's running attempt, if any (its poll() completion says cancelled).
        graceful: the trial has ended, so its job may unwind on its own first (and keep its worker)."""
        ...

    def running(self) -> set[str]:
        """Trials with an attempt in flight."""
        ...

    def close(self) -> None:
        """Stop everything still running and release the executor's resources."""
        ...
