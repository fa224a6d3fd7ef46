"""`kuberay` executor: one RayJob (with its own RayCluster) per trial attempt.

`build_rayjob` is pure (tested against the real apiserver with KubeRay's CRD); the lifecycle's
`from_rayjob` reads KubeRay's status; `KubeRayExecutor` does the I/O through the KubeClient.

A RayJob's name comes from its Trial's uid and attempt, and its labels carry that identity: a RayJob
found under the name is adopted (a repeated launch after a crash) only when they name this very Trial
uid and attempt, and the executor deletes no RayJob that is not its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from campaign_operator.api.campaign import Storage, TrainingCampaign
from campaign_operator.api.common import SHM_PATH, SHM_VOLUME, NodePool, PodTemplate, TrialState
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.kube.client import (
    RAY_GROUP,
    RAY_VERSION,
    RAYCLUSTERS,
    RAYJOBS,
    AlreadyExists,
    Conflict,
    KubeClient,
    NotFound,
)
from campaign_operator.lifecycle.outcomes import SUSPENDED, from_rayjob, identity_mismatch, job_lost
from campaign_operator.lifecycle.transitions import attempt_over
from campaign_operator.lifecycle.wire import JOB_ATTEMPT, JOB_TRIAL, JOB_TRIAL_UID, TRIAL_ENV
from campaign_operator.planner.naming import RAYJOB_NAME_LIMIT, job_name
from campaign_operator.planner.trials import LABEL_CAMPAIGN, LABEL_PHASE

from .base import JobOutcome, adopted
from .common import TrainerSettings, entrypoint, trial_document, trial_uid

log = logging.getLogger(__name__)

KIND = "RayJob"
LABEL_TRIAL = JOB_TRIAL
LABEL_ATTEMPT = JOB_ATTEMPT
LABEL_TRIAL_UID = JOB_TRIAL_UID
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "campaign-operator"
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY = "kueue.x-k8s.io/priority-class"
HEAD_CPU, HEAD_MEMORY = "1", "2Gi"
DEFAULT_MEMORY = "4Gi"
# The keys of storage.s3.credentialsSecret (the API's description names them).
S3_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# The submitter only runs `ray job submit` and follows the logs: it must not hold a trial's CPU.
SUBMITTER_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "200Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
NO_ADDITIONS = PodTemplate()
RBAC_GROUP = "rbac.authorization.k8s.io"

# Before an attempt's Ray job runs (startup_outcome).
STARTED_JOB_STATUSES = frozenset({"RUNNING", "SUCCEEDED", "FAILED", "STOPPED"})
STUCK_CONTAINER_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
# KubeRay's reasons (RayCluster condition ReplicaFailure) when the apiserver refused a pod: a missing
# ServiceAccount, Pod Security, a quota.
FAILED_POD_CREATION = frozenset({"FailedCreateHeadPod", "FailedCreateWorkerPod"})
UNSCHEDULABLE, STARTING, STARTED = "Unschedulable", "Starting", "Started"
WAITING_REASONS = frozenset({UNSCHEDULABLE, STARTING, *STUCK_CONTAINER_REASONS, *FAILED_POD_CREATION})
"""Reasons a Running trial shows while its attempt waits for its pods; cleared once they run."""
PRE_RUNNING_DEADLINE = "PreRunningDeadlineExceeded"

# Restricted Pod Security Standard: what a namespace labelled `restricted` admits.
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _toleration(t: Any) -> dict[str, Any]:
    return {k: v for k, v in t.to_wire().items() if v is not None}


def _resources(cpu: float, memory: str, gpus: int, gpu_resource: str) -> dict[str, Any]:
    """Requests as asked (two half-CPU trials share a core); the CPU limit whole, because KubeRay
    gives Ray `--num-cpus` from the limit and a Ray node's CPU count is whole."""
    requests = {"cpu": f"{round(cpu * 1000)}m", "memory": memory}
    limits = {"cpu": str(max(1, math.ceil(cpu))), "memory": memory}
    if gpus:
        # Extended resources may only be set as limits (requests default to them); KubeRay turns
        # any `*gpu` limit into `--num-gpus` for the Ray node.
        limits[gpu_resource] = str(gpus)
    return {"requests": requests, "limits": limits}


def _labels(trial: Trial) -> dict[str, str]:
    return {
        LABEL_CAMPAIGN: trial.spec.campaign,
        LABEL_PHASE: trial.spec.phase,
        LABEL_TRIAL: trial.name,
        LABEL_MANAGED_BY: MANAGER,
    }


def _gpus(trial: Trial, pool: NodePool | None) -> int:
    if pool is not None:
        return pool.gpus
    return math.ceil(trial.spec.resources.gpu)


def storage_env(storage: Storage | None) -> list[dict[str, Any]]:
    """What the trainer needs to reach the campaign's S3 checkpoints: the endpoint, and the keys as
    references to the credentials Secret (never copied into the RayJob, never logged)."""
    if storage is None or storage.s3 is None:
        return []
    s3 = storage.s3
    env: list[dict[str, Any]] = []
    if s3.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": s3.endpoint})
    if s3.credentials_secret:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret, "key": key}}}
            for key in S3_CREDENTIAL_KEYS
        ]
    return env


@dataclass(frozen=True)
class _PodContext:
    """What every pod of one attempt shares: its pool, labels, image, account and storage access."""

    trial: Trial
    attempt: int
    image: str
    pool: NodePool | None
    settings: TrainerSettings
    storage_env: tuple[dict[str, Any], ...] = ()

    @property
    def extra(self) -> PodTemplate:
        pool = self.pool
        return pool.pod_template if pool is not None and pool.pod_template is not None else NO_ADDITIONS

    @property
    def pull_policy(self) -> str:
        pool = self.pool
        if pool is not None and pool.image_pull_policy is not None:
            return pool.image_pull_policy
        return self.settings.image_pull_policy


def _pod(ctx: _PodContext, container: str, resources: dict[str, Any]) -> dict[str, Any]:
    """A pod template of the attempt: the pool's placement and additions, restricted-PSA security.

    Pods carry the attempt's labels so the executor can find them (its submitter's too) in one list.
    """
    extra, pool = ctx.extra, ctx.pool
    spec: dict[str, Any] = {
        "serviceAccountName": extra.service_account_name or ctx.settings.service_account,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [
            {
                "name": container,
                "image": ctx.image,
                "imagePullPolicy": ctx.pull_policy,
                "resources": resources,
                "securityContext": copy.deepcopy(CONTAINER_SECURITY),
            }
        ],
    }
    if ctx.trial.spec.scheduling.priority_class_name:
        spec["priorityClassName"] = ctx.trial.spec.scheduling.priority_class_name
    if pool is not None and pool.node_selector:
        spec["nodeSelector"] = dict(pool.node_selector)
    if pool is not None and pool.tolerations:
        spec["tolerations"] = [_toleration(t) for t in pool.tolerations]
    metadata: dict[str, Any] = {
        "labels": {**extra.labels, **_labels(ctx.trial), LABEL_ATTEMPT: str(ctx.attempt)}
    }
    if extra.annotations:
        metadata["annotations"] = dict(extra.annotations)
    return {"metadata": metadata, "spec": spec}


def _ray_pod(ctx: _PodContext, container: str, resources: dict[str, Any]) -> dict[str, Any]:
    """A Ray head or worker: the pool's env and volumes, and a RAM-backed /dev/shm."""
    extra = ctx.extra
    pod = _pod(ctx, container, resources)
    main = pod["spec"]["containers"][0]
    env = [*copy.deepcopy(ctx.storage_env), *(e.to_wire() for e in extra.env)]
    if env:
        main["env"] = env
    main["volumeMounts"] = [
        {"name": SHM_VOLUME, "mountPath": SHM_PATH},
        *(m.to_wire() for m in extra.volume_mounts),
    ]
    # Ray's object store falls back to slow /tmp when /dev/shm is the container default (64 MB).
    pod["spec"]["volumes"] = [
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}},
        *(v.to_wire() for v in extra.volumes),
    ]
    return pod


def _cluster_spec(ctx: _PodContext, ray_version: str) -> dict[str, Any]:
    """The attempt's own RayCluster: a head, plus a worker group when the trial has workers."""
    res = ctx.trial.spec.resources
    memory = res.memory or DEFAULT_MEMORY
    gpus = _gpus(ctx.trial, ctx.pool)
    gpu_resource = ctx.pool.gpu_resource if ctx.pool is not None else "nvidia.com/gpu"
    trainer = _resources(res.cpu, memory, gpus, gpu_resource)
    if res.workers == 0:
        # Ray Train local mode: the training loop runs in the driver, on the head, so the head
        # carries the GPUs.
        head = {
            "rayStartParams": {"dashboard-host": "0.0.0.0"},
            "template": _ray_pod(ctx, "ray-head", trainer),
        }
        return {"rayVersion": ray_version, "headGroupSpec": head}
    head_resources = _resources(1, HEAD_MEMORY, 0, gpu_resource)
    head_resources["limits"]["cpu"] = HEAD_CPU
    # No training on the head: the workers take it all.
    head = {
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": _ray_pod(ctx, "ray-head", head_resources),
    }
    workers = {
        "groupName": "trainers",
        "replicas": res.workers,
        "minReplicas": res.workers,
        "maxReplicas": res.workers,
        "rayStartParams": {},
        "template": _ray_pod(ctx, "ray-worker", trainer),
    }
    return {"rayVersion": ray_version, "headGroupSpec": head, "workerGroupSpecs": [workers]}


def _submitter(ctx: _PodContext) -> dict[str, Any]:
    """The pod that runs `ray job submit`: small, never restarted (its Job retries)."""
    pod = _pod(ctx, "ray-job-submitter", copy.deepcopy(SUBMITTER_RESOURCES))
    pod["spec"]["restartPolicy"] = "Never"
    return pod


def _metadata(trial: Trial, attempt: int) -> dict[str, Any]:
    sched = trial.spec.scheduling
    labels = {**_labels(trial), LABEL_ATTEMPT: str(attempt)}
    if trial.metadata.uid:
        labels[LABEL_TRIAL_UID] = trial.metadata.uid
    if sched.queue_name:
        labels[KUEUE_QUEUE] = sched.queue_name
    if sched.workload_priority_class:
        labels[KUEUE_PRIORITY] = sched.workload_priority_class
    meta: dict[str, Any] = {
        "name": job_name(trial.name, attempt, trial.metadata.uid),
        "namespace": trial.metadata.namespace,
        "labels": labels,
    }
    if trial.metadata.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": trial.api_version,
                "kind": "Trial",
                "name": trial.name,
                "uid": trial.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def build_rayjob(
    trial: Trial, attempt: int, campaign: TrainingCampaign, settings: TrainerSettings
) -> dict[str, Any]:
    """The RayJob for one attempt of `trial`: its own RayCluster on the phase's node pool.

    Only fields that every supported KubeRay release's CRD has (tests/integration/k8s checks each
    with strict field validation); the pre-running deadline is ours (`startup_outcome`).
    """
    metadata = _metadata(trial, attempt)
    if len(metadata["name"]) > RAYJOB_NAME_LIMIT:  # naming guarantees this; a violation is our bug
        raise ValueError(f"RayJob name {metadata['name']!r} is longer than {RAYJOB_NAME_LIMIT} characters")
    executor = campaign.spec.executor
    pool = trial.spec.scheduling.node_pool
    image = trial.spec.image or settings.image
    ctx = _PodContext(trial, attempt, image, pool, settings, tuple(storage_env(campaign.spec.storage)))
    res = trial.spec.resources
    gpus = _gpus(trial, pool)
    env = {TRIAL_ENV: trial_document(trial), **settings.env}
    return {
        "apiVersion": f"{RAY_GROUP}/{RAY_VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "entrypoint": entrypoint(settings),
            "runtimeEnvYAML": yaml.safe_dump({"env_vars": env}, sort_keys=True),
            "entrypointNumCpus": float(res.cpu) if res.workers == 0 else 0.0,
            **({"entrypointNumGpus": float(gpus)} if res.workers == 0 and gpus else {}),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": executor.ttl_seconds_after_finished,
            "activeDeadlineSeconds": executor.active_deadline_seconds,
            "submitterPodTemplate": _submitter(ctx),
            "rayClusterSpec": _cluster_spec(ctx, executor.ray_version),
        },
    }


def claimed_identity(rayjob: dict[str, Any]) -> dict[str, str]:
    """The Trial and attempt a RayJob's labels name. A RayJob from before the uid label names its
    Trial by its controller owner reference (the operator set both)."""
    meta = rayjob.get("metadata") or {}
    labels = meta.get("labels") or {}
    claimed = {k: str(labels[k]) for k in (LABEL_TRIAL, LABEL_ATTEMPT, LABEL_TRIAL_UID) if k in labels}
    if LABEL_TRIAL_UID not in claimed:
        owner = next(
            (
                o
                for o in meta.get("ownerReferences") or []
                if o.get("kind") == "Trial" and o.get("controller") and o.get("uid")
            ),
            None,
        )
        if owner is not None:
            claimed[LABEL_TRIAL_UID] = str(owner["uid"])
    return claimed


@dataclass(frozen=True)
class PodProblem:
    """Why an attempt's pods do not run: KubeRay's, the scheduler's or the kubelet's reason and message."""

    reason: str
    message: str


def _pod_name(pod: dict[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def _not_created(cluster: dict[str, Any]) -> PodProblem | None:
    for cond in (cluster.get("status") or {}).get("conditions") or []:
        reason = cond.get("reason")
        if (
            cond.get("type") == "ReplicaFailure"
            and cond.get("status") == "True"
            and reason in FAILED_POD_CREATION
        ):
            return PodProblem(reason, f"RayCluster {_pod_name(cluster)}: {cond.get('message') or reason}")
    return None


def _unscheduled(pod: dict[str, Any]) -> PodProblem | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return PodProblem(
                UNSCHEDULABLE, f"pod {_pod_name(pod)}: {cond.get('message') or cond.get('reason')}"
            )
    return None


def _container_stuck(pod: dict[str, Any]) -> PodProblem | None:
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in STUCK_CONTAINER_REASONS:
            detail = waiting.get("message") or reason
            return PodProblem(reason, f"pod {_pod_name(pod)}, container {cs.get('name')}: {detail}")
    return None


def startup_problem(clusters: list[dict[str, Any]], pods: list[dict[str, Any]]) -> PodProblem | None:
    """The first thing that keeps an attempt's pods from running, given its RayCluster and pods:
    KubeRay could not create them, the scheduler cannot place them, or a container cannot start."""
    live = sorted((p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")), key=_pod_name)
    checks = ((_not_created, clusters), (_unscheduled, live), (_container_stuck, live))
    for check, objects in checks:
        for obj in objects:
            problem = check(obj)
            if problem is not None:
                return problem
    return None


def has_started(rayjob: dict[str, Any]) -> bool:
    """The attempt's Ray job runs (or ran). KubeRay's jobDeploymentStatus alone says Running as
    soon as it created the submitter, which may itself never be scheduled."""
    return (rayjob.get("status") or {}).get("jobStatus") in STARTED_JOB_STATUSES


def _clock_start(trial: Trial, rayjob: dict[str, Any]) -> datetime | None:
    """The attempt's start, or KubeRay's later one: it restarts the RayJob's startTime when Kueue
    admits a suspended job, so a wait in Kueue's queue does not count."""
    starts = [trial.status.start_time]
    stamp = (rayjob.get("status") or {}).get("startTime")
    if stamp:
        starts.append(datetime.fromisoformat(stamp))
    known = [s for s in starts if s is not None]
    return max(known) if known else None


def _kuberay_view(rayjob: dict[str, Any]) -> str:
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or "New"
    return f"KubeRay reports jobDeploymentStatus {deployment}, jobStatus {status.get('jobStatus') or 'unset'}"


def startup_outcome(
    rayjob: dict[str, Any],
    trial: Trial,
    deadline_seconds: int,
    now: datetime,
    problem: PodProblem | None,
) -> JobOutcome | None:
    """Until an attempt's Ray job runs: its pods' trouble on the trial, and the pre-running deadline.

    KubeRay 1.4/1.5 have no such deadline: a RayJob whose pods never start waits until
    activeDeadlineSeconds (a day by default). None when there is nothing to add.
    """
    name = rayjob.get("metadata", {}).get("name", "?")
    shown = trial.status.reason
    if has_started(rayjob):
        if shown in WAITING_REASONS:
            return JobOutcome(TrialState.RUNNING, STARTED, f"RayJob {name} is running")
        return None
    since = _clock_start(trial, rayjob)
    if since is not None and (now - since).total_seconds() > deadline_seconds:
        why = problem.message if problem is not None else _kuberay_view(rayjob)
        return JobOutcome(
            TrialState.FAILED,
            PRE_RUNNING_DEADLINE,
            f"RayJob {name} did not start running within {deadline_seconds}s"
            f" (executor.preRunningDeadlineSeconds): {why}",
        )
    if problem is not None:
        return JobOutcome(TrialState.RUNNING, problem.reason, f"RayJob {name} is waiting: {problem.message}")
    if shown in WAITING_REASONS - {STARTING}:
        return JobOutcome(
            TrialState.RUNNING,
            STARTING,
            f"RayJob {name}: its pods are no longer held up; its Ray job is starting",
        )
    return None


def trainer_identity(
    namespace: str, account: str, cluster_role: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trainer's ServiceAccount in `namespace` and its RoleBinding to the trainer ClusterRole."""
    labels = {LABEL_MANAGED_BY: MANAGER}
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": namespace, "labels": labels},
    }
    binding = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": cluster_role, "namespace": namespace, "labels": labels},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    return service_account, binding


class TrainerAccounts:
    """Gives trainers their identity in a namespace before its first RayJob, once per process.

    Campaigns may live in any namespace the operator watches (all of them, cluster-wide); the chart
    cannot know them in advance, so the operator creates the ServiceAccount and binds it to the
    chart's least-privilege ClusterRole, the only one it may bind.
    """

    def __init__(self, client: KubeClient, settings: TrainerSettings):
        self.client = client
        self.settings = settings
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    async def ensure(self, namespace: str) -> None:
        role = self.settings.cluster_role
        if not role or namespace in self._ready:
            return
        async with self._lock:  # parallel launches in one namespace: one round of calls
            if namespace in self._ready:
                return
            account, binding = trainer_identity(namespace, self.settings.service_account, role)
            await self.client.ensure("", "v1", "serviceaccounts", namespace, account)
            await self.client.ensure(RBAC_GROUP, "v1", "rolebindings", namespace, binding)
            self._ready.add(namespace)


def _now() -> datetime:
    return datetime.now(UTC)


class KubeRayExecutor:
    """I/O for RayJobs of one campaign; `observe` lists them once per reconcile."""

    kind = "kuberay"

    def __init__(
        self,
        client: KubeClient,
        campaign: TrainingCampaign,
        settings: TrainerSettings,
        accounts: TrainerAccounts | None = None,
        now: Callable[[], datetime] = _now,
    ):
        self.client = client
        self.campaign = campaign
        self.settings = settings
        self.accounts = accounts or TrainerAccounts(client, settings)
        self.now = now
        self.namespace = campaign.metadata.namespace or "default"
        self._jobs: dict[str, dict[str, Any]] | None = None
        self._clusters: list[dict[str, Any]] | None = None
        self._pods: list[dict[str, Any]] | None = None

    async def observe(self, trials: list[Trial]) -> None:
        """One list per reconcile; also deletes RayJobs of attempts that are over.

        Those are left behind when the operator dies between recording an outcome and deleting the
        job. The job of the *next* attempt of a trial waiting to be (re)launched is kept: it was
        submitted just before a crash, and the repeated launch adopts it.
        """
        jobs = await self.client.list_objects(
            RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, f"{LABEL_CAMPAIGN}={self.campaign.metadata.name}"
        )
        self._jobs = {}
        by_uid = {t.metadata.uid: t for t in trials if t.metadata.uid}
        for job in jobs:
            meta = job["metadata"]
            claimed = claimed_identity(job)
            trial = by_uid.get(claimed.get(LABEL_TRIAL_UID, ""))  # only our own RayJobs are deleted
            attempt = claimed.get(LABEL_ATTEMPT, "")
            if trial is not None and (not attempt.isdigit() or attempt_over(trial.status, int(attempt))):
                if "deletionTimestamp" not in meta:
                    await self.client.delete(
                        RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, meta["name"], uid=meta.get("uid")
                    )
            else:
                self._jobs[meta["name"]] = job

    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        uid = trial_uid(trial)
        body = build_rayjob(trial, attempt, self.campaign, self.settings)
        name = body["metadata"]["name"]
        ref = ExecutorRef(kind=KIND, name=name, namespace=self.namespace, attempt=attempt)
        existing = (self._jobs or {}).get(name)
        if existing is None:
            await self.accounts.ensure(self.namespace)  # before KubeRay creates pods that need it
            try:
                await self.client.create(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, body)
                return ref
            except AlreadyExists:
                existing = await self.client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, name)
        # Created before a crash: adopt it, if it is this very attempt's.
        return adopted(f"RayJob {self.namespace}/{name}", claimed_identity(existing), uid, attempt, ref)

    async def poll(self, trial: Trial) -> JobOutcome | None:
        ref = trial.status.executor_ref
        if ref is None:
            return None
        job = (self._jobs or {}).get(ref.name)
        if job is None:
            try:
                job = await self.client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, ref.name)
            except NotFound:
                return job_lost(f"RayJob {ref.name}", "was deleted, not by the operator")
        outcome = from_rayjob(job, was_suspended=trial.status.reason == SUSPENDED)
        if outcome is not None:
            return outcome
        problem = None if has_started(job) else await self._startup_problem(trial.name, ref.attempt)
        deadline = self.campaign.spec.executor.pre_running_deadline_seconds
        return startup_outcome(job, trial, deadline, self.now(), problem)

    async def _startup_problem(self, trial: str, attempt: int) -> PodProblem | None:
        """What keeps an attempt's pods from running, from one list of the campaign's RayClusters and
        one of its pods per reconcile (both carry the attempt's labels: KubeRay copies the RayJob's
        onto its RayCluster, and the pod templates set them)."""
        selector = f"{LABEL_CAMPAIGN}={self.campaign.metadata.name},{LABEL_MANAGED_BY}={MANAGER}"
        if self._clusters is None:
            self._clusters = await self.client.list_objects(
                RAY_GROUP, RAY_VERSION, RAYCLUSTERS, self.namespace, selector
            )
        if self._pods is None:
            self._pods = await self.client.list_objects("", "v1", "pods", self.namespace, selector)
        wanted = {LABEL_TRIAL: trial, LABEL_ATTEMPT: str(attempt)}

        def of_attempt(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [o for o in objects if wanted.items() <= o["metadata"].get("labels", {}).items()]

        return startup_problem(of_attempt(self._clusters), of_attempt(self._pods))

    async def stop(self, trial: Trial) -> None:
        """Deleting the RayJob makes KubeRay stop the Ray job and remove its cluster: only the RayJob
        of this very attempt (the delete's uid precondition holds it to the one checked)."""
        ref = trial.status.executor_ref
        if ref is None or not trial.metadata.uid:
            return
        job = (self._jobs or {}).get(ref.name)
        if job is None:
            try:
                job = await self.client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, ref.name)
            except NotFound:
                return
        if identity_mismatch(ref.name, claimed_identity(job), trial.metadata.uid, ref.attempt):
            log.warning(
                "not deleting RayJob %s: it is not attempt %d of trial %s", ref.name, ref.attempt, trial.name
            )
            return
        with contextlib.suppress(Conflict):  # replaced since: not ours to delete
            await self.client.delete(
                RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, ref.name, uid=job["metadata"].get("uid")
            )
