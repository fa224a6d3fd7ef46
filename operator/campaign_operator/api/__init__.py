"""API of campaign-operator: the TrainingCampaign and Trial resources as pydantic models.

Judging manifests (`validation`, which evaluates CEL) is imported from its module: the trainer
reads these models without loading a CEL interpreter.
"""

from .base import API_VERSION, GROUP, VERSION, ApiModel, CelRule
from .campaign import (
    CampaignState,
    ExecutorKind,
    FailurePolicy,
    Gate,
    Phase,
    PhaseState,
    PhaseStatus,
    Sweep,
    TrainingCampaign,
    TrainingCampaignSpec,
    TrainingCampaignStatus,
    TrialCounts,
)
from .common import Condition, Mode, Objective, StopRule, TrialState
from .meta import ObjectMeta
from .trial import Trial, TrialSpec, TrialStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ApiModel",
    "CampaignState",
    "CelRule",
    "Condition",
    "ExecutorKind",
    "FailurePolicy",
    "Gate",
    "Mode",
    "ObjectMeta",
    "Objective",
    "Phase",
    "PhaseState",
    "PhaseStatus",
    "StopRule",
    "Sweep",
    "TrainingCampaign",
    "TrainingCampaignSpec",
    "TrainingCampaignStatus",
    "Trial",
    "TrialCounts",
    "TrialSpec",
    "TrialState",
    "TrialStatus",
]
