"""A list whose snapshot expires between pages (410 Gone: etcd compacted past its continue token, as
on a busy cluster with a long list) is listed again from a fresh snapshot, never half-used.

The Trials, the lists and their continue tokens are the real apiserver's. The 410 itself is played:
this apiserver (1.35) serves continued pages from its watch cache's snapshots, so compacting etcd
does not expire a token on demand (tried: the continued page still answers 200); the answer is
written as the apiserver writes it when a snapshot is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from campaign_operator.executors.common import TrainerSettings
from campaign_operator.k8s.reconcile import Reconciler
from campaign_operator.kube import client as kube_client
from campaign_operator.kube.client import Expired, KubeClient, connected
from campaign_operator.lifecycle.wire import GROUP, TRIALS, VERSION
from rig.controlplane import ControlPlane

from .opkit import Kube

pytestmark = pytest.mark.integration


def trial(namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Trial",
        "metadata": {"name": f"gone-p-{i}", "namespace": namespace, "labels": {"campaign": "gone"}},
        "spec": {"campaign": "gone", "phase": "p", "task": "regression", "epochs": 1},
    }


GONE = (
    '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"The provided continue parameter'
    " is too old to display a consistent list result. You can start a new list without the continue"
    ' parameter.","reason":"Expired","code":410}'
)


def expiring_between_pages(client: KubeClient, kube: Kube, namespace: str) -> list[str]:
    """The first continued page meets an expired snapshot, after the world moved on."""
    original = client.request
    expired: list[str] = []
    made = iter(range(99, 200))

    async def request(method: str, path: str, **kw: Any) -> Any:
        if "continue" in (kw.get("query") or {}) and not expired:
            kube.ok("POST", kube.path(namespace, "campaigntrials"), trial(namespace, next(made)))
            expired.append(path)
            raise Expired(410, "Gone", GONE)
        return await original(method, path, **kw)

    client.request = request  # type: ignore[method-assign]
    return expired


def test_an_expired_list_is_listed_again_from_a_fresh_snapshot(
    kube: Kube, control_plane: ControlPlane, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        kube.ok("POST", kube.path(namespace, "campaigntrials"), trial(namespace, i))
    monkeypatch.setattr(kube_client, "LIST_PAGE", 1)  # every item its own page: continue tokens

    async def run() -> tuple[list[str], list[str], list[str]]:
        async with connected(str(control_plane.kubeconfig_path)) as client:
            expired = expiring_between_pages(client, kube, namespace)
            items = await client.list_objects(GROUP, VERSION, TRIALS, namespace, "campaign=gone")
            expired.clear()  # once more, through the reconciler's paged read of a campaign's Trials
            book = await Reconciler(client, TrainerSettings(), None)._observe(namespace, "gone")  # type: ignore[arg-type]
            return sorted(i["metadata"]["name"] for i in items), sorted(book.trials), expired

    listed, observed, expired = asyncio.run(run())
    assert expired, "a continued page met the expired snapshot"
    fresh = {"gone-p-0", "gone-p-1", "gone-p-2", "gone-p-99"}  # the new snapshot, whole
    assert set(listed) == fresh and set(observed) == fresh | {"gone-p-100"}
