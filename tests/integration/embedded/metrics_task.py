"""User tasks for the runner tests (imported by Ray workers as tests.integration.embedded.metrics_task)."""

from __future__ import annotations

from typing import Any

from campaign_trainer.tasks import regression
from campaign_trainer.tasks.base import TaskConfig


def regression_task(cfg: TaskConfig) -> Any:
    """The built-in regression task under a user task's name: it logs what regression logs, so a
    campaign may name an objective it never reports (for a built-in task validation refuses that)."""
    return regression.build(cfg)
