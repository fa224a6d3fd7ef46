"""The pure core: decides everything about a campaign from observed Trials; performs no I/O."""

from .actions import Action, CreateTrial, EmitEvent, FinishTrial, LaunchTrial
from .plan import Plan, plan
from .semantics import semantic_problems
from .stoprules import StopDecision
from .stoprules import evaluate as evaluate_stop_rules
from .sweeps import SweepPoint, expand

__all__ = [
    "Action",
    "CreateTrial",
    "EmitEvent",
    "FinishTrial",
    "LaunchTrial",
    "Plan",
    "StopDecision",
    "SweepPoint",
    "evaluate_stop_rules",
    "expand",
    "plan",
    "semantic_problems",
]
