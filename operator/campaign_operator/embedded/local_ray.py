"""Starting the embedded run's local Ray, with retries for a loaded machine.

On a busy laptop Ray's raylet or GCS can miss their start-up deadlines; a later try often works.
Each try is one start of the executor's Ray (its own immediate retry off: a try can take a minute on
a loaded machine); between tries we wait longer each time and clean up what the failed start left.
Every failure's cause is kept, so the final error says what went wrong each time instead of only
the last bare Exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from campaign_operator.executors import fate
from campaign_operator.executors.local import LocalExecutor

from .fit import Machine

START_ATTEMPTS = 3
BACKOFF_S = (3.0, 9.0)
"""Waits before the second and third try: a loaded machine needs time, not a tight loop."""


class RayStartFailed(RuntimeError):
    """The local Ray did not start after every try; `causes` holds each try's reason (one line)."""

    def __init__(self, causes: list[str]):
        self.causes = causes
        n = len(causes)
        super().__init__(f"local Ray did not start ({n} tr{'ies' if n != 1 else 'y'}); last: {causes[-1]}")


def one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clean_up_failed_start() -> None:
    import ray

    ray.shutdown()
    fate.kill_left(fate.runner_tag(), set())


def start_local_executor(
    state_dir: Path,
    machine: Machine,
    *,
    attempts: int = START_ATTEMPTS,
    backoff_s: Sequence[float] = BACKOFF_S,
    on_retry: Callable[[int, str, float], None] = lambda attempt, cause, wait: None,
) -> LocalExecutor:
    """A LocalExecutor on a Ray started with exactly `machine`'s CPUs, GPUs and memory (what the
    campaign was fitted to: a trial fitted to the machine's memory is schedulable). Retries
    `attempts` times, calling `on_retry(attempt, cause, wait)` before each wait; RayStartFailed
    with every cause when none worked."""
    causes: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            return LocalExecutor(
                state_dir,
                num_cpus=machine.cpu,
                num_gpus=machine.gpu,
                memory_bytes=machine.memory_bytes,
                start_attempts=1,
            )
        except Exception as e:  # Ray's own start-up errors are bare Exceptions
            causes.append(one_line(e))
            _clean_up_failed_start()
            if attempt == attempts:
                break
            wait = backoff_s[min(attempt - 1, len(backoff_s) - 1)]
            on_retry(attempt, causes[-1], wait)
            time.sleep(wait)
    raise RayStartFailed(causes)
