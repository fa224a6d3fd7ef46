"""Embedded mode with real Ray and the real trainer: a trial that trains to the end without ever
reporting its objective metric ends Failed/MetricsUnavailable (the trainer's verdict, folded by the
lifecycle's outcome_reported as on a cluster), counts as a failure and is not retried."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign_operator.api.campaign import CampaignState
from campaign_operator.api.common import TrialState
from campaign_operator.embedded.runner import Runner
from campaign_operator.embedded.store import Store
from campaign_operator.executors.local import LocalExecutor, init_ray
from campaign_operator.lifecycle import METRICS_UNAVAILABLE
from campaign_operator.planner.admission import load_campaign
from campaign_operator.report.live import NullDisplay

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    import ray

    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_a_trial_without_its_objective_metric_is_metrics_unavailable_and_not_retried(tmp_path: Path) -> None:
    c = load_campaign(
        {
            "apiVersion": "training.campaign-operator.io/v1alpha1",
            "kind": "TrainingCampaign",
            "metadata": {"name": "mu"},
            "spec": {
                "objective": {"metric": "holdout_sharpe", "mode": "max"},  # regression never logs it
                "template": {
                    "task": "tests.integration.embedded.metrics_task:regression_task",
                    "dataset": {"synthetic": {"samples": 256, "seed": 1}},
                    "hyperparameters": {"hidden_dims": [8]},
                    "epochs": 2,
                    "batchSize": 64,
                },
                "phases": [
                    {
                        "name": "p",
                        "failurePolicy": {"maxFailureRate": 1.0, "retries": 2, "backoffSeconds": 0},
                    }
                ],
            },
        }
    )
    state = tmp_path / "state"
    store = Store(state)
    store.acquire_lease()
    executor = LocalExecutor(state)
    try:
        result = Runner(c, store, executor, NullDisplay(), max_parallel=1).run()
    finally:
        executor.close()
    with store:
        [t] = store.trials()
        attempts = [(a.attempt, a.kind) for a in store.attempts()]
    assert (t.status.state, t.status.reason, t.status.epoch) == (TrialState.FAILED, METRICS_UNAVAILABLE, 2)
    assert t.status.message is not None and "objective metric holdout_sharpe" in t.status.message
    assert "it reported epoch_time_s, ic, loss" in t.status.message  # what it did report, by name
    assert attempts == [(1, "start")]  # retries: 2, and none was spent on it
    (phase,) = result.status.phases
    assert (phase.counts.failed, phase.counts.total, float(phase.failure_rate)) == (1, 1, 1.0)
    assert result.status.state == CampaignState.SUCCEEDED  # 100% failed is within maxFailureRate 1.0
    assert phase.best is None
    lines = (state / "trials" / t.name / "attempt-1.jsonl").read_text().splitlines()
    verdict = json.loads(lines[-1])
    assert verdict["type"] == "outcome" and verdict["status"]["reason"] == METRICS_UNAVAILABLE
