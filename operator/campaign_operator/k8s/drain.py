"""SIGTERM drains: a reconcile in progress applies its plan to the end before the operator exits.

kopf cancels its daemons as soon as it stops; a reconcile cancelled mid-plan would leave half of it
applied (safe, the plan is level-based, but the next operator then redoes and explains the rest).
So each reconcile runs as its own task, shielded from its daemon's cancellation, and the cleanup
handler waits for those still running (bounded) before it closes the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

DRAIN_SECONDS = 60.0
"""The longest a stopping operator waits for reconciles in progress (the chart's grace is 90 s)."""

T = TypeVar("T")
_in_flight: set[asyncio.Task[Any]] = set()


async def to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Runs `work` to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(work)
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return await asyncio.shield(task)


async def drain(timeout: float = DRAIN_SECONDS) -> None:
    """Waits for the reconciles still in progress; logs what one that failed meanwhile raised."""
    pending = set(_in_flight)
    if not pending:
        return
    log.info("stopping: waiting for %d reconcile(s) in progress to finish their plans", len(pending))
    done, late = await asyncio.wait(pending, timeout=timeout)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("a reconcile in progress at shutdown failed: %r", task.exception())
    if late:
        log.warning("%d reconcile(s) still running after %.0f s: stopping them half-way", len(late), timeout)
