"""A status write the apiserver refuses (422) becomes one short ReconcileError condition, not a
reconcile that fails the same way forever with nothing to see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.executors.common import TrainerSettings
from campaign_operator.k8s.reconcile import REJECTION_MAX, STATUS_REJECTED, Reconciler
from campaign_operator.kube.client import ApiError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REFUSAL = {
    "kind": "Status",
    "message": 'TrainingCampaign.training.campaign-operator.io "c" is invalid: status.phases[0].message:'
    " Too long: may not be more than 4096 bytes" + ", and more" * 400,
    "details": {"causes": [{"field": "status.phases[0].message", "reason": "FieldValueTooLong"}]},
}


class FakeClient:
    """Refuses every status write that is not just the stored status plus conditions."""

    def __init__(self) -> None:
        self.status_writes: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []

    async def trial_pages(self, namespace: str, name: str) -> AsyncIterator[list[dict[str, Any]]]:
        for page in ():
            yield page

    async def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return body

    async def patch_campaign_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_writes.append(status)
        if "phases" in status:  # the planned status: refused
            raise ApiError(422, "Unprocessable Entity", json.dumps(REFUSAL))
        return {"status": status}

    async def emit_event(self, ref: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def __getattr__(self, name: str) -> Any:
        async def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        return nothing


def body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": "c", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {
            "template": {"task": "regression"},
            "suspend": True,
            "phases": [{"name": "p", "sweep": {"seeds": {"count": 2}}}],
        },
        **({"status": status} if status is not None else {}),
    }


def test_a_refused_status_becomes_a_short_reconcile_error_condition_once() -> None:
    client = FakeClient()
    reconciler = Reconciler(client, TrainerSettings(), http=None, now=lambda: NOW)  # type: ignore[arg-type]
    outcome = asyncio.run(reconciler.reconcile(body()))
    assert outcome.state == "Suspended"  # the reconcile itself went through: no exception, no crash loop
    planned, recorded = client.status_writes
    assert "phases" in planned and "phases" not in recorded  # the stored (empty) status, kept
    (condition,) = [c for c in recorded["conditions"] if c["type"] == "ReconcileError"]
    assert (condition["status"], condition["reason"]) == ("True", STATUS_REJECTED)
    message = condition["message"]
    assert len(message) <= REJECTION_MAX
    assert message.startswith(
        "the apiserver rejected the campaign's status: status.phases[0].message: Too long"
    )
    assert [(t, r) for t, r, _ in client.events if r == STATUS_REJECTED] == [("Warning", STATUS_REJECTED)]

    # The next reconcile is refused the same way: nothing new is written or announced.
    client.status_writes.clear()
    asyncio.run(reconciler.reconcile(body(recorded)))
    assert len(client.status_writes) == 1 and "phases" in client.status_writes[0]
    assert [r for _, r, _ in client.events].count(STATUS_REJECTED) == 1


def test_other_errors_of_the_status_write_still_raise() -> None:
    class Unavailable(FakeClient):
        async def patch_campaign_status(
            self, namespace: str, name: str, status: dict[str, Any]
        ) -> dict[str, Any]:
            raise ApiError(503, "Service Unavailable", "")

    reconciler = Reconciler(Unavailable(), TrainerSettings(), http=None, now=lambda: NOW)  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        asyncio.run(reconciler.reconcile(body()))
