"""Fixtures of the Kueue tests; each module starts its own control plane (kit.kueue_plane)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ..k8s.opkit import Kube


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    """A fresh namespace (its LocalQueue, Trials and RayJobs), deleted afterwards without waiting."""
    name = f"kq-{uuid.uuid4().hex[:8]}"
    kube.ok(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    kube.call("DELETE", f"/api/v1/namespaces/{name}")
