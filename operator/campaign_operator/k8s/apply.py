"""Applying a Plan's actions, in order, idempotently.

Every write is safe to repeat after a crash: Trials have deterministic names (409 AlreadyExists is
success), jobs have deterministic names per attempt (a repeated submit adopts the job, when the job
names this Trial and attempt: one that belongs to something else fails the attempt), and Trial
status patches are JSON patches guarded by a `test` of the state the planner saw, so a decision made
on a stale view (the trainer reported meanwhile) fails instead of overwriting, and the next
reconcile decides again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial, TrialStatus
from campaign_operator.executors.base import Executor, JobIdentityConflict
from campaign_operator.kube.client import Conflict, KubeClient, ObjectRef
from campaign_operator.lifecycle import JobOutcome, finished, job_ended, launched
from campaign_operator.planner.actions import Action, CreateTrial, EmitEvent, FinishTrial, LaunchTrial

log = logging.getLogger(__name__)

PARALLEL_WRITES = 16
"""Independent writes of one kind (creates, launches) in flight at once: a 2,000-trial sweep is
created at the apiserver's pace, not at one round trip per trial."""


@dataclass
class TrialBook:
    """The Trials of one campaign as last seen, with the raw status keys (for guarded patches)."""

    trials: dict[str, Trial] = field(default_factory=dict)
    status_keys: dict[str, frozenset[str]] = field(default_factory=dict)

    def put(self, body: dict[str, Any]) -> Trial:
        trial = Trial.model_validate(body)
        self.trials[trial.name] = trial
        self.status_keys[trial.name] = frozenset((body.get("status") or {}).keys())
        return trial


def status_patch(
    book: TrialBook, trial: Trial, new: TrialStatus, *, attempt: bool = False
) -> list[dict[str, Any]]:
    """A JSON patch taking the trial's status (as the planner saw it) to `new`, guarded by the state
    (and attempt) it saw: the lifecycle's transition is written, field for field."""
    keys = book.status_keys.get(trial.name, frozenset())
    before, after = trial.status.to_wire(), new.to_wire()
    if not keys:
        return [{"op": "add", "path": "/status", "value": after}]
    ops: list[dict[str, Any]] = []
    if "state" in keys:
        ops.append({"op": "test", "path": "/status/state", "value": trial.status.state.value})
    if attempt and "attempt" in keys:
        ops.append({"op": "test", "path": "/status/attempt", "value": trial.status.attempt})
    ops += [{"op": "add", "path": f"/status/{k}", "value": v} for k, v in after.items() if before.get(k) != v]
    ops += [{"op": "remove", "path": f"/status/{k}"} for k in before if k not in after and k in keys]
    return ops


class Applier:
    def __init__(
        self,
        client: KubeClient,
        campaign: TrainingCampaign,
        book: TrialBook,
        executor: Executor,
        now: Callable[[], datetime],
    ):
        self.client = client
        self.campaign = campaign
        self.book = book
        self.executor = executor
        self.now = now
        self.namespace = campaign.metadata.namespace or "default"
        meta = campaign.metadata
        self.ref = ObjectRef(campaign.api_version, campaign.kind, meta.name, self.namespace, meta.uid)
        self.conflicts = 0
        self.submitted: list[str] = []

    # -- Trial status writes --------------------------------------------------------------------
    async def patch_status(self, trial: Trial, ops: list[dict[str, Any]]) -> Trial | None:
        try:
            body = await self.client.patch_trial_status(self.namespace, trial.name, ops, json_patch=True)
        except Conflict:
            self.conflicts += 1
            log.info("trial %s changed under us; the next reconcile decides again", trial.name)
            return None
        return self.book.put(body)

    async def transition(self, trial: Trial, new: TrialStatus, *, attempt: bool = False) -> Trial | None:
        ops = status_patch(self.book, trial, new, attempt=attempt)
        if not any(op["op"] != "test" for op in ops):
            return trial  # nothing changes: no write
        return await self.patch_status(trial, ops)

    def _now(self) -> datetime:
        return self.now().replace(microsecond=0)  # metav1.Time precision

    async def record_outcome(self, trial: Trial, outcome: JobOutcome) -> Trial | None:
        """The executor's view of an attempt the trainer did not report on (crash, deadline, stop)."""
        updated = await self.transition(trial, job_ended(trial.status, outcome, self._now()), attempt=True)
        if updated is not None and updated is not trial and outcome.state.is_terminal:
            await self.executor.stop(updated)  # KubeRay: delete the finished RayJob
        return updated

    # -- actions --------------------------------------------------------------------------------
    async def apply(self, actions: Sequence[Action]) -> None:
        i = 0
        while i < len(actions):
            kind = type(actions[i])
            j = i
            while j < len(actions) and type(actions[j]) is kind:
                j += 1
            batch = actions[i:j]
            if kind is EmitEvent:
                for a in batch:
                    assert isinstance(a, EmitEvent)
                    await self.client.emit_event(self.ref, a.type, a.reason, a.message)
            else:
                await self._parallel([self._one(a) for a in batch])
            i = j

    @staticmethod
    async def _parallel(jobs: list[Awaitable[None]]) -> None:
        gate = asyncio.Semaphore(PARALLEL_WRITES)

        async def run(job: Awaitable[None]) -> None:
            async with gate:
                await job

        results = await asyncio.gather(*(run(j) for j in jobs), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _one(self, action: Action) -> Awaitable[None]:
        handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            CreateTrial: self.create,
            LaunchTrial: self.launch,
            FinishTrial: self.finish,
        }
        return handlers[type(action)](action)

    async def create(self, action: CreateTrial) -> None:
        trial = action.trial
        body: dict[str, Any] = trial.to_wire()
        status = body.pop("status", None)
        meta: dict[str, Any] = body["metadata"]
        if self.campaign.metadata.uid:
            meta["ownerReferences"] = [
                {
                    "apiVersion": self.campaign.api_version,
                    "kind": self.campaign.kind,
                    "name": self.campaign.metadata.name,
                    "uid": self.campaign.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        created = await self.client.create_trial(self.namespace, body)
        if created is None:
            return  # created before a crash; the next reconcile sees it as it is
        if trial.status.state != TrialState.PENDING and status:
            created = await self.client.patch_trial_status(self.namespace, trial.name, {"status": status})
        # The planner's own object, not a second parse of the reply (10,000 trials, twice, add up);
        # a launch later in this plan needs its uid (owner reference) and raw status keys.
        trial.metadata.uid = created["metadata"].get("uid")
        self.book.trials[trial.name] = trial
        self.book.status_keys[trial.name] = frozenset((created.get("status") or {}).keys())

    def _planned(self, name: str) -> Trial | None:
        """The trial an action of this plan is about, as this operator knows it. None when its create
        found it there already (another writer, or this operator before a crash): the next
        reconcile lists it as it is and plans again, rather than acting on a guess."""
        trial = self.book.trials.get(name)
        if trial is None:
            log.info("trial %s was created by someone else meanwhile; the next reconcile plans it", name)
        return trial

    async def launch(self, action: LaunchTrial) -> None:
        trial = self._planned(action.name)
        if trial is None:
            return
        now = self._now()
        try:
            ref = await self.executor.submit(trial, action.attempt)
        except JobIdentityConflict as e:
            # Someone else's job holds the attempt's name: nothing was adopted or started. The
            # attempt failed (retried per the policy, under the next attempt's name) and says why.
            new = job_ended(launched(trial.status, action.attempt, e.ref, now), e.outcome, now)
            if await self.transition(trial, new) is not None:
                await self.client.emit_event(self.ref, "Warning", e.outcome.reason, e.outcome.message)
            return
        self.submitted.append(ref.name)
        await self.transition(trial, launched(trial.status, action.attempt, ref, now))

    async def finish(self, action: FinishTrial) -> None:
        """The trial's end is recorded before its job is stopped: a job found stopped while its trial
        is still Running was stopped by someone else (lifecycle.outcomes), not by the product."""
        trial = self._planned(action.name)
        if trial is None:
            return
        new = finished(trial.status, action.state, action.reason, action.message, self._now())
        updated = await self.transition(trial, new)
        if action.stop_executor and updated is not None:
            await self.executor.stop(updated)
