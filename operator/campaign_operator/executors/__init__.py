"""Executors run trial attempts somewhere (KubeRay, a Ray cluster's Jobs API, a local Ray)."""

from .base import Completion, Executor

__all__ = ["Completion", "Executor"]
