"""Built-in tasks and the resolver for user tasks (``pkg.module:callable``).

``TaskBuilder`` and ``TaskConfig`` (tasks.base, which imports torch and Lightning) load on first use,
so importing a torch-free module of this package (``tasks.objective``'s core) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign_trainer.tasks.base import TaskBuilder, TaskConfig


def __getattr__(name: str) -> Any:
    if name in ("TaskBuilder", "TaskConfig"):
        return getattr(importlib.import_module("campaign_trainer.tasks.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_task(task: str) -> TaskBuilder:
    """Map a trial's ``task`` to its builder; imports lazily so a trial pays only for its own task."""
    if task == "regression":
        from campaign_trainer.tasks.regression import build
    elif task == "gbm":
        from campaign_trainer.tasks.gbm import build
    elif task == "cql":
        from campaign_trainer.tasks.cql import build
    elif task == "sequence":
        from campaign_trainer.tasks.sequence import build
    elif task == "objective":
        from campaign_trainer.tasks.objective import build
    elif ":" in task:
        from campaign_trainer.tasks.user import load_user_task

        return load_user_task(task)
    else:
        raise ValueError(
            f"unknown task {task!r}: regression, gbm, cql, sequence, objective or 'module:callable'"
        )
    return build


__all__ = ["TaskBuilder", "TaskConfig", "resolve_task"]
