"""Executors run trial attempts somewhere (a RayJob, an existing Ray cluster, local Ray) and report
how they ended. They do I/O only; every decision stays in the planner."""

from .base import BatchExecutor, Completion, Executor, JobOutcome

__all__ = ["BatchExecutor", "Completion", "Executor", "JobOutcome"]
