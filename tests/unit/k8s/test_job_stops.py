"""The operator records every stop it asks for before it stops the job, so the job system's STOPPED
on a trial still Running can only be someone else's; and a launch that finds another's job under the
attempt's name fails the attempt instead of adopting it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.executors.base import JobIdentityConflict
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.k8s.apply import Applier, TrialBook
from campaign_operator.k8s.reconcile import CAMPAIGN_DELETED, Reconciler
from campaign_operator.kube.client import Conflict
from campaign_operator.lifecycle.outcomes import JOB_IDENTITY_MISMATCH, identity_mismatch
from campaign_operator.planner.actions import FinishTrial, LaunchTrial

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAMPAIGN = {
    "apiVersion": "training.campaign-operator.io/v1alpha1",
    "kind": "TrainingCampaign",
    "metadata": {"name": "c", "namespace": "ns", "uid": "cu", "generation": 1},
    "spec": {"template": {"task": "regression"}, "phases": [{"name": "p"}]},
}


def trial_body(name: str, state: str, attempt: int) -> dict[str, Any]:
    status: dict[str, Any] = {"state": state, "attempt": attempt}
    if attempt:
        status["executorRef"] = {"kind": "RayJob", "name": f"{name}-job-a{attempt}", "attempt": attempt}
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "Trial",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"campaign": "c"}},
        "spec": {"campaign": "c", "phase": "p", "task": "regression", "epochs": 1},
        "status": status,
    }


class World:
    """The apiserver's Trials (JSON patches applied, `test` ops checked) and one executor, sharing a
    log of what happened in which order."""

    def __init__(self, *trials: dict[str, Any]) -> None:
        self.trials = {t["metadata"]["name"]: t for t in trials}
        self.log: list[tuple[str, ...]] = []
        self.events: list[tuple[str, str, str]] = []
        self.conflict_on: set[str] = set()
        self.foreign: set[str] = set()

    # -- the client
    async def patch_trial_status(self, ns: str, name: str, ops: Any, *, json_patch: bool = False) -> Any:
        if name in self.conflict_on:
            raise Conflict(422, "Unprocessable Entity")
        body = copy.deepcopy(self.trials[name])
        for op in ops:
            key = op["path"].removeprefix("/status/")
            if op["op"] == "test":
                assert body["status"][key] == op["value"]
            elif op["op"] == "add":
                body["status"][key] = op["value"]
            else:
                body["status"].pop(key, None)
        self.trials[name] = body
        self.log.append(("status", name, body["status"]["state"], body["status"].get("reason") or ""))
        return copy.deepcopy(body)

    async def emit_event(self, ref: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    async def trial_pages(self, ns: str, campaign: str) -> AsyncIterator[list[dict[str, Any]]]:
        yield [copy.deepcopy(t) for t in self.trials.values()]

    # -- the executor
    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        ref = ExecutorRef(kind="RayJob", name=f"{trial.name}-job-a{attempt}", attempt=attempt)
        if trial.name in self.foreign:
            claimed = {
                "trial": trial.name,
                "attempt": str(attempt),
                "training.campaign-operator.io/trial-uid": "x",
            }
            mismatch = identity_mismatch(f"RayJob {ref.name}", claimed, str(trial.metadata.uid), attempt)
            assert mismatch is not None
            raise JobIdentityConflict(mismatch, ref)
        self.log.append(("submit", trial.name, str(attempt)))
        return ref

    async def poll(self, trial: Trial) -> None:
        return None

    async def stop(self, trial: Trial) -> None:
        self.log.append(("stop", trial.name))


def applier(world: World) -> Applier:
    book = TrialBook()
    for body in world.trials.values():
        book.put(copy.deepcopy(body))
    campaign = TrainingCampaign.model_validate(CAMPAIGN)
    return Applier(world, campaign, book, world, lambda: NOW)  # type: ignore[arg-type]


def test_a_stop_the_planner_asks_for_is_recorded_before_the_job_is_stopped() -> None:
    world = World(trial_body("t", "Running", 1))
    finish = FinishTrial("t", TrialState.STOPPED, "VarianceCollapse", "rule fired", stop_executor=True)
    asyncio.run(applier(world).apply([finish]))
    assert world.log == [("status", "t", "Stopped", "VarianceCollapse"), ("stop", "t")]


def test_a_stop_whose_record_lost_a_race_stops_nothing() -> None:
    world = World(trial_body("t", "Running", 1))
    world.conflict_on.add("t")  # the trainer's verdict landed first: the next reconcile decides again
    finish = FinishTrial("t", TrialState.STOPPED, "Cancelled", "the phase failed", stop_executor=True)
    asyncio.run(applier(world).apply([finish]))
    assert world.log == []


def test_a_launch_that_finds_anothers_job_fails_the_attempt_and_says_why() -> None:
    world = World(trial_body("t", "Pending", 0), trial_body("u", "Failed", 1))
    world.foreign.add("t")
    world.trials["u"]["status"]["reason"] = "AppFailed"
    a = applier(world)
    asyncio.run(a.apply([LaunchTrial("t", 1), LaunchTrial("u", 2)]))
    status = world.trials["t"]["status"]
    assert (status["state"], status["reason"], status["attempt"]) == ("Failed", JOB_IDENTITY_MISMATCH, 1)
    assert status["executorRef"]["name"] == "t-job-a1" and "completionTime" in status
    assert "already exists and belongs to attempt 1 of Trial t (uid x)" in status["message"]
    assert a.submitted == ["u-job-a2"] and ("submit", "t", "1") not in world.log
    assert [(k, r) for k, r, _ in world.events] == [("Warning", JOB_IDENTITY_MISMATCH)]
    assert world.trials["u"]["status"]["state"] == "Running"  # the other launch went on


def test_deleting_a_campaign_records_its_running_trials_stopped_before_stopping_their_jobs() -> None:
    world = World(trial_body("t", "Running", 1), trial_body("u", "Succeeded", 1))

    async def executor_for(campaign: Any) -> World:
        return world

    reconciler = Reconciler(world, TrainerSettings(), http=None, now=lambda: NOW)  # type: ignore[arg-type]
    reconciler.executor_for = executor_for  # type: ignore[method-assign]
    assert asyncio.run(reconciler.stop_all(copy.deepcopy(CAMPAIGN))) == 1
    assert world.log == [("status", "t", "Stopped", CAMPAIGN_DELETED), ("stop", "t")]
