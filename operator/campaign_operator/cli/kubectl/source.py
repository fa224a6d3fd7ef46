"""A campaign as the views read it, from the apiserver: the TrainingCampaign and its Trials, once
(`status`, `results`, `report`) or followed with watches (`watch`), never by polling every object."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from campaign_operator.api.campaign import CampaignState, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.trial import Trial
from campaign_operator.kube.client import Expired, KubeClient
from campaign_operator.lifecycle.wire import CAMPAIGNS, GROUP, TRIALS, VERSION
from campaign_operator.planner.trials import LABEL_CAMPAIGN
from campaign_operator.report.live import Snapshot
from campaign_operator.report.results import CampaignData

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
REFRESH_S = 0.25
"""The view is redrawn at most this often while events arrive in bursts."""


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace kubectl would use: the context's, else `default` (in a pod: the pod's)."""
    paths = [kubeconfig] if kubeconfig else os.environ.get("KUBECONFIG", "").split(os.pathsep)
    paths = [p for p in paths if p] or [str(Path.home() / ".kube" / "config")]
    configs = [yaml.safe_load(Path(p).read_text()) or {} for p in paths if Path(p).is_file()]
    if not configs and IN_CLUSTER_NAMESPACE.is_file():
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    wanted = context or next((c.get("current-context") for c in configs if c.get("current-context")), None)
    for config in configs:
        for entry in config.get("contexts") or []:
            if entry.get("name") == wanted:
                return str((entry.get("context") or {}).get("namespace") or "default")
    return "default"


def path(plural: str, namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


@dataclass
class CampaignView:
    """The latest campaign object and its Trials by name, kept current by watch events."""

    namespace: str
    name: str
    campaign: dict[str, Any] = field(default_factory=dict)
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    """Where each watch resumes: the resourceVersion of its list or its latest event."""

    def apply(self, what: str, event: Mapping[str, Any]) -> None:
        obj = event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.versions[what] = version
        if event.get("type") == "BOOKMARK":
            return
        if what == CAMPAIGNS:
            if event.get("type") != "DELETED":
                self.campaign = dict(obj)
            return
        name = obj["metadata"]["name"]
        if event.get("type") == "DELETED":
            self.trials.pop(name, None)
        else:
            self.trials[name] = dict(obj)

    @property
    def finished(self) -> bool:
        state = (self.campaign.get("status") or {}).get("state")
        return state in (CampaignState.SUCCEEDED.value, CampaignState.FAILED.value)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            name=self.name,
            status=TrainingCampaignStatus.model_validate(self.campaign.get("status") or {}),
            trials=self.parsed_trials(),
            runner=f"namespace {self.namespace}",
            campaign=self._campaign_or_none(),
        )

    def _campaign_or_none(self) -> TrainingCampaign | None:
        """The manifest for the view's planned totals and banner, when this version can read it."""
        try:
            return TrainingCampaign.model_validate(self.campaign)
        except ValueError:
            return None

    def parsed_trials(self) -> list[Trial]:
        return [Trial.model_validate(self.trials[n]) for n in sorted(self.trials)]

    def data(self) -> CampaignData:
        return CampaignData(
            TrainingCampaign.model_validate(self.campaign),
            TrainingCampaignStatus.model_validate(self.campaign.get("status") or {}),
            self.parsed_trials(),
        )


async def read(client: KubeClient, namespace: str, name: str) -> CampaignView:
    """The campaign and all its Trials (paged lists), with the versions a watch resumes from."""
    view = CampaignView(namespace, name)
    view.campaign = await client.get(GROUP, VERSION, CAMPAIGNS, namespace, name)
    view.versions[CAMPAIGNS] = view.campaign["metadata"]["resourceVersion"]
    query: dict[str, str | int] = {"labelSelector": f"{LABEL_CAMPAIGN}={name}", "limit": 500}
    while True:
        page = await client.request("GET", path(TRIALS, namespace), query=query)
        for t in page.get("items") or []:
            view.trials[t["metadata"]["name"]] = t
        meta = page.get("metadata") or {}
        view.versions[TRIALS] = meta.get("resourceVersion", "")
        if not meta.get("continue"):
            return view
        query["continue"] = meta["continue"]


async def followed(client: KubeClient, namespace: str, name: str) -> AsyncGenerator[Snapshot]:
    """Snapshots as the campaign and its Trials change (two watches), until the campaign ends."""
    view = await read(client, namespace, name)
    yield view.snapshot()
    while not view.finished:
        try:
            async for _ in _changes(client, view):
                yield view.snapshot()
                if view.finished:
                    return
        except Expired:  # the watches fell behind what etcd keeps: start from a fresh list
            view = await read(client, namespace, name)
            yield view.snapshot()


async def _changes(client: KubeClient, view: CampaignView) -> AsyncIterator[None]:
    """Applies both watches' events to `view`; yields after each burst, returns when a watch ends."""
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | BaseException | None] = asyncio.Queue()
    selectors = {
        CAMPAIGNS: {"fieldSelector": f"metadata.name={view.name}"},
        TRIALS: {"labelSelector": f"{LABEL_CAMPAIGN}={view.name}"},
    }

    async def pump(what: str) -> None:
        try:
            async for event in client.watch(path(what, view.namespace), view.versions[what], selectors[what]):
                await queue.put((what, event))
            await queue.put(None)
        except BaseException as e:  # handed to the consumer, which raises it
            await queue.put(e)

    tasks = [asyncio.create_task(pump(what)) for what in selectors]
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await queue.get()
            burst_ends = loop.time() + REFRESH_S
            while True:
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                view.apply(*item)
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, burst_ends - loop.time()))
                except TimeoutError:
                    break
            yield None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
