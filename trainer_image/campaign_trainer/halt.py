"""A stop the shell asks of a running attempt whose trial has already ended (the planner stopped it:
early termination, a stop rule over the phase, a failed phase): training unwinds at the next batch
and the process lives on for the next trial, instead of the shell killing it (on embedded Ray,
killing a task's worker costs the next trial a new worker that imports torch and Lightning again).

The request is a file beside the attempt's progress file (`lifecycle.wire.halt_path`); the trainer
looks for it at most every CHECK_SECONDS. `Halted` derives from BaseException so that no `except
Exception` on the way (the harness's own, Lightning's, Ray Train's) turns it into a Failed outcome:
the trial's end is already recorded, and an attempt that halts reports nothing.
"""

from __future__ import annotations

import os
import time

CHECK_SECONDS = 0.2


class Halted(BaseException):
    """The shell asked this attempt to stop; nothing is reported."""


class HaltWatch:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._next = 0.0

    def check(self) -> None:
        """Raises Halted once the request file exists (looked for at most every CHECK_SECONDS)."""
        if self.path is None:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + CHECK_SECONDS
        if os.path.exists(self.path):
            raise Halted(self.path)
