"""A trial's driver output on a cluster: the pod logs of its attempt's RayJob (KubeRay's submitter
runs `ray job submit`, which prints the driver's output), else its Ray head's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from campaign_operator.api.trial import Trial
from campaign_operator.kube.client import RAY_GROUP, RAY_VERSION, RAYJOBS, KubeClient, NotFound
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
        raise LogsUnavailable(f"trial {trial_name} has not been launched (state {trial.status.state.value})")
    if attempt is not None and not 1 <= attempt <= trial.status.attempt:
        raise LogsUnavailable(f"trial {trial_name} has attempts 1..{trial.status.attempt}, not {attempt}")
    if ref.kind != "RayJob":
        raise LogsUnavailable(
            f"trial {trial_name} ran as Ray job submission {ref.name} on a shared Ray cluster "
            "(executor rayjobs): read it with `ray job logs <id> --address <the executor's address>`"
        )
    wanted = attempt or ref.attempt
    job = ref.name if wanted == ref.attempt else job_name(trial.name, wanted, trial.metadata.uid)
    for role, selector in await _selectors(client, namespace, job):
        pods = await client.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector}
        )
        items = sorted(pods.get("items") or [], key=lambda p: p["metadata"].get("creationTimestamp", ""))
        if items:
            return LogSource(items[-1]["metadata"]["name"], role, job)
    raise LogsUnavailable(
        f"the pods of trial {trial_name}'s attempt {wanted} (RayJob {job}) are gone: their RayJob was "
        "deleted or cleaned up after it finished"
    )


async def _selectors(client: KubeClient, namespace: str, job: str) -> list[tuple[str, str]]:
    selectors = [("submitter", f"batch.kubernetes.io/job-name={job}")]
    try:
        rayjob = await client.get(RAY_GROUP, RAY_VERSION, RAYJOBS, namespace, job)
    except NotFound:
        return selectors
    cluster = (rayjob.get("status") or {}).get("rayClusterName")
    if cluster:
        selectors.append(("head", f"ray.io/cluster={cluster},ray.io/node-type=head"))
    return selectors


async def stream(client: KubeClient, namespace: str, source: LogSource, follow: bool) -> AsyncIterator[bytes]:
    query: dict[str, str | int] = {"follow": "true"} if follow else {}
    async for chunk in client.stream(f"/api/v1/namespaces/{namespace}/pods/{source.pod}/log", query):
        yield chunk
