"""Trial: one run of one parameter set, owned by its campaign.

Per-trial detail (metrics, history, checkpoints) lives here and not in the campaign's status, so a
campaign with 10,000 trials stays far below the etcd object-size limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .base import DNS_LABEL, ApiModel, BoundedText, CelRule
from .common import (
    TASK_PATTERN,
    DatasetSpec,
    EarlyStopping,
    MetricPoint,
    NodePool,
    Objective,
    Resources,
    StopRule,
    TrialState,
)
from .meta import ObjectMeta

HISTORY_LIMIT = 100
"""Most epochs kept in status.history (older ones are thinned out, first and last always kept)."""


class Scheduling(ApiModel):
    """Where the trial's Ray pods go (cluster mode)."""

    node_pool: NodePool | None = None
    """The phase's node pool, copied so the executor needs nothing else."""
    priority_class_name: str | None = None
    """Kubernetes PriorityClass of the Ray pods."""
    queue_name: str | None = None
    """Kueue LocalQueue."""
    workload_priority_class: str | None = None
    """Kueue WorkloadPriorityClass."""


class TrialCheckpoint(ApiModel):
    """Where and how often this trial checkpoints."""

    uri: str | None = None
    """s3://bucket/prefix/<trial> or a directory; unset: the runner's default."""
    every_epochs: int = Field(1, ge=1)
    keep: int = Field(2, ge=1)


class TrialSpec(ApiModel):
    """Everything one trial needs, fully resolved. Immutable once created."""

    cel_rules = (CelRule("self == oldSelf", "spec: a Trial's spec is immutable; create a new Trial instead"),)

    campaign: str = Field(min_length=1)
    """The owning TrainingCampaign."""
    phase: str = Field(pattern=DNS_LABEL)
    """The campaign phase this trial belongs to."""
    task: str = Field(pattern=TASK_PATTERN)
    """Built-in task or user task `package.module:callable`."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Final hyperparameters: template < phase < promoted < sweep point."""
    sweep_point: dict[str, Any] = Field(default_factory=dict)
    """The sweep's own parameters (what makes this trial distinct in its phase)."""
    dataset: DatasetSpec | None = None
    epochs: int = Field(ge=1)
    batch_size: int = Field(256, ge=1)
    resources: Resources = Field(default_factory=Resources)
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    objective: Objective = Field(default_factory=Objective)
    stop_rules: list[StopRule] = Field(default_factory=list)
    """The template's and the phase's stop rules."""
    early_stopping: EarlyStopping | None = None
    checkpoint: TrialCheckpoint = Field(default_factory=TrialCheckpoint)
    image: str | None = None
    """Trainer image; unset: the operator's."""
    scheduling: Scheduling = Field(default_factory=Scheduling)
    priority: int = 0
    """The phase's priority (higher first)."""


class BestEpoch(ApiModel):
    """The trial's best epoch by its objective."""

    epoch: int = Field(ge=0)
    """The epoch (counting from 1)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Every metric at that epoch."""


class ExecutorRef(ApiModel):
    """What runs the trial: a RayJob, a Ray job submission id, or a local Ray task."""

    kind: str
    """RayJob (kuberay), RayJobSubmission (rayjobs) or a local Ray task (embedded)."""
    name: str
    """The RayJob's name or the submission id."""
    namespace: str | None = None
    """The RayJob's namespace (kuberay)."""
    attempt: int = 1
    """The attempt this job runs."""


class TrialStatus(ApiModel):
    """Observed state of a trial, written by the operator (lifecycle) and the trainer (metrics)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    state: TrialState = TrialState.PENDING
    """Pending, Running, Succeeded, Failed, Stopped or Skipped."""
    reason: BoundedText | None = None
    """CamelCase reason of the state, e.g. VarianceCollapse, EarlyStopped, NonFiniteLoss, Cancelled."""
    message: BoundedText | None = None
    """What happened, in words (bounded)."""
    attempt: int = Field(0, ge=0)
    """Attempts started so far (0: never launched)."""
    epoch: int = Field(0, ge=0)
    """The last epoch reported (0: none yet)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Latest epoch's metrics."""
    best: BestEpoch | None = None
    """Best epoch by the trial's objective."""
    history: list[MetricPoint] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    """Metrics per epoch; beyond the bound older epochs are thinned out (the first and last kept)."""
    executor_ref: ExecutorRef | None = None
    """The job of the current or last attempt."""
    checkpoint: str | None = None
    """URI of the latest checkpoint."""
    start_time: datetime | None = None
    """When the current attempt was launched."""
    completion_time: datetime | None = None
    """When the trial reached a final state (or its last attempt ended)."""


class Trial(ApiModel):
    """One run of one parameter set."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["training.campaign-operator.io/v1alpha1"] = "training.campaign-operator.io/v1alpha1"
    kind: Literal["Trial"] = "Trial"
    metadata: ObjectMeta
    spec: TrialSpec
    status: TrialStatus = Field(default_factory=TrialStatus)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def state(self) -> TrialState:
        return self.status.state
