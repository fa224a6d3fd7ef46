"""A trial's driver output on a cluster: the pod logs of its attempt's RayJob (KubeRay's submitter
runs `ray job submit`, which prints the driver's output), else its Ray head's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.kube.client import RAY_GROUP, RAY_VERSION, RAYJOBS, ApiError, KubeClient, NotFound
from campaign_operator.lifecycle.wire import GROUP, TRIALS, VERSION
from campaign_operator.planner.naming import job_name


class LogsUnavailable(Exception):
    """Why there is nothing to show (said as what to do instead)."""


@dataclass(frozen=True)
class LogSource:
    pod: str
    role: str
    """submitter (the driver's output) or head."""
    job: str


async def locate(client: KubeClient, namespace: str, trial_name: str, attempt: int | None) -> LogSource:
    """The pod whose log holds the trial's output for `attempt` (default: the latest)."""
    trial = Trial.model_validate(await client.get(GROUP, VERSION, TRIALS, namespace, trial_name))
    ref = trial.status.executor_ref
    if ref is None:
        waits = trial.status.state == TrialState.PENDING
        raise (NotYet if waits else LogsUnavailable)(
            f"trial {trial_name} has not been launched (state {trial.status.state.value})"
        )
    if attempt is not None and not 1 <= attempt <= trial.status.attempt:
        raise LogsUnavailable(f"trial {trial_name} has attempts 1..{trial.status.attempt}, not {attempt}")
    if ref.kind != "RayJob":
        raise LogsUnavailable(
            f"trial {trial_name} ran as Ray job submission {ref.name} on a shared Ray cluster "
            "(executor rayjobs): read it with `ray job logs <id> --address <the executor's address>`"
        )
    wanted = attempt or ref.attempt
    job = ref.name if wanted == ref.attempt else job_name(trial.name, wanted, trial.metadata.uid)
    try:
        rayjob = await client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, namespace, job)
    except NotFound:
        said = ": ".join(x for x in (trial.status.reason, trial.status.message) if x)
        raise LogsUnavailable(
            f"the pods of trial {trial_name}'s attempt {wanted} are gone: the operator deletes an attempt's "
            f"RayJob ({job}) when the attempt ends" + (f"; the trial's status says {said}" if said else "")
        ) from None
    status = rayjob.get("status") or {}
    submitter = await _newest_pod(client, namespace, f"batch.kubernetes.io/job-name={job}")
    if submitter is not None:
        return LogSource(submitter, "submitter", job)
    deployment = status.get("jobDeploymentStatus") or "Initializing"
    cluster = status.get("rayClusterName")
    # KubeRay starts the submitter once the Ray cluster is up: until then it is coming.
    head = None
    if cluster and deployment not in SUBMITTER_COMING:
        head = await _newest_pod(client, namespace, f"ray.io/cluster={cluster},ray.io/node-type=head")
    if head is not None:
        return LogSource(head, "head", job)
    raise NotYet(
        f"the submitter of trial {trial_name}'s attempt {wanted} has not started (RayJob {job}: {deployment})"
    )


SUBMITTER_COMING = ("", "New", "Initializing", "Waiting")
"""RayJob deployment states before KubeRay creates the submitter Job."""
JOB_OVER = ("Complete", "Failed")
"""RayJob deployment states after which no submitter pod comes."""


async def job_over(client: KubeClient, namespace: str, job: str) -> bool:
    """No more output is coming: the RayJob finished, or is gone."""
    try:
        rayjob = await client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, namespace, job)
    except NotFound:
        return True
    return (rayjob.get("status") or {}).get("jobDeploymentStatus") in JOB_OVER


class NotYet(LogsUnavailable):
    """The attempt's RayJob exists, its submitter pod does not yet: try again in a moment."""


async def _newest_pod(client: KubeClient, namespace: str, selector: str) -> str | None:
    query = {"labelSelector": selector}
    pods = await client.request("GET", f"/api/v1/namespaces/{namespace}/pods", query=query)
    items = sorted(pods.get("items") or [], key=lambda p: p["metadata"].get("creationTimestamp", ""))
    return str(items[-1]["metadata"]["name"]) if items else None


async def stream(client: KubeClient, namespace: str, source: LogSource, follow: bool) -> AsyncIterator[bytes]:
    """The pod's log; NotYet while its container is still being created (the kubelet answers 400)."""
    query: dict[str, str | int] = {"follow": "true"} if follow else {}
    try:
        async for chunk in client.stream(f"/api/v1/namespaces/{namespace}/pods/{source.pod}/log", query):
            yield chunk
    except ApiError as e:
        if e.status == 400 and "waiting to start" in e.body:
            raise NotYet(f"the {source.role} pod {source.pod} is starting") from None
        raise
