"""The embedded runner: the operator's reconcile loop with a SQLite store and a local executor.

Each turn: read the trainers' progress lines and the executor's completions into Trial statuses,
call the planner, apply its actions in order, save its status, refresh the display. It decides
nothing itself; it only keeps the store, the executor and the planner's view in step.

Resuming: all state is in the store, so a new runner (after Ctrl-C or `kill -9`) loads it, reads
any progress written while no runner was watching, and re-submits each trial the store says is
Running with the *same* attempt (its trainer resumes from the newest checkpoint). A runner
interruption is not a trial failure; finished trials are never launched again.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from campaign_operator.api.campaign import CampaignState, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.executors.base import BatchExecutor, Completion
from campaign_operator.lifecycle import finished, job_ended, launched, outcome_reported
from campaign_operator.lifecycle.bounds import watched_metrics
from campaign_operator.lifecycle.outcomes import executor_error
from campaign_operator.lifecycle.wire import parse_lines, progress_path
from campaign_operator.planner import CreateTrial, EmitEvent, FinishTrial, LaunchTrial, plan
from campaign_operator.planner.naming import job_name
from campaign_operator.planner.scaledown import run_label
from campaign_operator.report.live import Snapshot

from . import progress
from .fit import processes
from .store import INTERRUPTED, Store

TERMINAL = (CampaignState.SUCCEEDED, CampaignState.FAILED)


class Display(Protocol):
    def update(self, snap: Snapshot) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_parallelism(campaign: TrainingCampaign, cpus: float) -> int:
    """As many trials as the machine's CPUs hold at the largest per-trial CPU request (a distributed
    trial's workers included): more would only queue inside Ray while looking Running."""
    requests = [campaign.spec.template.resources] + [
        p.resources for p in campaign.spec.phases if p.resources is not None
    ]
    largest = max(r.cpu * processes(r) for r in requests)
    return max(1, math.floor(cpus / largest + 1e-9))


def with_parallelism(campaign: TrainingCampaign, limit: int) -> TrainingCampaign:
    """The campaign as the planner should see it on this machine: spec.maxParallelTrials capped."""
    current = campaign.spec.max_parallel_trials
    value = limit if current is None else min(current, limit)
    return campaign.model_copy(
        update={"spec": campaign.spec.model_copy(update={"max_parallel_trials": value})}
    )


@dataclass
class RunResult:
    status: TrainingCampaignStatus
    interrupted: bool = False


@dataclass
class Runner:
    campaign: TrainingCampaign
    store: Store
    executor: BatchExecutor
    display: Display
    max_parallel: int | None = None
    """This machine's cap on concurrent trials (on top of the manifest's own)."""
    clock: Callable[[], datetime] = utcnow
    poll_s: float = 0.25
    trials: dict[str, Trial] = field(default_factory=dict)
    status: TrainingCampaignStatus | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.campaign.metadata.name

    def request_stop(self) -> None:
        self._stop.set()

    # -- state ------------------------------------------------------------------------------
    def _load(self) -> None:
        self.trials = {t.name: t for t in self.store.trials()}
        self.status = self.store.status()
        old = self.store.manifest()
        wire = self.campaign.to_wire()
        wire.pop("status", None)
        if old is not None and old.get("spec") != wire.get("spec"):
            self._event(
                "Normal", "ManifestChanged", "the manifest differs from the stored one; using the new one"
            )
        self.store.put_manifest(wire)

    def _save(self, trial: Trial) -> None:
        self.trials[trial.name] = trial
        self.store.update_trial(trial)

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.store.add_event(type_, reason, message, self.clock())

    def snapshot(self) -> Snapshot:
        return Snapshot(
            name=self.name,
            status=self.status or TrainingCampaignStatus(),
            trials=list(self.trials.values()),
            events=self.store.events(limit=20),
            now=self.clock(),
            runner=f"runner pid {os.getpid()}",
            campaign=self.campaign,
        )

    # -- observation ------------------------------------------------------------------------
    def _ingest(self, trial: Trial) -> Trial:
        """Applies new progress lines of the trial's current attempt (line and offset in one commit)."""
        rel = progress_path(trial.name, trial.status.attempt)
        path = self.store.dir / rel
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return trial
        offset = self.store.offset(rel)
        if size <= offset:
            return trial
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(size - offset)
        lines, used = parse_lines(data)
        if not used:
            return trial
        updated = progress.apply_lines(trial, trial.status.attempt, lines, self.clock())
        with self.store.transaction():
            if updated is not trial:
                self._save(updated)
            self.store.set_offset(rel, offset + used)
        return updated

    def _observe_progress(self) -> None:
        for trial in list(self.trials.values()):
            if trial.status.state == TrialState.RUNNING:
                self._ingest(trial)

    def _complete(self, done: Completion) -> None:
        trial = self.trials.get(done.trial)
        if trial is None or trial.status.state != TrialState.RUNNING or trial.status.attempt != done.attempt:
            return  # already ended (e.g. the planner stopped it) or a stale attempt
        trial = self._ingest(trial)  # the outcome line is normally there by now
        if trial.status.state != TrialState.RUNNING:
            return
        if done.outcome is not None:
            spec = trial.spec
            watched = watched_metrics(spec.stop_rules, spec.early_stopping, spec.keep_metrics)
            status = outcome_reported(trial.status, done.outcome, self.clock(), spec.objective, watched)
        else:
            failure = done.failure or executor_error(RuntimeError("the attempt ended without an outcome"))
            status = job_ended(trial.status, failure, self.clock())
        self._save(trial.model_copy(update={"status": status}))

    # -- actions ----------------------------------------------------------------------------
    def _launch(self, name: str, attempt: int, *, resume: bool) -> None:
        trial = self.trials[name]
        if not resume:
            if trial.status.attempt >= attempt and trial.status.state == TrialState.RUNNING:
                return  # idempotent per (trial, attempt)
            ref = ExecutorRef(kind=self.executor.kind, name=job_name(name, attempt), attempt=attempt)
            trial = trial.model_copy(update={"status": launched(trial.status, attempt, ref, self.clock())})
        # Recorded before submitting: a crash in between leaves a Running trial, which the next
        # runner resumes, never a trial that runs unrecorded.
        with self.store.transaction():
            self.store.record_attempt(name, attempt, "resume" if resume else "start")
            self._save(trial)
        self.executor.submit(trial, attempt, resume=resume)

    def _finish(self, action: FinishTrial) -> None:
        if action.stop_executor:
            self.executor.stop(action.name, graceful=True)  # the trial's end is decided
        trial = self.trials[action.name]
        status = finished(trial.status, action.state, action.reason, action.message, self.clock())
        self._save(trial.model_copy(update={"status": status}))

    def _apply(self, actions: tuple[Any, ...]) -> None:
        for action in actions:
            if isinstance(action, CreateTrial):
                if action.trial.name not in self.trials and self.store.insert_trial(action.trial):
                    self.trials[action.trial.name] = action.trial
            elif isinstance(action, LaunchTrial):
                self._launch(action.name, action.attempt, resume=False)
            elif isinstance(action, FinishTrial):
                self._finish(action)
            elif isinstance(action, EmitEvent):
                self._event(action.type, action.reason, action.message)

    def _reconcile(self) -> float | None:
        campaign = self.campaign
        if self.max_parallel is not None:
            campaign = with_parallelism(campaign, self.max_parallel)
        campaign = campaign.model_copy(update={"status": self.status})
        result = plan(campaign, list(self.trials.values()), self.clock())
        # Each action commits on its own: the planner is level-based, so a crash part-way through
        # is repaired by the next plan (creation and launches are idempotent).
        self._apply(result.actions)
        self.status = result.status
        self.store.put_status(result.status)
        return result.requeue_after

    # -- main loop --------------------------------------------------------------------------
    def _resume_running(self) -> None:
        running = [t for t in self.trials.values() if t.status.state == TrialState.RUNNING]
        for trial in running:
            trial = self._ingest(trial)  # progress written while no runner watched (incl. outcomes)
            if trial.status.state != TrialState.RUNNING:
                continue
            self._event(
                "Normal",
                "TrialResumed",
                f"trial {trial.name} attempt {trial.status.attempt} resumes after a runner restart",
            )
            self._launch(trial.name, trial.status.attempt, resume=True)

    def run(self) -> RunResult:
        self._load()
        self._resume_running()
        while True:
            requeue = self._reconcile()
            self.display.update(self.snapshot())
            assert self.status is not None
            idle = not self.executor.running()
            if self.status.state in TERMINAL and idle:
                return RunResult(self.status)
            if self._stop.is_set():
                self._event("Normal", "RunnerInterrupted", "runner stopped; run again to resume")
                # The screen kept after Ctrl-C: its Running trials are saved to resume, not running.
                self.display.update(replace(self.snapshot(), runner=INTERRUPTED, runner_alive=False))
                return RunResult(self.status, interrupted=True)
            if idle and requeue is None and self.status.state == CampaignState.SUSPENDED:
                return RunResult(self.status)
            wait = self.poll_s if requeue is None else max(0.0, min(self.poll_s, requeue))
            for done in self.executor.poll(timeout=wait):
                self._complete(done)
            self._observe_progress()


class StopOnSignal:
    """SIGINT/SIGTERM ask the runner to stop cleanly; a second SIGINT interrupts at once."""

    def __init__(self, runner: Runner, display: Display):
        self.runner = runner
        self.display = display
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.runner._stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.display.message("stopping: running trials are stopped and saved; run the same command to resume")
        self.runner.request_stop()

    def __enter__(self) -> StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def state_dir_for(campaign: TrainingCampaign, state: str | Path | None) -> Path:
    """--state, else .campaign/<name>; a scaled-down run's (spec.scaleDown) is .campaign/<name>-smoke
    or -partial-...: never the full run's, so neither resumes into the other's state."""
    if state:
        return Path(state)
    label = run_label(campaign.spec.scale_down)
    return Path(".campaign") / (f"{campaign.metadata.name}-{label}" if label else campaign.metadata.name)
