"""Types shared by TrainingCampaign and Trial."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from .base import CAMEL_CASE, DNS_LABEL, USER_REASON, ApiModel, CelRule, ConditionMessage

BUILTIN_TASKS = ("regression", "gbm", "cql", "sequence", "objective")
TASK_PATTERN = r"^(regression|gbm|cql|sequence|objective|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$"

EPOCH_METRICS = ("loss", "val_loss", "lr", "samples_per_sec", "epoch_time_s")
"""What the trainer reports every epoch of every built-in task: the training and validation loss,
the learning rate, throughput and epoch time."""
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "regression": (
        *EPOCH_METRICS,
        *("rmse", "r2", "variance_ratio", "pred_std", "pred_range", "ic", "rank_ic", "sharpe"),
    ),
    "gbm": (
        *EPOCH_METRICS,
        *("rmse", "r2", "variance_ratio", "pred_std", "pred_range", "ic", "rank_ic", "sharpe", "trees"),
    ),
    "cql": (*EPOCH_METRICS, "q_mean", "q_std", "win_rate", "roi", "bet_rate"),
    "sequence": (*EPOCH_METRICS, "action_loss", "price_loss", "accuracy", "param_count"),
    "objective": EPOCH_METRICS,  # a test function's value as val_loss (benchmarks, tests)
}
"""Metric names each built-in task reports (campaign_trainer.tasks), so a manifest's metric names
(objective, stop rules, early stopping, gates) can be checked without importing the trainer and
torch. A test trains every built-in task for an epoch and compares; user tasks report their own."""


def task_metrics(task: str) -> tuple[str, ...] | None:
    """The metrics a built-in task reports; None for a user task (`module:callable`)."""
    return TASK_METRICS.get(task)


METRICS_LIMIT = 64
"""Most metrics one report keeps in a Trial's status (its latest metrics, each history epoch, its
best epoch): the objective first, then the stop rules' and early stopping's metrics, then those the
status held before, then the rest by name. What a report drops is named in status.warnings."""
METRIC_NAME_MAX_LENGTH = 128
"""Longest metric name a Trial's status keeps (a longer one is dropped, never cut: a cut name could
collide with another); the metric names a manifest sets are bounded the same way."""
MetricName = Annotated[str, Field(min_length=1, max_length=METRIC_NAME_MAX_LENGTH)]


class Mode(StrEnum):
    MIN = "min"
    MAX = "max"


class Objective(ApiModel):
    """The metric that ranks trials: it picks each phase's best trial and drives promotion."""

    metric: str = Field("val_loss", min_length=1, max_length=METRIC_NAME_MAX_LENGTH)
    """Name of a metric the trainer reports, e.g. val_loss, r2, sharpe. A trial that succeeds
    without ever reporting a finite value of it ends Failed/MetricsUnavailable."""
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


class RowRange(ApiModel):
    """The rows whose `column` lies in [start, end] (both inclusive; either may be omitted)."""

    cel_rules = (CelRule("has(self.start) || has(self.end)", "rows: set start, end or both"),)

    column: str = Field(min_length=1)
    """The column compared (e.g. a date column: ISO dates compare in time order)."""
    start: str | None = None
    """First value kept, compared in the column's type (a date, a number or text)."""
    end: str | None = None
    """Last value kept."""


class DatasetSpec(ApiModel):
    """Where a trial's data comes from: the built-in synthetic generator or a CSV/Parquet file.

    Its text fields (path, target, features, rows) may name the trial's parameters: `{symbol}` or
    `{symbol.name}` is replaced by the value (a string, number or boolean) when the Trial is built,
    `{{` and `}}` stand for literal braces; each planned trial's fields are checked before anything
    runs."""

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
    """Local path or s3://bucket/key of a CSV or Parquet file; may name parameters, e.g.
    data/{symbol.name}.parquet for one file per symbol."""
    format: Literal["csv", "parquet"] | None = None
    """File format; inferred from the file suffix when omitted."""
    target: str | None = None
    """Target column (required with path); may name parameters, e.g. fwd_return_{horizon}d."""
    features: list[str] | None = None
    """Feature columns; default: every column except the target. Each may name parameters."""
    rows: RowRange | None = None
    """Only the rows in this range (e.g. a walk-forward window); the range column is not a feature.
    Its bounds may name parameters, e.g. start: "{window.start}"."""


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

    metric: MetricName
    """Metric to watch, e.g. variance_ratio."""
    comparison: Comparison
    """How the metric is compared with the threshold; the rule fires when `metric <comparison> threshold`."""
    threshold: float
    """The threshold: a finite number (a comparison with NaN never holds)."""
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

    metric: MetricName
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
    """The taint key the toleration applies to; empty with operator Exists: every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Equal: the taint's value must equal value; Exists: any value."""
    value: str | None = None
    """The taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to tolerate; empty: every effect."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated before eviction; unset: forever."""


# Kubernetes names the pod-template additions refer to.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"

SHM_VOLUME = "shm"
"""The executor's own RAM-backed /dev/shm volume on every Ray pod (Ray's object store needs it)."""
SHM_PATH = "/dev/shm"
RESERVED_LABELS = ("campaign", "phase", "trial", "attempt", "app.kubernetes.io/managed-by")
"""Pod labels the operator sets itself (executors.kuberay) and finds its pods by."""
ImagePullPolicy = Literal["Always", "IfNotPresent", "Never"]


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


class KeyRef(ApiModel):
    """A key of a Secret or ConfigMap in the campaign's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Name of the Secret or ConfigMap."""
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)
    """The key whose value becomes the variable's."""
    optional: bool | None = None
    """Start the pod even when the object or key is missing."""


class EnvSource(ApiModel):
    """Where a variable's value comes from: exactly one of secretKeyRef or configMapKeyRef."""

    cel_rules = (
        CelRule(
            "has(self.secretKeyRef) != has(self.configMapKeyRef)",
            "env[].valueFrom: set exactly one of secretKeyRef or configMapKeyRef",
        ),
    )

    secret_key_ref: KeyRef | None = None
    """A Secret's key: the value stays in the Secret, read by the kubelet at pod start."""
    config_map_key_ref: KeyRef | None = None
    """A ConfigMap's key."""


class EnvVar(ApiModel):
    """An environment variable of the trial's Ray containers."""

    cel_rules = (
        CelRule("has(self.value) != has(self.valueFrom)", "env[]: set exactly one of value or valueFrom"),
    )

    name: str = Field(pattern=ENV_NAME, max_length=256)
    """Variable name."""
    value: str | None = Field(None, max_length=32768)
    """A literal value; never put a secret here (use valueFrom.secretKeyRef)."""
    value_from: EnvSource | None = None
    """A Secret's or ConfigMap's key, by reference."""


class SecretVolume(ApiModel):
    """A Secret's keys as files."""

    secret_name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """The Secret (same namespace)."""
    optional: bool | None = None
    """Start the pod even when the Secret is missing."""


class ConfigMapVolume(ApiModel):
    """A ConfigMap's keys as files."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """The ConfigMap (same namespace)."""
    optional: bool | None = None
    """Start the pod even when the ConfigMap is missing."""


class ClaimVolume(ApiModel):
    """An existing PersistentVolumeClaim of the campaign's namespace (datasets, caches)."""

    claim_name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """The PersistentVolumeClaim (same namespace)."""
    read_only: bool | None = None
    """Mount it read-only."""


class EmptyDirVolume(ApiModel):
    """Scratch space that lives as long as the pod."""

    medium: Literal["", "Memory"] | None = None
    """"" (node disk) or Memory (tmpfs, counted against the container's memory)."""
    size_limit: str | None = Field(None, pattern=QUANTITY)
    """Upper bound, e.g. 20Gi."""


class Volume(ApiModel):
    """A pod volume: exactly one of secret, configMap, persistentVolumeClaim or emptyDir."""

    cel_rules = (
        CelRule(
            "(has(self.secret) ? 1 : 0) + (has(self.configMap) ? 1 : 0)"
            " + (has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.emptyDir) ? 1 : 0) == 1",
            "volumes[]: set exactly one of secret, configMap, persistentVolumeClaim or emptyDir",
        ),
    )

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    """Volume name, referenced by volumeMounts[].name."""
    secret: SecretVolume | None = None
    config_map: ConfigMapVolume | None = None
    persistent_volume_claim: ClaimVolume | None = None
    empty_dir: EmptyDirVolume | None = None


class VolumeMount(ApiModel):
    """Where a volume appears in the trial's Ray containers."""

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    """A volumes[].name of the same podTemplate."""
    mount_path: str = Field(pattern=r"^/.*$", max_length=1024)
    """Absolute path in the container."""
    read_only: bool | None = None
    """Mount it read-only."""
    sub_path: str | None = Field(None, pattern=r"^[^/].*$", max_length=1024)
    """A path inside the volume to mount instead of its root."""


class PodTemplate(ApiModel):
    """Additions to the pods of a trial on this pool.

    env, volumes and volumeMounts go to the Ray containers (head and workers); serviceAccountName,
    labels and annotations to every pod of the trial, the job submitter's included.
    """

    cel_rules = (
        CelRule(
            "!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
            "podTemplate.env: variable names must be unique",
            ".env",
        ),
        CelRule(
            "!has(self.volumes) || self.volumes.all(v, self.volumes.exists_one(w, w.name == v.name))",
            "podTemplate.volumes: volume names must be unique",
            ".volumes",
        ),
        CelRule(
            f"!has(self.volumes) || self.volumes.all(v, v.name != '{SHM_VOLUME}')",
            f"podTemplate.volumes: '{SHM_VOLUME}' is the operator's own {SHM_PATH} volume; use another name",
            ".volumes",
        ),
        CelRule(
            "!has(self.volumeMounts) || self.volumeMounts.all(m,"
            " has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
            "podTemplate.volumeMounts[].name: must name an entry of podTemplate.volumes",
            ".volumeMounts",
        ),
        CelRule(
            "!has(self.volumeMounts) || self.volumeMounts.all(m, m.mountPath != '/'"
            f" && m.mountPath != '{SHM_PATH}'"
            " && self.volumeMounts.exists_one(n, n.mountPath == m.mountPath))",
            f"podTemplate.volumeMounts[].mountPath: must be unique, and neither / nor {SHM_PATH}",
            ".volumeMounts",
        ),
        CelRule(
            f"!has(self.labels) || self.labels.all(k, !(k in {_cel_list(RESERVED_LABELS)})"
            f" && !k.startsWith('ray.io/') && k.matches('{LABEL_KEY}'))",
            "podTemplate.labels: keys must be label keys, neither ray.io/... nor the operator's own"
            f" ({', '.join(RESERVED_LABELS)})",
            ".labels",
        ),
    )

    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment variables; secrets by reference only (valueFrom.secretKeyRef)."""
    volumes: list[Volume] = Field(default_factory=list, max_length=16)
    """Extra pod volumes (Secrets, ConfigMaps, PersistentVolumeClaims, emptyDirs)."""
    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=16)
    """Where the extra volumes appear in the Ray containers."""
    service_account_name: str | None = Field(None, pattern=DNS_SUBDOMAIN, max_length=253)
    """ServiceAccount of the trial's pods; default: the operator's trainer account, which the operator
    creates and binds in the campaign's namespace. Another account must be allowed to get campaigntrials and
    get/patch campaigntrials/status there (bind it to the chart's <fullname>-trainer ClusterRole)."""
    labels: dict[str, Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]] = Field(
        default_factory=dict, max_length=32
    )
    """Extra pod labels (cost allocation, network policies)."""
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=32
    )
    """Extra pod annotations (e.g. sidecar.istio.io/inject: "false")."""


class NodePool(ApiModel):
    """A named GPU node pool; a phase picks one. Every pod of a trial on it (Ray head, workers, job
    submitter) gets its placement."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    """Pool name, referenced by phases[].nodePool."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Labels the nodes of the trial's pods (Ray head, workers, job submitter) must have."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the trial's pods (Ray head, workers, job submitter) tolerate."""
    gpu_resource: str = Field("nvidia.com/gpu", min_length=1)
    """Extended resource name of the GPU."""
    gpus: int = Field(1, ge=0, le=16)
    """GPUs per Ray worker pod in this pool."""
    image: str | None = None
    """Trainer image for this pool; default: spec.template.image."""
    image_pull_policy: ImagePullPolicy | None = None
    """Pull policy of the trial's containers; default: the operator's (--trainer-image-pull-policy,
    IfNotPresent). Never: the image must already be on the node (e.g. loaded into containerd)."""
    pod_template: PodTemplate | None = None
    """Additions to the trial's pods: env, volumes, service account, labels, annotations."""


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
    """Progressing, Succeeded, Failed, Degraded, Suspended or ReconcileError."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation the condition was set for."""
    last_transition_time: datetime
    """When status last changed."""
    reason: str = Field(max_length=1024, pattern=CAMEL_CASE)
    """CamelCase reason, e.g. InvalidSpec, GateNotMet, Reconciled."""
    message: ConditionMessage = ""
    """Details in words (bounded)."""


class MetricPoint(ApiModel):
    """Metrics reported for one epoch."""

    epoch: int = Field(ge=0)
    """The epoch (counting from 1)."""
    metrics: dict[str, float] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": METRICS_LIMIT}
    )
    """Metric name -> value at that epoch (bounded as status.metrics)."""
