"""The one interface every executor offers: submit / poll / stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import ExecutorRef, Trial


@dataclass(frozen=True)
class JobOutcome:
    """What the job system says about an attempt the trainer has not reported an outcome for.

    A terminal `state` ends the trial; a non-terminal one (Running) only updates reason/message,
    e.g. a RayJob that Kueue suspended: waiting for re-admission, not a failure.
    """

    state: TrialState
    reason: str
    message: str


class Executor(Protocol):
    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        """Start `attempt` of `trial` under the deterministic job name; a repeat is a no-op."""
        ...

    async def poll(self, trial: Trial) -> JobOutcome | None:
        """How the trial's current attempt stands; None when there is nothing to add."""
        ...

    async def stop(self, trial: Trial) -> None:
        """Stop the trial's current attempt (and clean up what it left); idempotent."""
        ...
