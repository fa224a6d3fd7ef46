"""The same events through both shells give the same Trial status.

The operator's Applier writes each lifecycle transition to a real apiserver (its KubeRay executor
creates real RayJob objects there) and the trainer reports through its real Kubernetes reporter; the
embedded Runner stores the same transitions in its real SQLite store and folds the trainer's real
JSON-lines reports. Events: launch, two epochs, the attempt's worker dies, a retry that resumes from
the epoch-1 checkpoint, two more epochs, the trainer's verdict. After every event both statuses
agree on everything but the clocks' stamps and the job's kind and name.

The embedded side has no Ray here: its executor only hands back the attempt's reference (the events
are injected; nothing runs), which is all the runner's status writes depend on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.embedded.runner import Runner
from campaign_operator.embedded.store import Store
from campaign_operator.executors.base import Completion
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import KubeRayExecutor
from campaign_operator.k8s.apply import Applier, TrialBook
from campaign_operator.kube.client import KubeClient, connected
from campaign_operator.lifecycle.outcomes import executor_error
from campaign_operator.lifecycle.wire import progress_path
from campaign_operator.planner.actions import CreateTrial, LaunchTrial
from campaign_operator.planner.naming import job_name
from campaign_operator.report.live import NullDisplay
from campaign_trainer.outcome import Outcome, now_rfc3339
from campaign_trainer.reporters import ClusterConnection, JsonlReporter, KubernetesReporter
from rig.controlplane import ControlPlane

from .opkit import Kube

pytestmark = pytest.mark.integration

NAME = "same-p-0"
CLOCKS = ("startTime", "completionTime")


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": "same"},
        "spec": {
            "template": {"task": "regression", "epochs": 3},
            "executor": {"kind": "kuberay"},
            "phases": [{"name": "p", "sweep": {"trials": [{"lr": 0.1}]}}],
        },
    }


def trial(namespace: str) -> Trial:
    return Trial.model_validate(
        {
            "metadata": {"name": NAME, "namespace": namespace, "labels": {"campaign": "same", "phase": "p"}},
            "spec": {"campaign": "same", "phase": "p", "task": "regression", "epochs": 3},
        }
    )


class NoJobs:
    """The embedded runner's executor with nothing behind it: the events are injected."""

    kind = "local"

    def submit(self, trial: Trial, attempt: int, *, resume: bool = False) -> ExecutorRef:
        return ExecutorRef(kind=self.kind, name=job_name(trial.name, attempt), attempt=attempt)

    def poll(self, timeout: float = 0.0) -> list[Completion]:
        return []

    def stop(self, trial: str, *, graceful: bool = False) -> None:
        pass

    def running(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass


def comparable(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in CLOCKS}
    ref = out.pop("executorRef", None)
    out["executorRef.attempt"] = ref and ref["attempt"]
    if ref and isinstance(out.get("message"), str):
        # The job's own name differs by design: from the Trial's uid on a cluster (names repeat across
        # namespaces), from the trial's name under the embedded runner (its Ray is its own).
        out["message"] = out["message"].replace(ref["name"], "<job>")
    return out


VERDICT = Outcome(
    trial=NAME,
    state="Succeeded",
    reason="Completed",
    message="trained 3 of 3 epochs",
    epoch=3,
    metrics={"val_loss": 0.3},
    best={"epoch": 3, "metrics": {"val_loss": 0.3}},
    history=[
        {"epoch": 1, "metrics": {"val_loss": 0.9}},
        {"epoch": 2, "metrics": {"val_loss": 0.6}},
        {"epoch": 3, "metrics": {"val_loss": 0.3}},
    ],
    checkpoint="s3://ckpt/same-p-0/epoch-3",
    completion_time=now_rfc3339(),
)
EVENTS: list[tuple[str, Any]] = [
    ("launch", 1),
    ("epoch", (1, {"val_loss": 0.9, "loss": 1.0})),
    ("epoch", (2, {"val_loss": 0.5, "loss": float("nan")})),
    ("crash", "WorkerCrashedError: the worker died"),
    ("launch", 2),
    ("epoch", (2, {"val_loss": 0.6})),  # resumed from the epoch-1 checkpoint: epoch 2 again
    ("epoch", (3, {"val_loss": 0.3})),
    ("outcome", VERDICT),
]


class OperatorShell:
    def __init__(self, client: KubeClient, kube: Kube, campaign: TrainingCampaign, conn: ClusterConnection):
        self.kube, self.conn = kube, conn
        self.namespace = campaign.metadata.namespace or "default"
        self.book = TrialBook()
        executor = KubeRayExecutor(client, campaign, TrainerSettings())
        self.applier = Applier(client, campaign, self.book, executor, lambda: datetime.now(UTC))
        self.reporter: KubernetesReporter | None = None

    def _refresh(self) -> Trial:  # what the next reconcile lists
        return self.book.put(self.kube.ok("GET", self.kube.path(self.namespace, "campaigntrials", NAME)))

    async def apply(self, kind: str, arg: Any) -> dict[str, Any]:
        if kind == "create":
            await self.applier.create(CreateTrial(arg))
        elif kind == "launch":
            self._refresh()
            await self.applier.launch(LaunchTrial(NAME, arg))
            self.reporter = KubernetesReporter(NAME, self.namespace, self.conn)  # the attempt's trainer
        elif kind == "epoch":
            assert self.reporter is not None
            await asyncio.to_thread(self.reporter.report_epoch, *arg)
        elif kind == "crash":
            await self.applier.record_outcome(self._refresh(), executor_error(RuntimeError(arg)))
        elif kind == "outcome":
            assert self.reporter is not None
            await asyncio.to_thread(self.reporter.report_outcome, arg)
        return dict(self._refresh().status.to_wire())


class EmbeddedShell:
    def __init__(self, campaign: TrainingCampaign, state_dir: Path):
        self.store = Store(state_dir)
        self.runner = Runner(campaign, self.store, NoJobs(), NullDisplay())
        self.reporter: JsonlReporter | None = None

    def apply(self, kind: str, arg: Any) -> dict[str, Any]:
        runner = self.runner
        if kind == "create":
            self.store.insert_trial(arg)
            runner.trials[NAME] = arg
        elif kind == "launch":
            runner._launch(NAME, arg, resume=False)
            path = self.store.dir / progress_path(NAME, arg)
            self.reporter = JsonlReporter(str(path), NAME)
        elif kind == "epoch":
            assert self.reporter is not None
            self.reporter.report_epoch(*arg)
            runner._ingest(runner.trials[NAME])
        elif kind == "crash":
            attempt = runner.trials[NAME].status.attempt
            runner._complete(Completion(NAME, attempt, None, executor_error(RuntimeError(arg))))
        elif kind == "outcome":
            assert self.reporter is not None
            self.reporter.report_outcome(arg)
            runner._ingest(runner.trials[NAME])
        return dict(runner.trials[NAME].status.to_wire())


@pytest.fixture
def embedded(tmp_path: Path, namespace: str) -> Iterator[EmbeddedShell]:
    campaign = TrainingCampaign.model_validate({**manifest(), "metadata": {"name": "same"}})
    shell = EmbeddedShell(campaign, tmp_path / "state")
    yield shell
    shell.store.close()


def test_the_same_events_give_the_same_status_in_both_shells(
    kube: Kube, control_plane: ControlPlane, namespace: str, embedded: EmbeddedShell
) -> None:
    campaign = TrainingCampaign.model_validate(kube.create_campaign(namespace, manifest()))
    conn = ClusterConnection.from_kubeconfig(str(control_plane.kubeconfig_path))

    async def run() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        async with connected(str(control_plane.kubeconfig_path)) as client:
            operator = OperatorShell(client, kube, campaign, conn)
            seen = []
            for kind, arg in [("create", trial(namespace)), *EVENTS]:
                on_cluster = await operator.apply(kind, arg)
                seen.append((kind, on_cluster, embedded.apply(kind, arg)))
            return seen

    for kind, on_cluster, on_machine in asyncio.run(run()):
        assert comparable(on_cluster) == comparable(on_machine), kind
        assert all((k in on_cluster) == (k in on_machine) for k in CLOCKS), kind
    final = on_cluster
    assert (final["state"], final["attempt"], final["epoch"]) == ("Succeeded", 2, 3)
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]
