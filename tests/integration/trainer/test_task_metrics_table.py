"""The API's static table of what each built-in task reports (`TASK_METRICS`, which `campaign
validate` checks metric names against without importing torch) is what the tasks really report."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_operator.api.common import BUILTIN_TASKS, TASK_METRICS
from campaign_trainer.harness import train_fn

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

TINY: dict[str, dict[str, Any]] = {
    "regression": {"parameters": {"seed": 1, "hidden_dims": [8]}, "dataset": {"synthetic": {"samples": 256}}},
    "gbm": {"parameters": {"seed": 1, "n_estimators": 5}, "dataset": {"synthetic": {"samples": 256}}},
    "cql": {"parameters": {"seed": 1, "hidden_dims": [8]}, "dataset": {"synthetic": {"samples": 512}}},
    "sequence": {
        "parameters": {"seed": 1, "d_model": 8, "layers": 1, "heads": 2, "seq_len": 8},
        "dataset": {"synthetic": {"samples": 256}},
    },
    "objective": {"parameters": {"seed": 1, "function": "branin", "x1": 0.0, "x2": 5.0}},
}


def test_every_builtin_task_is_in_the_table() -> None:
    assert sorted(TASK_METRICS) == sorted(BUILTIN_TASKS) == sorted(TINY)


@pytest.mark.parametrize("task", sorted(TINY))
def test_the_table_lists_exactly_what_the_task_reports(task: str, recorder: RecordingReporter) -> None:
    out = train_fn(trial(f"{task}-metrics", task, epochs=1, batchSize=64, **TINY[task]), recorder)
    assert out.state == "Succeeded", out.message
    ((_, reported),) = recorder.epochs
    assert sorted(reported) == sorted(TASK_METRICS[task])
