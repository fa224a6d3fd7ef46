"""One level-based reconcile of one campaign: observe, plan, apply, write status.

observe Trials (label campaign=<name>) and the executor's jobs
-> record job outcomes the trainer could not report (crash, deadline, stop)
-> plan(campaign, trials, now)            (pure; every decision is made there)
-> apply its actions in order, idempotently
-> replace the campaign's status with the plan's (only when it changed)
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from campaign_operator import metrics
from campaign_operator.api.base import MESSAGE_BUDGET, bounded
from campaign_operator.api.campaign import CampaignState, ExecutorKind, TrainingCampaign
from campaign_operator.api.common import Condition, ConditionStatus, TrialState
from campaign_operator.api.validation import format_validation_error, rule_violations
from campaign_operator.executors.base import Executor
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import KubeRayExecutor, TrainerAccounts
from campaign_operator.executors.rayjobs import RayJobsExecutor
from campaign_operator.kube.client import (
    ApiError,
    Conflict,
    KubeClient,
    NotFound,
    ObjectRef,
    relisting,
)
from campaign_operator.lifecycle import finished
from campaign_operator.planner import plan
from campaign_operator.planner.conditions import set_condition
from campaign_operator.planner.semantics import problems_message

from .apply import Applier, TrialBook

log = logging.getLogger(__name__)

RECONCILE_ERROR = "ReconcileError"
CAMPAIGN_DELETED = "CampaignDeleted"
DELETED_MESSAGE = "stopped: its campaign is being deleted"
STATUS_REJECTED = "StatusRejected"
RECONCILE_FAILED = "ReconcileFailed"
REJECTION_MAX = 300
"""How much of the apiserver's refusal a StatusRejected condition quotes."""


class UnsupportedExecutor(Exception):
    pass


@dataclass
class Outcome:
    requeue_after: float | None
    state: str
    actions: int


def _now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Shared by all campaigns of one operator process."""

    def __init__(
        self,
        client: KubeClient,
        trainer: TrainerSettings,
        http: aiohttp.ClientSession,
        now: Callable[[], datetime] = _now,
    ):
        self.client = client
        self.trainer = trainer
        self.http = http
        self.now = now
        self.trainer_accounts = TrainerAccounts(client, trainer)  # remembers namespaces it set up
        self._checked: dict[tuple[str | None, int | None], list[str]] = {}

    def _rule_violations(self, campaign: TrainingCampaign) -> list[str]:
        key = (campaign.metadata.uid, campaign.metadata.generation)
        if key not in self._checked:
            if len(self._checked) > 1024:
                self._checked.clear()
            self._checked[key] = rule_violations(campaign)
        return self._checked[key]

    async def executor_for(self, campaign: TrainingCampaign) -> Executor:
        spec = campaign.spec.executor
        if spec.kind == ExecutorKind.KUBERAY:
            return KubeRayExecutor(self.client, campaign, self.trainer, self.trainer_accounts, self.now)
        if spec.kind == ExecutorKind.RAYJOBS:
            token = None
            if spec.token_secret_ref is not None:
                ref = spec.token_secret_ref
                token = await self.client.get_secret_key(
                    campaign.metadata.namespace or "default", ref.name, ref.key
                )
            return RayJobsExecutor(campaign, self.trainer, self.http, token, self.now)
        raise UnsupportedExecutor(
            f"spec.executor.kind {spec.kind.value!r} runs trials inside `campaign run` (embedded Ray),"
            " not under the operator; use kuberay or rayjobs"
        )

    async def reconcile(self, body: dict[str, Any]) -> Outcome:
        meta = body["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        started = time.perf_counter()
        try:
            campaign = TrainingCampaign.model_validate(body)
        except ValidationError as e:
            # The CRD's schema accepted something our models do not: a spec only we can reject.
            await self._invalid(body, problems_message(format_validation_error(e)))
            return Outcome(None, CampaignState.FAILED.value, 0)
        problems = self._rule_violations(campaign)
        if problems:
            # CEL rules the apiserver cannot evaluate (untyped fields, cost budget), same messages.
            await self._invalid(body, problems_message(problems))
            return Outcome(None, CampaignState.FAILED.value, 0)

        book = await self._observe(namespace, name)

        try:
            executor = await self.executor_for(campaign)
        except UnsupportedExecutor as e:
            await self._invalid(body, str(e))
            return Outcome(None, CampaignState.FAILED.value, 0)
        applier = Applier(self.client, campaign, book, executor, self.now)

        running = [t for t in book.trials.values() if t.status.state == TrialState.RUNNING]
        if running or book.trials:
            observe = getattr(executor, "observe", None)
            if observe is not None:
                await observe(list(book.trials.values()))
        for trial in running:
            outcome = await executor.poll(trial)
            if outcome is not None:
                await applier.record_outcome(trial, outcome)

        result = plan(campaign, list(book.trials.values()), self.now())
        await applier.apply(result.actions)

        status = result.status
        status.conditions = set_condition(
            status.conditions,
            RECONCILE_ERROR,
            ConditionStatus.FALSE,
            "Reconciled",
            "",
            campaign.metadata.generation,
            self.now(),
        )
        wire = status.to_wire()
        if wire != (body.get("status") or {}):
            try:
                await self.client.patch_campaign_status(namespace, name, wire)
            except ApiError as e:
                if e.status != 422 or isinstance(e, Conflict):
                    raise
                # The apiserver refused the status itself (a bound we missed): say so in one short
                # condition instead of failing this write on every reconcile with nothing to see.
                await self._status_rejected(body, e)
        metrics.observe_campaign(campaign, status, list(book.trials.values()))
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        return Outcome(result.requeue_after, status.state.value, len(result.actions))

    async def _observe(self, namespace: str, name: str) -> TrialBook:
        """The campaign's Trials from one consistent list, listed again if it expired (410 Gone)."""
        return await relisting(lambda: self._observe_once(namespace, name), f"{namespace}/{name}'s trials")

    async def _observe_once(self, namespace: str, name: str) -> TrialBook:
        book = TrialBook()
        async for page in self.client.trial_pages(namespace, name):
            for item in page:
                item.get("metadata", {}).pop("managedFields", None)
                try:
                    book.put(item)
                except ValidationError as e:
                    log.warning("ignoring malformed trial %s: %s", item["metadata"].get("name"), e)
            page.clear()  # memory: a page's raw bodies go as soon as they are models
        return book

    async def _invalid(self, body: dict[str, Any], message: str) -> None:
        """Failed/InvalidSpec written from here only when the planner cannot even be called."""
        meta = body["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        old = body.get("status") or {}
        if old.get("reason") == "InvalidSpec" and old.get("message") == message:
            return
        now, gen = self.now(), meta.get("generation")
        conds = _stored_conditions(old)
        for type_, status in (
            ("Failed", ConditionStatus.TRUE),
            ("Progressing", ConditionStatus.FALSE),
            ("Succeeded", ConditionStatus.FALSE),
        ):
            conds = set_condition(conds, type_, status, "InvalidSpec", message, gen, now)
        new = {
            **old,
            "observedGeneration": gen,
            "state": CampaignState.FAILED.value,
            "reason": "InvalidSpec",
            "message": message,
            "conditions": [c.to_wire() for c in conds],
        }
        await self.client.patch_campaign_status(namespace, name, new)
        await self.client.emit_event(_campaign_ref(body), "Warning", "InvalidSpec", message)

    async def _status_rejected(self, body: dict[str, Any], error: ApiError) -> None:
        """The planned status was refused (422): keep the stored status, add ReconcileError=True
        (reason StatusRejected) quoting the apiserver's first words, and one Warning Event."""
        message = bounded(f"the apiserver rejected the campaign's status: {_refusal(error)}", REJECTION_MAX)
        if _reported(body, STATUS_REJECTED, message):
            return
        log.warning("status of %s rejected: %s", body["metadata"]["name"], message)
        if await self._record_error(body, STATUS_REJECTED, message):
            await self.client.emit_event(_campaign_ref(body), "Warning", STATUS_REJECTED, message)

    async def report_error(self, body: dict[str, Any], error: BaseException) -> None:
        """An unexpected exception in one campaign's reconcile: a condition and an Event, never a crash."""
        meta = body["metadata"]
        message = bounded(f"{type(error).__name__}: {error}", MESSAGE_BUDGET)
        metrics.RECONCILE_ERRORS.labels(meta.get("namespace") or "default", meta["name"]).inc()
        if _reported(body, RECONCILE_FAILED, message):
            return  # already reported; don't flood Events
        await self._record_error(body, RECONCILE_FAILED, message)  # the apiserver may be what failed
        await self.client.emit_event(_campaign_ref(body), "Warning", RECONCILE_FAILED, message)

    async def _record_error(self, body: dict[str, Any], reason: str, message: str) -> bool:
        """ReconcileError=True with `reason` on top of the stored status, the rest of it unchanged;
        False when even that could not be written."""
        meta = body["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        old = body.get("status") or {}
        conds = set_condition(
            _stored_conditions(old),
            RECONCILE_ERROR,
            ConditionStatus.TRUE,
            reason,
            message,
            meta.get("generation"),
            self.now(),
        )
        try:
            await self.client.patch_campaign_status(
                namespace, name, {**old, "conditions": [c.to_wire() for c in conds]}
            )
        except Exception as e:  # nothing more to try: log it, the Event may still get through
            log.warning("could not record %s on %s/%s: %s", reason, namespace, name, e)
            return False
        return True

    async def stop_all(self, body: dict[str, Any]) -> int:
        """Finalizer: stop the jobs of every running trial of a campaign being deleted, each trial
        recorded Stopped/CampaignDeleted first (a reconcile still in flight must not take the
        stopped job for one stopped from outside, and retry it)."""
        meta = body["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        try:
            campaign = TrainingCampaign.model_validate(body)
            executor = await self.executor_for(campaign)
        except (ValidationError, UnsupportedExecutor):
            return 0
        book = await self._observe(namespace, name)
        applier = Applier(self.client, campaign, book, executor, self.now)
        stopped = 0
        for trial in list(book.trials.values()):
            if trial.status.state == TrialState.RUNNING:
                now = self.now().replace(microsecond=0)  # metav1.Time precision
                new = finished(trial.status, TrialState.STOPPED, CAMPAIGN_DELETED, DELETED_MESSAGE, now)
                with contextlib.suppress(NotFound):  # gone with its campaign already
                    await applier.transition(trial, new)
                # Stopped even when the record lost a race (the trainer's verdict): the campaign goes.
                await executor.stop(trial)
                stopped += 1
        metrics.forget_campaign(namespace, name)
        return stopped


def _refusal(error: ApiError) -> str:
    """The apiserver's reason in one line: its Status message, without the object's long name."""
    try:
        message = str(json.loads(error.body).get("message") or error.reason)
    except (ValueError, AttributeError):
        message = error.body or error.reason
    _, sep, rest = message.partition(" is invalid: ")
    return " ".join((rest if sep else message).split())


def _reported(body: dict[str, Any], reason: str, message: str) -> bool:
    """ReconcileError=True with this reason and message is on the campaign already."""
    conds = _stored_conditions(body.get("status") or {})
    previous = next((c for c in conds if c.type == RECONCILE_ERROR), None)
    return (
        previous is not None
        and previous.status == ConditionStatus.TRUE
        and (previous.reason, previous.message) == (reason, message)
    )


def _campaign_ref(body: dict[str, Any]) -> ObjectRef:
    """The campaign as its Events' involvedObject."""
    meta = body["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    return ObjectRef(
        body.get("apiVersion", ""), body.get("kind", "TrainingCampaign"), name, namespace, meta.get("uid")
    )


def _stored_conditions(status: dict[str, Any]) -> list[Condition]:
    """The conditions already on a campaign, skipping any that are not metav1.Condition-shaped."""
    conds: list[Condition] = []
    for c in status.get("conditions") or []:
        try:
            conds.append(Condition.model_validate(c))
        except ValidationError:
            continue
    return conds
