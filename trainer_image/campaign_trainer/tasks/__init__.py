"""Built-in tasks and the resolver for user tasks (``pkg.module:callable``)."""

from __future__ import annotations

from campaign_trainer.tasks.base import TaskBuilder, TaskConfig


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
    elif ":" in task:
        from campaign_trainer.tasks.user import load_user_task

        return load_user_task(task)
    else:
        raise ValueError(f"unknown task {task!r}: regression, gbm, cql, sequence or 'module:callable'")
    return build


__all__ = ["TaskBuilder", "TaskConfig", "resolve_task"]
