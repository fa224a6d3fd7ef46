"""The one interface every executor offers: submit / poll / stop.

Executors make no decisions: the planner says which attempt to start or stop; an executor only
starts it, reports when it ended and stops it on request. Progress (per-epoch metrics, the outcome)
travels through the trainer's reporter, not through the executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from campaign_operator.api.trial import ExecutorRef, Trial


@dataclass(frozen=True)
class Completion:
    """An attempt the executor saw end."""

    trial: str
    attempt: int
    outcome: dict[str, Any] | None
    """The trainer's outcome status (camelCase Trial status), when it got that far."""
    error: str | None = None
    """Why the attempt ended without an outcome (worker crash, cancelled, ...)."""
    cancelled: bool = False
    """It ended because stop() was called."""


class Executor(Protocol):
    kind: str

    def submit(self, trial: Trial, attempt: int, *, resume: bool = False) -> ExecutorRef:
        """Start `attempt` of `trial` (its checkpoint, if any, is resumed from); idempotent per
        (trial, attempt) while that attempt runs."""
        ...

    def poll(self, timeout: float = 0.0) -> list[Completion]:
        """Attempts that ended since the last poll; waits up to `timeout` seconds for the first."""
        ...

    def stop(self, trial: str) -> None:
        """Stop the trial's running attempt, if any (its poll() completion says cancelled)."""
        ...

    def running(self) -> set[str]:
        """Trials with an attempt in flight."""
        ...

    def close(self) -> None:
        """Stop everything still running and release the executor's resources."""
        ...
