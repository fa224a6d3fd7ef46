"""`kuberay` executor: one RayJob (with its own RayCluster) per trial attempt.

`build_rayjob` is pure (tested against the real apiserver with KubeRay's CRD); `outcome_of` maps
KubeRay's `jobDeploymentStatus`/`jobStatus`/`reason` to trial outcomes; `KubeRayExecutor` does the
I/O through the operator's KubeClient.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import Any

import yaml

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import NodePool, TrialState
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.k8s.client import RAY_GROUP, RAY_VERSION, RAYJOBS, AlreadyExists, KubeClient, NotFound
from campaign_operator.planner.naming import RAYJOB_NAME_LIMIT, job_name
from campaign_operator.planner.trials import LABEL_CAMPAIGN, LABEL_PHASE

from .base import JobOutcome
from .common import TRIAL_ENV, TrainerSettings, entrypoint, trial_document

log = logging.getLogger(__name__)

KIND = "RayJob"
LABEL_TRIAL = "trial"
LABEL_ATTEMPT = "attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "campaign-operator"
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY = "kueue.x-k8s.io/priority-class"
HEAD_CPU, HEAD_MEMORY = "1", "2Gi"
DEFAULT_MEMORY = "4Gi"

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
    amount = {"cpu": str(max(1, math.ceil(cpu))), "memory": memory}
    limits = dict(amount)
    if gpus:
        # Extended resources may only be set as limits (requests default to them); KubeRay turns
        # any `*gpu` limit into `--num-gpus` for the Ray node.
        limits[gpu_resource] = str(gpus)
    return {"requests": amount, "limits": limits}


def _pod(
    trial: Trial,
    image: str,
    container: str,
    resources: dict[str, Any],
    pool: NodePool | None,
    settings: TrainerSettings,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": settings.service_account,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [
            {
                "name": container,
                "image": image,
                "resources": resources,
                "securityContext": copy.deepcopy(CONTAINER_SECURITY),
                "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
            }
        ],
        # Ray's object store falls back to slow /tmp when /dev/shm is the container default (64 MB).
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
    }
    if trial.spec.scheduling.priority_class_name:
        spec["priorityClassName"] = trial.spec.scheduling.priority_class_name
    if pool is not None:
        if pool.node_selector:
            spec["nodeSelector"] = dict(pool.node_selector)
        if pool.tolerations:
            spec["tolerations"] = [_toleration(t) for t in pool.tolerations]
    return {"metadata": {"labels": _labels(trial)}, "spec": spec}


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


def build_rayjob(
    trial: Trial, attempt: int, campaign: TrainingCampaign, settings: TrainerSettings
) -> dict[str, Any]:
    """The RayJob for one attempt of `trial`: its own RayCluster on the phase's node pool."""
    name = job_name(trial.name, attempt)
    if len(name) > RAYJOB_NAME_LIMIT:  # naming guarantees this; a violation is our bug, not the user's
        raise ValueError(f"RayJob name {name!r} is longer than {RAYJOB_NAME_LIMIT} characters")
    executor = campaign.spec.executor
    sched = trial.spec.scheduling
    pool = sched.node_pool
    image = trial.spec.image or settings.image
    res = trial.spec.resources
    memory = res.memory or DEFAULT_MEMORY
    gpus = _gpus(trial, pool)
    gpu_resource = pool.gpu_resource if pool is not None else "nvidia.com/gpu"

    labels = {**_labels(trial), LABEL_ATTEMPT: str(attempt)}
    if sched.queue_name:
        labels[KUEUE_QUEUE] = sched.queue_name
    if sched.workload_priority_class:
        labels[KUEUE_PRIORITY] = sched.workload_priority_class

    if res.workers == 0:
        # Ray Train local mode: the training loop runs in the driver, on the head, so the head
        # carries the node pool and the GPUs.
        head = _pod(trial, image, "ray-head", _resources(res.cpu, memory, gpus, gpu_resource), pool, settings)
        workers: list[dict[str, Any]] = []
        head_params = {"dashboard-host": "0.0.0.0"}
    else:
        head = _pod(trial, image, "ray-head", _resources(1, HEAD_MEMORY, 0, gpu_resource), None, settings)
        head["spec"]["containers"][0]["resources"]["limits"]["cpu"] = HEAD_CPU
        # No training on the head: the workers (on the pool) take it all.
        head_params = {"dashboard-host": "0.0.0.0", "num-cpus": "0"}
        worker = _pod(
            trial, image, "ray-worker", _resources(res.cpu, memory, gpus, gpu_resource), pool, settings
        )
        workers = [
            {
                "groupName": "trainers",
                "replicas": res.workers,
                "minReplicas": res.workers,
                "maxReplicas": res.workers,
                "rayStartParams": {},
                "template": worker,
            }
        ]
    submitter = _pod(
        trial, image, "ray-job-submitter", _resources(0.5, "512Mi", 0, gpu_resource), None, settings
    )
    submitter["spec"]["restartPolicy"] = "Never"
    submitter["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "500m", "memory": "200Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    submitter["spec"]["containers"][0].pop("volumeMounts")
    submitter["spec"].pop("volumes")

    owner = []
    if trial.metadata.uid:
        owner = [
            {
                "apiVersion": trial.api_version,
                "kind": "Trial",
                "name": trial.name,
                "uid": trial.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    env = {TRIAL_ENV: trial_document(trial), **settings.env}
    return {
        "apiVersion": f"{RAY_GROUP}/{RAY_VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": trial.metadata.namespace,
            "labels": labels,
            **({"ownerReferences": owner} if owner else {}),
        },
        "spec": {
            "entrypoint": entrypoint(settings),
            "runtimeEnvYAML": yaml.safe_dump({"env_vars": env}, sort_keys=True),
            "entrypointNumCpus": float(res.cpu) if res.workers == 0 else 0.0,
            **({"entrypointNumGpus": float(gpus)} if res.workers == 0 and gpus else {}),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": executor.ttl_seconds_after_finished,
            "activeDeadlineSeconds": executor.active_deadline_seconds,
            "preRunningDeadlineSeconds": executor.pre_running_deadline_seconds,
            "submitterPodTemplate": submitter,
            "rayClusterSpec": {
                "rayVersion": executor.ray_version,
                "headGroupSpec": {"rayStartParams": head_params, "template": head},
                **({"workerGroupSpecs": workers} if workers else {}),
            },
        },
    }


def outcome_of(rayjob: dict[str, Any], trial: Trial) -> JobOutcome | None:
    """KubeRay's view of an attempt -> a trial outcome; None when there is nothing to add.

    Only called for trials that are still Running (the trainer reports its own outcome first).
    """
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or ""
    job = status.get("jobStatus") or ""
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    name = rayjob.get("metadata", {}).get("name", "?")
    if deployment == "Complete":
        if job == "SUCCEEDED":
            return JobOutcome(TrialState.SUCCEEDED, "JobSucceeded", f"RayJob {name} succeeded")
        if job == "STOPPED":
            return JobOutcome(TrialState.STOPPED, "JobStopped", f"RayJob {name} was stopped")
        return JobOutcome(
            TrialState.FAILED,
            reason or "AppFailed",
            message or f"RayJob {name} finished with job status {job}",
        )
    if deployment == "Failed":
        # DeadlineExceeded, PreRunningDeadlineExceeded, SubmissionFailed, AppFailed, ... : KubeRay's
        # reason is already CamelCase and specific; keep it and its message.
        why = reason or "JobDeploymentFailed"
        return JobOutcome(TrialState.FAILED, why, message or f"RayJob {name} failed ({why})")
    if deployment == "ValidationFailed":
        return JobOutcome(TrialState.FAILED, "ValidationFailed", message or f"KubeRay rejected RayJob {name}")
    if deployment in ("Suspended", "Suspending"):
        # Kueue holds the job (not admitted yet, or preempted): not a failure. The RayJob stays, so
        # Kueue re-admits it in its queue position; the trial keeps its slot meanwhile.
        return JobOutcome(
            TrialState.RUNNING,
            "Suspended",
            f"RayJob {name} is suspended (Kueue: not admitted yet, or preempted); it resumes on admission",
        )
    if trial.status.reason == "Suspended":
        return JobOutcome(TrialState.RUNNING, "Resumed", f"RayJob {name} is {deployment or 'starting'}")
    return None


def _attempt_over(trial: Trial, attempt: int) -> bool:
    state, current = trial.status.state, trial.status.attempt
    if state == TrialState.RUNNING:
        return attempt != current
    if state in (TrialState.PENDING, TrialState.FAILED):  # may still launch attempt current + 1
        return attempt != current + 1
    return True


class KubeRayExecutor:
    """I/O for RayJobs of one campaign; `observe` lists them once per reconcile."""

    kind = "kuberay"

    def __init__(self, client: KubeClient, campaign: TrainingCampaign, settings: TrainerSettings):
        self.client = client
        self.campaign = campaign
        self.settings = settings
        self.namespace = campaign.metadata.namespace or "default"
        self._jobs: dict[str, dict[str, Any]] | None = None

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
        by_name = {t.name: t for t in trials}
        for job in jobs:
            meta = job["metadata"]
            labels = meta.get("labels", {})
            trial = by_name.get(labels.get(LABEL_TRIAL, ""))
            if trial is not None and _attempt_over(trial, int(labels.get(LABEL_ATTEMPT, "0") or 0)):
                if "deletionTimestamp" not in meta:
                    await self.client.delete(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, meta["name"])
            else:
                self._jobs[meta["name"]] = job

    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        body = build_rayjob(trial, attempt, self.campaign, self.settings)
        name = body["metadata"]["name"]
        if self._jobs is None or name not in self._jobs:
            with contextlib.suppress(AlreadyExists):  # a repeat after a crash is a no-op
                await self.client.create(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, body)
        return ExecutorRef(kind=KIND, name=name, namespace=self.namespace, attempt=attempt)

    async def poll(self, trial: Trial) -> JobOutcome | None:
        ref = trial.status.executor_ref
        if ref is None:
            return None
        job = (self._jobs or {}).get(ref.name)
        if job is None:
            try:
                job = await self.client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, ref.name)
            except NotFound:
                return JobOutcome(TrialState.FAILED, "JobLost", f"RayJob {ref.name} no longer exists")
        return outcome_of(job, trial)

    async def stop(self, trial: Trial) -> None:
        """Deleting the RayJob makes KubeRay stop the Ray job and remove its cluster."""
        ref = trial.status.executor_ref
        if ref is not None:
            await self.client.delete(RAY_GROUP, RAY_VERSION, RAYJOBS, self.namespace, ref.name)
