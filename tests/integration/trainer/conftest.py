from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from campaign_trainer.outcome import Outcome


@dataclass
class RecordingReporter:
    """A real Reporter that keeps what it is told (the embedded executor's view, in memory)."""

    epochs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.epochs.append((epoch, dict(metrics)))

    def report_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


@pytest.fixture
def recorder() -> RecordingReporter:
    return RecordingReporter()


def trial(name: str, task: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "Trial",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"campaign": "tests", "phase": "unit", "task": task, **spec},
    }
