"""What the planner asks the shell (operator or embedded runner) to do. Plain data, applied in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial


@dataclass(frozen=True)
class CreateTrial:
    """Create this Trial (and, when its status is not Pending, write that status too)."""

    trial: Trial


@dataclass(frozen=True)
class LaunchTrial:
    """Start attempt `attempt` of a Pending (or retry-due) trial; idempotent per (trial, attempt)."""

    name: str
    attempt: int


@dataclass(frozen=True)
class FinishTrial:
    """End a trial in `state` (stopping its job first when `stop_executor`)."""

    name: str
    state: TrialState
    reason: str
    message: str
    stop_executor: bool


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the campaign (specific CamelCase reason)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = CreateTrial | LaunchTrial | FinishTrial | EmitEvent
