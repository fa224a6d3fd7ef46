"""The `local` executor: trial attempts as Ray tasks on a Ray started in this process.

Each attempt is one task with the trial's own resources (fractional CPU/GPU allowed) that runs the
trainer's `run_trial` with a JSON-lines reporter writing to the attempt's progress file under the
state dir. Worker processes are reused between tasks, so torch and Lightning are imported once per
worker, not once per trial.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaign_operator.api.quantity import quantity_bytes
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.lifecycle.outcomes import executor_error, unschedulable
from campaign_operator.lifecycle.wire import append_line, halt_path, progress_path, start_line
from campaign_operator.planner.naming import job_name

from . import fate
from .base import Completion

KIND = "local"
RAY_START_ATTEMPTS = 2
HALT_GRACE_S = 10.0
"""How long a halted attempt (stop(graceful=True)) gets to unwind at its next batch before its
worker is killed."""
log = logging.getLogger(__name__)


def run_attempt(
    trial_doc: dict[str, Any], attempt: int, resume: bool, progress_file: str, checkpoint_root: str
) -> dict[str, Any] | None:
    """Body of the Ray task (also callable directly): the trainer's run_trial, reporting to JSONL.
    None: the attempt was halted (`LocalExecutor.stop(graceful=True)`) and reports nothing.

    A `start` line first records that this process really began the attempt; tests count those
    to prove no trial ran twice.
    """
    from campaign_trainer.halt import Halted
    from campaign_trainer.harness import run_trial
    from campaign_trainer.reporters import JsonlReporter

    name = str(trial_doc["metadata"]["name"])
    append_line(progress_file, start_line(name, attempt, resume))
    doc = dict(trial_doc)
    doc["status"] = {**(trial_doc.get("status") or {}), "attempt": attempt}
    reporter, halt = JsonlReporter(progress_file, name), halt_path(progress_file)
    try:
        outcome = run_trial(doc, reporter, checkpoint_root=checkpoint_root, halt_file=halt)
    except Halted:
        return None  # the worker lives on, warm, for the next trial
    status: dict[str, Any] = outcome.to_status()
    return status


def init_ray(
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    attempts: int = RAY_START_ATTEMPTS,
    memory_bytes: int | None = None,
) -> None:
    """A private local Ray: never attaches to another cluster, no dashboard, quiet. Its processes
    share this process's fate, also when it is SIGKILLed (see executors/fate.py). Tried `attempts`
    times at once (the embedded runner tries once per call and spaces its own tries out).
    `memory_bytes`: Ray's schedulable memory (default: ~70% of what is free when it starts)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Under `uv run`, Ray would start every worker through `uv run` in an uploaded copy of the
    # working dir, which fails (after minutes) without network; workers must use this interpreter.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    import ray
    from ray._private import ray_constants

    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False  # in case ray was imported before the env var
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {}
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    if memory_bytes is not None:
        kwargs["memory"] = memory_bytes
    # Every process Ray starts inherits the tag (the raylet passes it on to its agents and
    # workers); the watchdog kills the tagged ones when this process is gone. SPT_NOENV: Ray's
    # process titles must not overwrite that environment in /proc (Ray sets it for workers too).
    previous = {k: os.environ.get(k) for k in (fate.TAG_ENV, "SPT_NOENV")}
    tag = os.environ[fate.TAG_ENV] = fate.runner_tag()
    os.environ.setdefault("SPT_NOENV", "1")
    try:
        for attempt in range(1, attempts + 1):
            try:
                _start_and_connect(int(num_cpus) if num_cpus else os.cpu_count() or 1, kwargs)
                break
            except Exception as e:  # Ray raises a bare Exception when its node times out starting
                if attempt == attempts:
                    raise
                # On a loaded machine the raylet or GCS can miss Ray's start-up deadline; what the
                # failed start left would compete with the next one: stop it first.
                log.warning("local Ray did not start (%s); retrying (%d/%d)", e, attempt, attempts)
                ray.shutdown()
                fate.kill_left(tag, set())
    finally:  # not for what this process starts later (another runner gets its own tag)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _start_and_connect(num_cpus: int, resources: dict[str, Any]) -> None:
    """What `ray.init(address="local")` does, less two processes: the head node is started here
    without the autoscaler monitor (a local Ray of fixed size never scales) and the log monitor
    (log_to_driver is off). Each is about a CPU second competing with Ray's serial start-up on a
    small machine: on 2 loaded cores Ray came up in 17.6 s instead of 25.8 s (bench/README.md)."""
    import ray
    from ray._private import worker
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    params = RayParams(
        num_cpus=num_cpus,
        include_dashboard=False,
        # The object store only carries small outcome dicts; don't reserve 30% of RAM.
        object_store_memory=256 * 1024 * 1024,
        no_monitor=True,
        include_log_monitor=False,  # type: ignore[arg-type]  # annotated str, read as a flag
        **resources,
    )
    head = Node(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)
    try:
        ray.init(
            address=head.address, log_to_driver=False, configure_logging=True, logging_level=logging.ERROR
        )
    except BaseException:
        head.kill_all_processes(check_alive=False, allow_graceful=False)
        raise
    # As after ray.init(address="local"): ray.shutdown() stops the processes of the node it started
    # (for a cluster it only connected to it would stop nothing).
    worker._global_node = head  # type: ignore[assignment]  # annotated None, holds a Node


@dataclass
class _InFlight:
    trial: str
    attempt: int
    ref: Any
    progress_file: str
    stopping: bool = False
    kill_at: float | None = None
    """When a halted attempt that has not unwound yet is killed."""


class LocalExecutor:
    """submit / poll / stop over Ray tasks. Uses the driver's Ray if initialised, else starts one."""

    kind = KIND

    def __init__(
        self,
        state_dir: Path,
        *,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        start_attempts: int = RAY_START_ATTEMPTS,
        memory_bytes: int | None = None,
    ):
        import ray

        self.state_dir = Path(state_dir).resolve()
        self._owns_ray = not ray.is_initialized()
        init_ray(num_cpus, num_gpus, start_attempts, memory_bytes)
        self._remote = ray.remote(max_retries=0)(run_attempt)
        self._inflight: dict[str, _InFlight] = {}
        self._done: list[Completion] = []
        self.resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]

    def submit(self, trial: Trial, attempt: int, *, resume: bool = False) -> ExecutorRef:
        job = job_name(trial.name, attempt)
        current = self._inflight.get(trial.name)
        if current is not None and current.attempt == attempt:
            return ExecutorRef(kind=KIND, name=job, attempt=attempt)
        res = trial.spec.resources
        memory = quantity_bytes(res.memory) if res.memory else 0
        missing = [
            f"{k}={need:g} (this machine has {self.resources.get(k, 0):g})"
            for k, need in (("CPU", res.cpu), ("GPU", res.gpu))
            if need > self.resources.get(k, 0)
        ]
        if memory > self.resources.get("memory", 0):
            have = self.resources.get("memory", 0) / 2**30
            missing.append(f"memory={res.memory} (Ray here schedules {have:.1f} GiB)")
        if missing:
            # Ray would queue it forever; say so instead.
            self._done.append(Completion(trial.name, attempt, None, unschedulable(job, missing)))
            return ExecutorRef(kind=KIND, name=job, attempt=attempt)
        # memory: Ray schedules by it (so two 8Gi trials don't share 12 GiB); it enforces nothing.
        progress = str(self.state_dir / progress_path(trial.name, attempt))
        Path(halt_path(progress)).unlink(missing_ok=True)  # a halt asked of an earlier run of it
        ref = self._remote.options(num_cpus=res.cpu, num_gpus=res.gpu, memory=memory, name=job).remote(
            trial.to_wire(), attempt, resume, progress, str(self.state_dir / "checkpoints")
        )
        self._inflight[trial.name] = _InFlight(trial.name, attempt, ref, progress)
        return ExecutorRef(kind=KIND, name=job, attempt=attempt)

    def poll(self, timeout: float = 0.0) -> list[Completion]:
        import ray

        out, self._done = self._done, []
        timeout = self._kill_overdue(timeout)
        if not self._inflight:
            if timeout > 0 and not out:
                time.sleep(timeout)
            return out
        by_ref = {f.ref: f for f in self._inflight.values()}
        refs = list(by_ref)
        ready, _ = ray.wait(refs, num_returns=1, timeout=0 if out else timeout)
        if ready:  # then collect everything else that is already done too
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            f = by_ref[ref]
            del self._inflight[f.trial]
            try:
                outcome = ray.get(ref)
                out.append(Completion(f.trial, f.attempt, outcome, None, f.stopping))
            except Exception as exc:  # RayTaskError, WorkerCrashedError, TaskCancelledError, ...
                out.append(Completion(f.trial, f.attempt, None, executor_error(exc), f.stopping))
        return out

    def stop(self, trial: str, *, graceful: bool = False) -> None:
        """graceful: the trial has ended (the planner stopped it), so its attempt only has to go away:
        it is asked to halt at its next batch, keeping its warm worker for the next trial, and is
        killed after HALT_GRACE_S if it has not. Otherwise (Ctrl-C, close: trials to resume) the
        worker is killed now, before the trainer could report anything."""
        f = self._inflight.get(trial)
        if f is None or f.stopping:
            return
        if graceful:
            f.stopping = True
            append_line(halt_path(f.progress_file), {"halt": trial, "attempt": f.attempt})
            f.kill_at = time.monotonic() + HALT_GRACE_S
        else:
            self._kill(f)

    @staticmethod
    def _kill(f: _InFlight) -> None:
        import ray

        f.stopping, f.kill_at = True, None
        # force: kill the worker process; the training loop only checks for a halt request.
        ray.cancel(f.ref, force=True)

    def _kill_overdue(self, timeout: float) -> float:
        """Kills halted attempts past their grace; the poll's wait, cut to the next such deadline."""
        now = time.monotonic()
        for f in self._inflight.values():
            if f.kill_at is not None and f.kill_at <= now:
                self._kill(f)
        pending = [f.kill_at - now for f in self._inflight.values() if f.kill_at is not None]
        return min([timeout, *pending])

    def running(self) -> set[str]:
        return set(self._inflight)

    def close(self) -> None:
        import ray

        for f in list(self._inflight.values()):
            self._kill(f)
        deadline = time.monotonic() + 10
        while self._inflight and time.monotonic() < deadline:
            self.poll(timeout=0.2)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
