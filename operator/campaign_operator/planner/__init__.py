"""The pure core: decides everything about a campaign from observed Trials; performs no I/O."""

from campaign_operator.lifecycle.stoprules import StopDecision
from campaign_operator.lifecycle.stoprules import evaluate as evaluate_stop_rules

from .actions import Action, CreateTrial, EmitEvent, FinishTrial, LaunchTrial
from .plan import Plan, plan
from .semantics import semantic_problems
from .sweeps import SweepPoint, expand
from .trials import PlannedTrial, phase_trials, skip_reason

__all__ = [
    "Action",
    "CreateTrial",
    "EmitEvent",
    "FinishTrial",
    "LaunchTrial",
    "Plan",
    "PlannedTrial",
    "StopDecision",
    "SweepPoint",
    "evaluate_stop_rules",
    "expand",
    "phase_trials",
    "plan",
    "semantic_problems",
    "skip_reason",
]
