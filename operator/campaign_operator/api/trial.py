"""Trial: one run of one parameter set, owned by its campaign.

Per-trial detail (metrics, history, checkpoints) lives here and not in the campaign's status, so a
campaign with 10,000 trials stays far below the etcd object-size limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .base import CAMEL_CASE, DNS_LABEL, ApiModel, BoundedText, CelRule
from .common import (
    METRIC_NAME_MAX_LENGTH,
    METRICS_LIMIT,
    TASK_PATTERN,
    DatasetSpec,
    EarlyStopping,
    MetricName,
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
STATUS_BYTES_LIMIT = 128 * 1024
"""Most bytes a Trial's status takes as JSON: beyond it the history is thinned further (the same way,
first and last epoch kept). With every other field bounded (METRICS_LIMIT metrics of at most
METRIC_NAME_MAX_LENGTH characters per report, bounded strings, WARNINGS_LIMIT warnings) a Trial stays
about a tenth of etcd's 1.5 MiB object limit, whatever its trainer reports."""
WARNINGS_LIMIT = 4
"""Most entries in status.warnings (one per reason, the latest kept)."""

_BOUNDED_METRICS = (
    f"at most {METRICS_LIMIT} (the objective first, then the stop rules' and early stopping's metrics,"
    " then those held before, then by name), names of at most"
    f" {METRIC_NAME_MAX_LENGTH} characters; what a report drops is named in warnings"
)


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
    keep_metrics: list[MetricName] = Field(default_factory=list, max_length=METRICS_LIMIT)
    """Metrics the campaign reads from its trials besides their objective and stop rules (its gates',
    whens' and promotions'): a report keeps them right after those, however many a task reports."""
    early_stopping: EarlyStopping | None = None
    checkpoint: TrialCheckpoint = Field(default_factory=TrialCheckpoint)
    image: str | None = None
    """Trainer image; unset: the operator's."""
    scheduling: Scheduling = Field(default_factory=Scheduling)
    priority: int = 0
    """The phase's priority (higher first)."""
    inputs: dict[str, str] = Field(default_factory=dict, json_schema_extra={"maxProperties": 8})
    """The phase's inputs: name -> outputs URI of the matched trial of an earlier phase."""


class BestEpoch(ApiModel):
    """The trial's best epoch by its objective."""

    epoch: int = Field(ge=0)
    """The epoch (counting from 1)."""
    metrics: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": METRICS_LIMIT},
        description=f"The metrics at that epoch: {_BOUNDED_METRICS}.",
    )


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


class TrialWarning(ApiModel):
    """Something the status could not hold as reported (the trial itself went on)."""

    reason: str = Field(pattern=CAMEL_CASE, max_length=64)
    """MetricsDropped (a report had more metrics, or longer names, than the status keeps) or
    HistoryTrimmed (the history was thinned below its count bound to stay within the byte bound)."""
    message: BoundedText
    """How many were dropped and which (the first few names), or how many epochs the history keeps."""
    epoch: int = Field(0, ge=0)
    """The latest epoch it happened at."""


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
    metrics: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": METRICS_LIMIT},
        description=f"Latest epoch's metrics: {_BOUNDED_METRICS}.",
    )
    best: BestEpoch | None = None
    """Best epoch by the trial's objective."""
    history: list[MetricPoint] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=(
            "Metrics per epoch; beyond the bound older epochs are thinned out (the first and last kept),"
            f" and further while the whole status would take more than {STATUS_BYTES_LIMIT // 1024} KiB"
            " as JSON (a HistoryTrimmed warning says how many epochs it keeps)."
        ),
    )
    warnings: list[TrialWarning] = Field(default_factory=list, max_length=WARNINGS_LIMIT)
    """What the status could not hold as reported: dropped metrics (MetricsDropped), a history
    thinned to fit the status's byte bound (HistoryTrimmed). One per reason, the latest kept."""
    executor_ref: ExecutorRef | None = None
    """The job of the current or last attempt."""
    checkpoint: str | None = None
    """URI of the latest checkpoint."""
    outputs: str | None = None
    """URI of the directory holding what the trial produced (its model, its predictions): what a
    later phase's trials receive as inputs."""
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
