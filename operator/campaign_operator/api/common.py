"""Types shared by TrainingCampaign and Trial."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from .base import CAMEL_CASE, DNS_LABEL, USER_REASON, ApiModel, CelRule

BUILTIN_TASKS = ("regression", "cql", "sequence")
TASK_PATTERN = r"^(regression|cql|sequence|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$"


class Mode(StrEnum):
    MIN = "min"
    MAX = "max"


class Objective(ApiModel):
    """The metric that ranks trials: it picks each phase's best trial and drives promotion."""

    metric: str = Field("val_loss", min_length=1)
    """Name of a metric the trainer reports, e.g. val_loss, r2, sharpe."""
    mode: Mode = Mode.MIN
    """min: lower is better; max: higher is better."""


class SyntheticData(ApiModel):
    """The task's built-in synthetic generator, deterministic by seed."""

    samples: int = Field(2048, ge=16, le=10_000_000)
    """Number of generated samples (train + validation)."""
    seed: int = Field(0, ge=0)
    """Seed of the generator (independent of the model seed)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Task-specific generator options (e.g. features, noise, symbols)."""


class DatasetSpec(ApiModel):
    """Where a trial's data comes from: the built-in synthetic generator or a CSV/Parquet file."""

    cel_rules = (
        CelRule(
            "has(self.synthetic) != has(self.path)",
            "dataset: set exactly one of synthetic or path",
        ),
        CelRule(
            "!has(self.path) || has(self.target)",
            "dataset.target: required with dataset.path (the name of the target column)",
            ".target",
        ),
    )

    synthetic: SyntheticData | None = None
    """Use the task's synthetic generator."""
    path: str | None = Field(None, pattern=r"^(s3://[a-z0-9][a-z0-9.\-]{1,62}/.+|/.+|\./.+|[^:]+)$")
    """Local path or s3://bucket/key of a CSV or Parquet file."""
    format: Literal["csv", "parquet"] | None = None
    """File format; inferred from the file suffix when omitted."""
    target: str | None = None
    """Target column (required with path)."""
    features: list[str] | None = None
    """Feature columns; default: every column except the target."""


class Resources(ApiModel):
    """What one trial needs. Fractional GPUs pack several trials onto one device (no memory isolation)."""

    cpu: float = Field(1.0, gt=0, le=512)
    """CPUs per worker (Ray logical CPUs; may be fractional)."""
    gpu: float = Field(0.0, ge=0, le=16)
    """GPUs per worker; a fraction such as 0.25 shares a device between trials."""
    memory: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    """Memory per worker as a Kubernetes quantity, e.g. 4Gi."""
    workers: int = Field(0, ge=0, le=1024)
    """Ray Train workers. 0 runs the training loop in the trial's own process (Ray Train local mode)."""


class Comparison(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class StopAction(StrEnum):
    STOP = "Stop"
    FAIL = "Fail"


class StopRule(ApiModel):
    """Ends a trial early when a reported metric crosses a threshold (e.g. variance collapse)."""

    metric: str = Field(min_length=1)
    """Metric to watch, e.g. variance_ratio."""
    comparison: Comparison
    """How the metric is compared with the threshold; the rule fires when `metric <comparison> threshold`."""
    threshold: float
    """The threshold."""
    after_epoch: int = Field(0, ge=0)
    """The rule is only checked for epochs after this one (epochs count from 1)."""
    patience: int = Field(1, ge=1, le=10_000)
    """Consecutive epochs the condition must hold before the rule fires."""
    action: StopAction = StopAction.STOP
    """Stop: the trial ends as Stopped (not a failure). Fail: the trial ends as Failed."""
    reason: str = Field(pattern=USER_REASON, max_length=128)
    """UpperCamelCase reason recorded on the trial, e.g. VarianceCollapse."""
    message: str | None = None
    """Human-readable explanation added to the trial's message."""


class EarlyStopping(ApiModel):
    """Patience-based early stopping: a trial that stops improving ends as Succeeded/EarlyStopped."""

    metric: str = Field(min_length=1)
    """Metric that must keep improving, e.g. r2."""
    mode: Mode = Mode.MIN
    """min or max: the direction of improvement."""
    patience: int = Field(5, ge=1, le=100_000)
    """Epochs without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0)
    """Smallest change that counts as an improvement."""


class CheckpointPolicy(ApiModel):
    """How often a trial checkpoints; the location comes from spec.storage."""

    every_epochs: int = Field(1, ge=1, le=100_000)
    """Checkpoint every k epochs (and at the end)."""
    keep: int = Field(2, ge=1, le=100)
    """Checkpoints to keep per trial."""


class Toleration(ApiModel):
    """A core/v1 Toleration."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class NodePool(ApiModel):
    """A named GPU node pool; a phase picks one."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    """Pool name, referenced by phases[].nodePool."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Labels the trial's Ray pods must match."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the trial's Ray pods tolerate."""
    gpu_resource: str = Field("nvidia.com/gpu", min_length=1)
    """Extended resource name of the GPU."""
    gpus: int = Field(1, ge=0, le=16)
    """GPUs per Ray worker pod in this pool."""
    image: str | None = None
    """Trainer image for this pool; default: spec.template.image."""


class TrialState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    SKIPPED = "Skipped"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TrialState.SUCCEEDED, TrialState.FAILED, TrialState.STOPPED, TrialState.SKIPPED})


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """metav1.Condition."""

    type: str = Field(max_length=316, pattern=r"^([a-z0-9.\-]*/)?[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?$")
    status: ConditionStatus
    observed_generation: int | None = Field(None, ge=0)
    last_transition_time: datetime
    reason: str = Field(max_length=1024, pattern=CAMEL_CASE)
    message: str = Field("", max_length=32768)


class MetricPoint(ApiModel):
    """Metrics reported for one epoch."""

    epoch: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
