"""TrainingCampaign: phases and sweeps of training trials, as one declarative object."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from .base import DNS_LABEL, USER_REASON, ApiModel, BoundedText, CelRule, ExactlyOne
from .common import (
    TASK_PATTERN,
    CheckpointPolicy,
    Condition,
    DatasetSpec,
    EarlyStopping,
    MetricName,
    Mode,
    NodePool,
    Objective,
    Resources,
    StopRule,
)
from .meta import ObjectMeta

DEFAULT_MAX_TRIALS = 10_000
BEST_METRICS_LIMIT = 16
"""Most metrics status.phases[].best keeps of its trial's best epoch: the ranking metric, then the
metrics the campaign's gates and `when`s name, then by name. Gates and `when` still read every
metric the best Trial's status holds; the rest is in that Trial (kubectl get trial NAME -o yaml)."""

FRONT_LIMIT = 16
"""Most trials status.phases[].front lists of a multi-objective phase's Pareto front."""

# The values of one sweep dimension. Bounded so the apiserver can cost the CRD's CEL rules.
Values = Annotated[list[Any], Field(min_length=1, max_length=10_000)]
PhaseName = Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]


class TrialTemplate(ApiModel):
    """What every trial runs, before phase and sweep overrides."""

    image: str | None = None
    """Trainer image (cluster mode). Default: the operator's configured trainer image."""
    task: str = Field(pattern=TASK_PATTERN)
    """Built-in task (regression, gbm, cql, sequence, objective) or a user task `package.module:callable`."""
    dataset: DatasetSpec | None = None
    """Training data; default: the task's synthetic generator."""
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    """Base hyperparameters; phases, promotion and sweeps override them in that order."""
    epochs: int = Field(10, ge=1, le=1_000_000)
    """Epochs per trial."""
    batch_size: int = Field(256, ge=1, le=1_000_000)
    """Mini-batch size."""
    resources: Resources = Field(default_factory=Resources)
    """Resources per trial."""
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    """auto: bf16-mixed on a GPU, 32-bit on CPU."""
    checkpoint: CheckpointPolicy = Field(default_factory=CheckpointPolicy)
    """How often trials checkpoint."""
    stop_rules: list[StopRule] = Field(default_factory=list, max_length=32)
    """Rules every trial obeys (phases can add more)."""
    early_stopping: EarlyStopping | None = None
    """Patience-based early stopping for every trial (phases can override)."""


class Distribution(ApiModel):
    """One dimension of a random search space: exactly one of the four forms."""

    exactly_one = ExactlyOne(
        ("uniform", "logUniform", "intUniform", "choice"),
        "set exactly one of uniform, logUniform, intUniform or choice",
    )
    cel_rules = (
        CelRule(
            "!has(self.uniform) || self.uniform[0] < self.uniform[1]",
            "uniform: [low, high] needs low < high",
            ".uniform",
        ),
        CelRule(
            "!has(self.logUniform) || (self.logUniform[0] > 0.0 && self.logUniform[0] < self.logUniform[1])",
            "logUniform: [low, high] needs 0 < low < high",
            ".logUniform",
        ),
        CelRule(
            "!has(self.intUniform) || self.intUniform[0] <= self.intUniform[1]",
            "intUniform: [low, high] needs low <= high",
            ".intUniform",
        ),
    )

    uniform: list[float] | None = Field(None, min_length=2, max_length=2)
    """[low, high): uniform real."""
    log_uniform: list[float] | None = Field(None, min_length=2, max_length=2)
    """[low, high): log-uniform real, e.g. learning rates."""
    int_uniform: list[int] | None = Field(None, min_length=2, max_length=2)
    """[low, high]: uniform integer, both ends included."""
    choice: list[Any] | None = Field(None, min_length=1, max_length=10_000)
    """One of these values, uniformly."""


class SeedSweep(ApiModel):
    """An ensemble: the same configuration trained with `count` seeds from `start`."""

    start: int = Field(0, ge=0)
    """First seed."""
    count: int = Field(ge=1, le=100_000)
    """Number of seeds: start, start+1, ..."""
    parameter: str = Field("seed", min_length=1)
    """Hyperparameter that receives the seed."""


class RandomSweep(ApiModel):
    """Random search: `samples` draws from `space`, reproducible by `seed`."""

    samples: int = Field(ge=1, le=100_000)
    """Number of draws."""
    seed: int = Field(0, ge=0)
    """Seed of the sampler, so the plan is the same every time."""
    space: dict[str, Distribution] = Field(min_length=1, max_length=64)
    """Parameter name -> distribution."""


class SearchAlgorithm(StrEnum):
    TPE = "tpe"
    CMAES = "cmaes"
    RANDOM = "random"
    QMC = "qmc"


class SearchSweep(ApiModel):
    """Adaptive search: `trials` trials over `space`, each suggested when a slot frees (the phase's
    maxParallelTrials, else the campaign's, else 1 at a time) from the phase's trials observed then.
    Trials are named by their index; once created, a trial never changes."""

    algorithm: SearchAlgorithm = SearchAlgorithm.TPE
    """tpe: Optuna's multivariate TPE, running trials told as constant liars; cmaes: CMA-ES by
    generations (a generation starts once the previous one has finished); random: independent draws;
    qmc: a scrambled Halton sequence (even coverage, no model)."""
    trials: int = Field(ge=1, le=10_000)
    """The trial budget: how many trials the search creates in all."""
    seed: int = Field(0, ge=0)
    """Seed of the sampler: the same observed trials give the same suggestion, in every process."""
    space: dict[str, Distribution] = Field(min_length=1, max_length=64)
    """Parameter name -> distribution (as in a random sweep)."""
    startup_trials: int = Field(10, ge=1, le=10_000)
    """tpe: trials drawn at random before the model is fitted."""


class MatrixSweep(ApiModel):
    """A cartesian product of data dimensions (e.g. symbols x windows), with exclusions."""

    axes: dict[str, Values] = Field(min_length=1, max_length=16)
    """Axis name -> values (scalars or objects, e.g. {name: LICI, listed: '2022-05-17'})."""
    exclude: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    """Combinations to leave out; an entry matches when all its keys equal the combination's."""
    include: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    """Extra combinations added after the product."""


class Sweep(ApiModel):
    """How a phase fans out into trials: exactly one kind."""

    exactly_one = ExactlyOne(
        ("trials", "grid", "matrix", "seeds", "random", "search"),
        "set exactly one sweep kind: trials, grid, matrix, seeds, random or search",
    )

    trials: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=10_000)
    """Explicit parameter sets, one trial each."""
    grid: dict[str, Values] | None = Field(None, min_length=1, max_length=64)
    """Hyperparameter grid: every combination of the listed values."""
    matrix: MatrixSweep | None = None
    """Cartesian product of data axes with include/exclude."""
    seeds: SeedSweep | None = None
    """Seed ensemble."""
    random: RandomSweep | None = None
    """Random search."""
    search: SearchSweep | None = None
    """Adaptive search: trials suggested one slot at a time from the finished ones."""


class Promotion(ApiModel):
    """Take the best trial of an earlier phase and use its parameters here."""

    phase: PhaseName
    """The earlier phase (must also be listed in dependsOn)."""
    metric: MetricName | None = None
    """Ranking metric; default: that phase's objective."""
    mode: Mode | None = None
    """min or max; default: that phase's objective mode."""
    keys: list[str] | None = None
    """Parameters to take; default: all of the best trial's parameters except its seed."""
    weights: dict[MetricName, Annotated[float, Field(ge=0)]] | None = Field(None, min_length=1, max_length=4)
    """Multi-objective source phase only: promote the front trial with the highest weighted sum of
    its objectives, each first rescaled over the front to 0 (the front's worst value) .. 1 (its best),
    so min and max objectives and their units compare; objectives not named weigh 0. Exclusive with
    metric, which instead promotes the front's best by that one objective."""


class SkipRule(ApiModel):
    """Trials whose parameters match are Skipped (not failed) and leave the failure-rate denominator."""

    expression: str = Field(min_length=1, max_length=4096)
    """CEL over `params` (the trial's parameters), e.g. `params.window.start < params.symbol.listed`."""
    reason: str = Field(pattern=USER_REASON, max_length=128)
    """UpperCamelCase reason recorded on skipped trials, e.g. BeforeListing."""
    message: str | None = None
    """Explanation recorded on skipped trials."""


class FailurePolicy(ApiModel):
    """How many failures a phase tolerates, and what happens to failing trials."""

    max_failure_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Largest tolerated failed / (total - skipped), from 0 to 1 (0.15 = 15%)."""
    retries: int = Field(0, ge=0, le=20)
    """Extra attempts for a failed trial before its failure counts."""
    backoff_seconds: int = Field(30, ge=0, le=86_400)
    """Wait before a retry; doubles with each attempt."""
    fail_fast: bool = True
    """Fail the phase as soon as its threshold can no longer be met, stopping its running trials."""


class Gate(ApiModel):
    """A condition on this phase's results that must hold for the phase to succeed."""

    expression: str = Field(min_length=1, max_length=4096)
    """CEL over `phase`, evaluated once all of the phase's trials finished: phase.name, state,
    total, succeeded, failed, stopped, skipped, failureRate, metrics.<metric>.{min,max,mean,std,count}
    (over Succeeded trials at their best epoch) and, when a trial succeeded, best.{trial,metric,value,
    metrics.<metric>,parameters.<name>} (test with has(phase.best)); e.g.
    `phase.best.metrics.sharpe > 0.10`. Checked before anything runs: unknown fields and metrics,
    and numbers compared with strings, are errors."""
    message: str | None = None
    """Shown when the gate does not hold."""


class PhaseInput(ApiModel):
    """Outputs of a matching trial of an earlier phase that this phase's trials consume (a student
    gets its teacher's model and predictions)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    """What the trial calls it: its task finds the matched trial's outputs under inputs.<name>."""
    from_phase: PhaseName
    """The earlier phase (also listed in dependsOn) whose trials produce the outputs."""
    match: list[str] = Field(min_length=1, max_length=16)
    """Parameters that must be equal in both trials (e.g. [symbol, window]): exactly one trial of
    fromPhase matches each trial of this phase."""


class EarlyTerminationAlgorithm(StrEnum):
    ASHA = "asha"
    MEDIAN = "median"


class EarlyTermination(ApiModel):
    """Stop a phase's unpromising trials early, judged against the phase's other trials (Ray Tune's
    ASHAScheduler / MedianStoppingRule, Katib's medianstop). The planner decides from the trials'
    reported histories; a stopped trial ends Stopped/EarlyTerminated: not a failure, and never the
    phase's best trial."""

    algorithm: EarlyTerminationAlgorithm
    """asha: at rungs minEpochs * reductionFactor^k (below the trial's epochs) a trial continues only
    while its metric at its latest rung is within the top 1/reductionFactor of the trials that reached
    that rung. median: after minEpochs, a trial whose best value so far is worse than the median of the
    other trials' running averages up to the same epoch stops."""
    metric: MetricName | None = None
    """Metric judged; default: the phase's objective metric."""
    mode: Mode | None = None
    """min or max; default: the phase's objective mode."""
    min_epochs: int = Field(1, ge=1, le=1_000_000)
    """asha: the first rung; median: the grace period (no trial is stopped at or before it). Must be
    below the phase's epochs."""
    reduction_factor: int = Field(3, ge=2, le=100)
    """asha: rungs are reductionFactor apart and about 1/reductionFactor of the trials pass each."""
    min_trials: int = Field(3, ge=1, le=100_000)
    """Other trials that must have reached the rung (asha) or epoch (median) before a trial can be
    stopped there; with fewer it continues. Ray Tune's min_samples_required is 3; its ASHA has no such
    minimum (1 matches it)."""


class Phase(ApiModel):
    """A stage of the campaign: a sweep of trials with its own priority, policy and gate."""

    cel_rules = (
        CelRule(
            "!has(self.dependsOn) || !(self.name in self.dependsOn)",
            "dependsOn: a phase cannot depend on itself",
            ".dependsOn",
        ),
        CelRule(
            "!has(self.when) || (has(self.dependsOn) && size(self.dependsOn) > 0)",
            "when: needs dependsOn (it is evaluated over the phases this one depends on)",
            ".when",
        ),
        CelRule(
            "!has(self.fromPhase) || (has(self.dependsOn) && self.fromPhase.phase in self.dependsOn)",
            "fromPhase.phase: must also be listed in dependsOn",
            ".fromPhase.phase",
        ),
        CelRule(
            "!has(self.inputs) || self.inputs.all(i, has(self.dependsOn) && i.fromPhase in self.dependsOn)",
            "inputs[].fromPhase: must also be listed in dependsOn",
            ".inputs",
        ),
        CelRule(
            "!has(self.objective) || !has(self.objectives)",
            "objectives: set either objective (one metric) or objectives (a Pareto front), not both",
            ".objectives",
        ),
        CelRule(
            "!has(self.objectives)"
            " || self.objectives.all(o, self.objectives.exists_one(p, p.metric == o.metric))",
            "objectives: each metric may appear only once",
            ".objectives",
        ),
    )

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    """Phase name (DNS label); becomes the `phase` label of its trials."""
    description: str | None = None
    """Free text."""
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    """Higher runs first when phases compete for the parallelism budget."""
    depends_on: list[PhaseName] = Field(default_factory=list, max_length=16)
    """Earlier phases that must succeed before this one starts."""
    when: str | None = Field(None, max_length=4096)
    """CEL over `phases.<name>`, one entry per phase in dependsOn with the fields a gate's `phase`
    has; false skips this phase (reason WhenNotMet)."""
    task: str | None = Field(None, pattern=TASK_PATTERN)
    """Task for this phase's trials (e.g. a teacher and a student model); default: template.task."""
    dataset: DatasetSpec | None = None
    """Data for this phase's trials; default: template.dataset."""
    sweep: Sweep | None = None
    """How the phase fans out; none = a single trial."""
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the template's hyperparameters for this phase."""
    from_phase: Promotion | None = None
    """Promote the best trial of an earlier phase (its parameters override the template's)."""
    epochs: int | None = Field(None, ge=1, le=1_000_000)
    """Epochs per trial in this phase; default: template.epochs."""
    resources: Resources | None = None
    """Resources per trial in this phase; default: template.resources."""
    node_pool: str | None = Field(None, pattern=DNS_LABEL, max_length=40)
    """Node pool (spec.nodePools[].name) this phase's trials run on."""
    priority_class_name: str | None = None
    """Kubernetes PriorityClass of this phase's Ray pods."""
    workload_priority_class: str | None = None
    """Kueue WorkloadPriorityClass (label kueue.x-k8s.io/priority-class)."""
    max_parallel_trials: int | None = Field(None, ge=1, le=100_000)
    """At most this many of the phase's trials run at once."""
    skip_when: list[SkipRule] = Field(default_factory=list, max_length=16)
    """Rules that mark trials Skipped instead of running them."""
    failure_policy: FailurePolicy = Field(default_factory=FailurePolicy)
    """Failure threshold, retries and fail-fast."""
    objective: Objective | None = None
    """Ranking metric for this phase; default: spec.objective."""
    objectives: list[Objective] | None = Field(None, min_length=2, max_length=4)
    """Several metrics to trade off (instead of objective): the phase's result is its Pareto front
    (status.phases[].front), the Succeeded trials no other trial beats on every objective. Each
    trial's best epoch is chosen by the first objective; its best is the front's best by it."""
    stop_rules: list[StopRule] = Field(default_factory=list, max_length=32)
    """Stop rules added to the template's for this phase."""
    early_stopping: EarlyStopping | None = None
    """Overrides the template's early stopping."""
    early_termination: EarlyTermination | None = None
    """Stop trials that compare badly with the phase's other trials (asha or median)."""
    gate: Gate | None = None
    """Must hold over the phase's results for it to succeed."""
    inputs: list[PhaseInput] = Field(default_factory=list, max_length=8)
    """Outputs of earlier phases' trials that each trial consumes, matched by parameters."""


class S3Storage(ApiModel):
    """Checkpoints and artefacts in an S3-compatible bucket."""

    uri: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?$")
    """s3://bucket/prefix"""
    endpoint: str | None = Field(None, pattern=r"^https?://.+")
    """Endpoint of an S3-compatible store (MinIO, ...); default: AWS."""
    credentials_secret: str | None = Field(None, pattern=DNS_LABEL)
    """Secret (same namespace) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; never copied or logged."""


class PvcStorage(ApiModel):
    """Checkpoints on a shared PersistentVolumeClaim."""

    claim_name: str = Field(pattern=DNS_LABEL)
    """The PersistentVolumeClaim (same namespace), mounted by every trial."""
    path: str = "/"
    """Directory inside the claim under which checkpoints go."""


class Storage(ApiModel):
    """Where checkpoints go: exactly one of s3 or pvc."""

    cel_rules = (CelRule("has(self.s3) != has(self.pvc)", "storage: set exactly one of s3 or pvc"),)

    s3: S3Storage | None = None
    pvc: PvcStorage | None = None


class SecretKeyRef(ApiModel):
    """A key of a Secret in the campaign's namespace."""

    name: str = Field(pattern=DNS_LABEL)
    """The Secret."""
    key: str = Field(min_length=1)
    """The key whose value is used."""


class ExecutorKind(StrEnum):
    KUBERAY = "kuberay"
    RAYJOBS = "rayjobs"
    LOCAL = "local"


class ExecutorSpec(ApiModel):
    """Where trials run: a RayJob per trial (kuberay), an existing Ray cluster (rayjobs) or local Ray."""

    cel_rules = (
        CelRule(
            "self.kind != 'rayjobs' || has(self.address)",
            "executor.address: required for kind rayjobs (e.g. http://ray-head:8265)",
            ".address",
        ),
    )

    kind: ExecutorKind = ExecutorKind.KUBERAY
    """kuberay, rayjobs or local."""
    address: str | None = Field(None, pattern=r"^https?://.+")
    """Ray dashboard/Jobs API address (rayjobs)."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret key holding the Ray auth token (rayjobs; Ray >= 2.59 enables token auth by default)."""
    ray_version: str = "2.60.0"
    """Ray version of the trainer image (kuberay)."""
    active_deadline_seconds: int = Field(86_400, ge=1)
    """Longest a trial's RayJob may run."""
    pre_running_deadline_seconds: int = Field(900, ge=1)
    """Longest an attempt may take, from its start, until its Ray job runs (KubeRay's jobStatus
    RUNNING). The operator enforces it (KubeRay 1.4/1.5 have no such field): the attempt fails with
    reason PreRunningDeadlineExceeded and the pods' trouble, e.g. the scheduler's message. Time in a
    Kueue suspension does not count."""
    ttl_seconds_after_finished: int = Field(60, ge=0)
    """How long KubeRay keeps a finished trial's Ray cluster."""


_LATER = "!self.phases.exists(j, q, j < i && q.name == d)"
_INDEX = "[" + ", ".join(f"'{i}'" for i in range(32)) + "]"  # string(i) costs too much to the apiserver
_DEPENDS_ON_MESSAGE = (
    "self.phases.transformList(i, p, has(p.dependsOn) && p.dependsOn.exists(d, " + _LATER + "),"
    " 'phases[' + " + _INDEX + "[i] + '] (' + p.name + ').dependsOn: '"
    " + p.dependsOn.filter(d, " + _LATER + ").map(d,"
    " d == p.name ? \"'\" + d + \"' is the phase itself (a cycle: \" + d + ' -> ' + d + ')'"
    ' : !self.phases.exists(q, q.name == d) ? "\'" + d + "\' is not a phase"'
    " : self.phases.exists(q, q.name == d && has(q.dependsOn) && p.name in q.dependsOn)"
    ' ? "\'" + d + "\' is listed later and depends on " + p.name'
    " + ' (a cycle: ' + p.name + ' -> ' + d + ' -> ' + p.name + ')'"
    ' : "\'" + d + "\' is listed later")[0])[0]'
    " + '; dependsOn may only name phases listed earlier in spec.phases'"
)
"""The apiserver's message for a bad dependsOn: the first offending phase's index and name, its
first bad name, and whether that closes a cycle. Within the apiserver's cost budget (no join, no
string(int)); `_depends_on_message` is the same text for embedded validation."""


def _depends_on_message(spec: Any) -> str:
    phases = spec.get("phases") or []
    names = [p.get("name") for p in phases]
    for i, p in enumerate(phases):
        bad = [d for d in p.get("dependsOn") or [] if d not in names[:i]]
        if not bad:
            continue
        d, name = bad[0], p["name"]
        if d == name:
            why = f"'{d}' is the phase itself (a cycle: {d} -> {d})"
        elif d not in names:
            why = f"'{d}' is not a phase"
        elif any(q.get("name") == d and name in (q.get("dependsOn") or []) for q in phases):
            why = f"'{d}' is listed later and depends on {name} (a cycle: {name} -> {d} -> {name})"
        else:
            why = f"'{d}' is listed later"
        rule = "dependsOn may only name phases listed earlier in spec.phases"
        return f"phases[{i}] ({name}).dependsOn: {why}; {rule}"
    return "phases[].dependsOn: may only name phases listed earlier in spec.phases"


class ScaleDown(ApiModel):
    """A scaled-down run of the same plan: every phase, a sample of its trials, fewer epochs. The DAG,
    promotion and thresholds stay; a smoke run reports its gates without enforcing them. Fixed when
    the campaign is created; its results are marked as such everywhere."""

    smoke: bool = False
    """A smoke test of the whole campaign: unless set below, 2 trials per phase and 2 epochs each;
    gates are evaluated and reported but do not fail a phase."""
    epochs_scale: float | None = Field(None, gt=0, le=1)
    """Each trial's epochs times this (rounded up, at least 1)."""
    max_epochs: int | None = Field(None, ge=1, le=1_000_000)
    """At most this many epochs per trial (after epochsScale)."""
    max_trials_per_phase: int | None = Field(None, ge=1, le=100_000)
    """A deterministic sample of at most this many of each phase's trials (the same sample in phases
    with the same sweep points, so a student still finds its teacher)."""


class RunKind(StrEnum):
    """What a campaign runs: its whole plan, a smoke test of it, or a partial run (spec.scaleDown)."""

    FULL = "full"
    SMOKE = "smoke"
    PARTIAL = "partial"


SCALE_DOWN_FIXED = (
    "scaleDown: fixed once the campaign exists (it cannot be added, removed or changed);"
    " to run this plan at another scale, create a new campaign with another name"
)


class TrainingCampaignSpec(ApiModel):
    """The whole plan of a training campaign."""

    cel_rules = (
        CelRule(
            # A transition rule (oldSelf): the apiserver checks it on every update; embedded mode
            # checks it against the state dir's stored manifest (validation.transition_violations).
            "has(self.scaleDown) == has(oldSelf.scaleDown)"
            " && (!has(self.scaleDown) || self.scaleDown == oldSelf.scaleDown)",
            SCALE_DOWN_FIXED,
            ".scaleDown",
        ),
        CelRule(
            "self.phases.all(p, self.phases.exists_one(q, q.name == p.name))",
            "phases: phase names must be unique",
            ".phases",
        ),
        CelRule(
            # Index-based so the apiserver can cost it (a name lookup per dependency is too dear).
            "self.phases.all(i, p, !has(p.dependsOn)"
            " || p.dependsOn.all(d, self.phases.exists(j, q, j < i && q.name == d)))",
            "phases[].dependsOn: may only name phases listed earlier in spec.phases",
            ".phases",
            embedded="self.phases.all(p, !has(p.dependsOn) || p.dependsOn.all(d,"
            " self.phases.map(q, q.name).indexOf(d) >= 0"
            " && self.phases.map(q, q.name).indexOf(d) < self.phases.map(q, q.name).indexOf(p.name)))",
            message_expression=_DEPENDS_ON_MESSAGE,
            explain=_depends_on_message,
        ),
        CelRule(
            "self.phases.all(p, !has(p.nodePool)"
            " || (has(self.nodePools) && self.nodePools.exists(n, n.name == p.nodePool)))",
            "phases[].nodePool: must name an entry of spec.nodePools",
            ".phases",
        ),
        CelRule(
            "!has(self.nodePools) || self.nodePools.all(n, self.nodePools.exists_one(m, m.name == n.name))",
            "nodePools: pool names must be unique",
            ".nodePools",
        ),
    )

    template: TrialTemplate
    """What a trial runs."""
    phases: list[Phase] = Field(min_length=1, max_length=32)
    """The phases, in order; dependsOn may only point backwards."""
    node_pools: list[NodePool] = Field(default_factory=list, max_length=16)
    """GPU node pools phases can pick."""
    objective: Objective = Field(default_factory=Objective)
    """Default ranking metric of every phase."""
    suspend: bool = False
    """Pause: no new trials start; running ones finish."""
    max_parallel_trials: int | None = Field(None, ge=1, le=100_000)
    """At most this many trials of the whole campaign run at once."""
    max_trials: int = Field(DEFAULT_MAX_TRIALS, ge=1, le=100_000)
    """Cap on the number of trials the sweeps may expand to."""
    queue_name: str | None = Field(None, pattern=DNS_LABEL)
    """Kueue LocalQueue (label kueue.x-k8s.io/queue-name on every RayJob)."""
    storage: Storage | None = None
    """Checkpoint storage."""
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    """Where trials run."""
    scale_down: ScaleDown | None = None
    """Run a smoke test or a partial run of this plan instead of the full one."""


class CampaignState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class PhaseState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"

    @property
    def is_terminal(self) -> bool:
        return self in (PhaseState.SUCCEEDED, PhaseState.FAILED, PhaseState.SKIPPED)


class TrialCounts(ApiModel):
    """Trials by state."""

    total: int = 0
    """Every trial of the phase (or campaign), skipped ones included."""
    pending: int = 0
    """Created, not running yet: waiting for a slot, or for a retry's backoff."""
    running: int = 0
    """Launched and not finished."""
    succeeded: int = 0
    """Finished training (early stopping included)."""
    failed: int = 0
    """Failed with no retries left; these count against maxFailureRate."""
    stopped: int = 0
    """Ended by a Stop rule or cancelled; in the failure-rate denominator, but no failure."""
    skipped: int = 0
    """Marked Skipped by skipWhen; left out of the failure-rate denominator."""


class GateStatus(ApiModel):
    """The outcome of a gate and the values it saw."""

    expression: str
    """The gate's CEL expression (spec.phases[].gate.expression)."""
    passed: bool | None = None
    """True/False once evaluated; unset while the phase runs."""
    values: dict[str, Any] = Field(default_factory=dict)
    """The values the expression was evaluated with (the phase view without per-metric statistics)."""
    message: BoundedText | None = None
    """Why the gate did not hold, or why it could not be evaluated."""


class BestTrial(ApiModel):
    """The best trial of a phase by its objective."""

    trial: str
    """Name of the Trial."""
    metric: str
    """The ranking metric (the phase's objective, or fromPhase.metric)."""
    value: float
    """Its value at the trial's best epoch."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The trial's final hyperparameters."""
    metrics: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": BEST_METRICS_LIMIT},
        description=(
            f"At most {BEST_METRICS_LIMIT} of the trial's metrics at its best epoch: the ranking metric,"
            " then those the campaign's gates and `when` expressions name, then by name (all of them are"
            " in the Trial's status.best)."
        ),
    )


class FrontTrial(ApiModel):
    """A trial on a multi-objective phase's Pareto front."""

    trial: str
    """Name of the Trial."""
    values: dict[str, float] = Field(default_factory=dict, json_schema_extra={"maxProperties": 4})
    """Its objectives' values at its best epoch, by metric."""


class PhaseStatus(ApiModel):
    """Where one phase stands."""

    name: str
    """The phase's name (spec.phases[].name)."""
    state: PhaseState = PhaseState.PENDING
    """Pending, Running, Succeeded, Failed or Skipped."""
    reason: BoundedText | None = None
    """CamelCase reason of the state, e.g. WaitingForDependencies, GateNotMet, FailureThresholdExceeded."""
    message: BoundedText | None = None
    """What the state means in words (bounded; the most important part first)."""
    counts: TrialCounts = Field(default_factory=TrialCounts)
    """The phase's trials by state."""
    failure_rate: float = 0.0
    """failed / (total - skipped), counting only failures with no retries left."""
    max_failure_rate: float = 0.0
    """The phase's threshold (failurePolicy.maxFailureRate), for comparison."""
    gate: GateStatus | None = None
    """The gate's outcome, once the phase's trials have all finished."""
    best: BestTrial | None = None
    """The best Succeeded trial by the phase's objective (multi-objective: the front's best by the
    first objective)."""
    front: list[FrontTrial] | None = Field(None, max_length=FRONT_LIMIT)
    """Multi-objective phase: its Pareto front, ordered by the first objective (best first); over
    16 trials, 16 spread evenly along this order, both ends kept. Gates read all of it."""
    front_size: int | None = None
    """How many trials the whole front has."""
    promoted: dict[str, Any] | None = None
    """Parameters promoted from fromPhase."""
    start_time: datetime | None = None
    """When the phase's first trials were created."""
    completion_time: datetime | None = None
    """When the phase reached Succeeded, Failed or Skipped."""
    estimated_completion_time: datetime | None = None
    """ETA from the observed durations of this phase's finished trials."""


class TrainingCampaignStatus(ApiModel):
    """Observed state of a campaign. Per-trial detail lives in Trial objects, never here."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    observed_generation: int | None = None
    """The metadata.generation of the spec this status was planned from."""
    state: CampaignState = CampaignState.PENDING
    """Pending, Running, Succeeded, Failed or Suspended."""
    reason: BoundedText | None = None
    """CamelCase reason of the state, e.g. AllPhasesFinished, InvalidSpec, GateNotMet."""
    message: BoundedText | None = None
    """What the state means in words; for InvalidSpec the problems, each with its field path."""
    current_phase: str | None = None
    """The running phase of highest priority."""
    progress: str | None = None
    """finished/total trials, for kubectl get."""
    fail_rate: str | None = None
    """Failure rate of the current phase against its threshold, for kubectl get."""
    conditions: list[Condition] = Field(default_factory=list)
    """Progressing, Succeeded, Failed, Degraded, Suspended and ReconcileError (metav1.Condition)."""
    phases: list[PhaseStatus] = Field(default_factory=list)
    """One entry per spec.phases[], in the same order."""
    trials: TrialCounts = Field(default_factory=TrialCounts)
    """All trials of the campaign by state."""
    start_time: datetime | None = None
    """When the first trials were created."""
    completion_time: datetime | None = None
    """When the campaign reached Succeeded or Failed."""
    run: RunKind | None = None
    """full, smoke or partial (spec.scaleDown): whether these results are the whole plan's."""


class TrainingCampaign(ApiModel):
    """A training campaign: phases of trial sweeps with failure thresholds and gates."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    # The CRD's root rules (crdgen), so embedded validation judges metadata like the apiserver.
    cel_rules = (
        CelRule(
            "size(self.metadata.name) <= 63",
            "metadata.name: at most 63 characters (it becomes the `campaign` label of trials)",
        ),
    )

    api_version: Literal["training.campaign-operator.io/v1alpha1"] = "training.campaign-operator.io/v1alpha1"
    kind: Literal["TrainingCampaign"] = "TrainingCampaign"
    metadata: ObjectMeta
    spec: TrainingCampaignSpec
    status: TrainingCampaignStatus | None = None
