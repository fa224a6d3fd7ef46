"""User tasks for the runner tests (imported by Ray workers as tests.integration.embedded.flaky_task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_trainer.tasks import regression
from campaign_trainer.tasks.base import TaskConfig


def fails_once(cfg: TaskConfig) -> Any:
    """Fails its first attempt (a transient error), then trains the regression task."""
    marker = Path(str(cfg.param("marker", "")))
    if not marker.exists():
        marker.write_text("failed once\n")
        raise RuntimeError("transient: the dataset mount was not ready")
    return regression.build(cfg)
