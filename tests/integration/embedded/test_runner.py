"""The runner with the real local executor, Ray and trainer, in this process: retries, stop rules,
fail-fast cancellation. (The CLI-level tests in tests/e2e/embedded cover kill/resume and outputs.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign_operator.api.campaign import CampaignState, TrainingCampaign
from campaign_operator.api.common import TrialState
from campaign_operator.embedded.runner import Runner
from campaign_operator.embedded.store import Store
from campaign_operator.executors.local import LocalExecutor, init_ray
from campaign_operator.planner.admission import load_campaign
from campaign_operator.report.live import NullDisplay

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    import ray

    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def campaign(phase: dict[str, Any], **template: Any) -> TrainingCampaign:
    return load_campaign(
        {
            "apiVersion": "training.campaign-operator.io/v1alpha1",
            "kind": "TrainingCampaign",
            "metadata": {"name": "rt"},
            "spec": {
                "template": {
                    "task": "regression",
                    "dataset": {"synthetic": {"samples": 512, "seed": 1}},
                    "hyperparameters": {"hidden_dims": [16]},
                    "epochs": 3,
                    "batchSize": 64,
                    **template,
                },
                "phases": [{"name": "p", **phase}],
            },
        }
    )


def run(c: TrainingCampaign, state: Path) -> tuple[Any, Store]:
    store = Store(state)
    store.acquire_lease()
    executor = LocalExecutor(state)
    try:
        result = Runner(c, store, executor, NullDisplay(), max_parallel=2).run()
    finally:
        executor.close()
    assert not executor.running()
    return result, store


def test_a_failed_attempt_is_retried_as_a_new_attempt(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    c = campaign(
        {
            "sweep": {"trials": [{"lr": 0.01}]},
            "failurePolicy": {"maxFailureRate": 0.0, "retries": 1, "backoffSeconds": 0},
        },
        task="tests.integration.embedded.flaky_task:fails_once",
        hyperparameters={"hidden_dims": [16], "marker": str(marker)},
    )
    result, store = run(c, tmp_path / "state")
    with store:
        [t] = store.trials()
        attempts = [(a.attempt, a.kind) for a in store.attempts()]
    assert result.status.state == CampaignState.SUCCEEDED
    assert (t.status.state, t.status.attempt, t.status.epoch) == (TrialState.SUCCEEDED, 2, 3)
    assert attempts == [(1, "start"), (2, "start")]
    first = (tmp_path / "state" / "trials" / t.name / "attempt-1.jsonl").read_text()
    assert "transient: the dataset mount was not ready" in first and '"state":"Failed"' in first


def test_a_stop_rule_ends_the_trial_stopped(tmp_path: Path) -> None:
    rule = {
        "metric": "val_loss",
        "comparison": "<",
        "threshold": 100.0,
        "afterEpoch": 1,
        "reason": "GoodEnough",
        "action": "Stop",
    }
    c = campaign({"stopRules": [rule]}, epochs=8)
    result, store = run(c, tmp_path / "state")
    with store:
        [t] = store.trials()
    assert result.status.state == CampaignState.SUCCEEDED  # stopped trials are not failures
    assert (t.status.state, t.status.reason) == (TrialState.STOPPED, "GoodEnough")
    assert 2 <= t.status.epoch < 8


def test_fail_fast_stops_the_running_trials(tmp_path: Path) -> None:
    c = campaign(
        {
            "hyperparameters": {"optimizer": "sgd"},
            "sweep": {"trials": [{"lr": 0.01}, {"lr": 100.0}, {"lr": 0.02}]},
            "failurePolicy": {"maxFailureRate": 0.0, "failFast": True},
        },
        epochs=200,
        dataset={"synthetic": {"samples": 4096, "seed": 1}},
    )
    result, store = run(c, tmp_path / "state")
    with store:
        trials = {t.spec.parameters["lr"]: t for t in store.trials()}
    assert result.status.state == CampaignState.FAILED
    assert result.status.reason == "FailureThresholdExceeded"
    assert trials[100.0].status.reason == "NonFiniteLoss"
    assert trials[0.01].status.state == TrialState.STOPPED and trials[0.01].status.reason == "Cancelled"
    assert trials[0.01].status.epoch < 200  # really stopped, not run to the end
    assert trials[0.02].status.state == TrialState.STOPPED  # never started: cancelled while pending


def _attempt_window(state: Path, trial: str) -> tuple[str, str]:
    import json

    lines = [json.loads(x) for x in (state / "trials" / trial / "attempt-1.jsonl").read_text().splitlines()]
    return lines[0]["time"], lines[-1]["time"]  # the start line, the outcome line


def test_memory_requests_are_scheduled_by_ray(tmp_path: Path) -> None:
    """Two trials that each ask 60% of Ray's memory run one after the other although two may run
    in parallel and CPUs are free; one that asks more than Ray has is Unschedulable, with numbers."""
    import ray

    have = ray.cluster_resources()["memory"]
    each = f"{int(have * 0.6) // 2**20}Mi"
    c = campaign({"sweep": {"seeds": {"count": 2}}}, resources={"cpu": 0.5, "memory": each})
    result, store = run(c, tmp_path / "fits")
    assert result.status.state == CampaignState.SUCCEEDED
    (_, a_end), (b_start, _) = sorted(_attempt_window(tmp_path / "fits", t.name) for t in store.trials())
    assert a_end <= b_start, "the second trial waited for the first one's memory"

    too_big = f"{int(have * 2) // 2**20}Mi"
    c = campaign({"failurePolicy": {"retries": 0}}, resources={"cpu": 0.5, "memory": too_big})
    result, store = run(c, tmp_path / "too-big")
    (trial,) = store.trials()
    assert trial.status.state == TrialState.FAILED and trial.status.reason == "Unschedulable"
    assert f"memory={too_big} (Ray here schedules" in (trial.status.message or ""), trial.status.message


def test_a_planner_stop_halts_the_attempt_without_an_outcome_instead_of_killing_its_worker(
    tmp_path: Path,
) -> None:
    """stop(graceful=True), what the runner does for a trial the planner ended: the trainer sees the
    halt request at its next batch and unwinds; the task returns (no TaskCancelledError: its worker
    was not killed, so the next trial finds it warm) and reports no outcome over the trial's end."""
    import json
    import time
    from datetime import UTC, datetime

    from campaign_operator.executors.local import HALT_GRACE_S
    from campaign_operator.planner import CreateTrial, plan

    c = campaign({}, epochs=500, dataset={"synthetic": {"samples": 4096, "seed": 1}})
    (create,) = [a for a in plan(c, [], datetime.now(UTC)).actions if isinstance(a, CreateTrial)]
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    try:
        executor.submit(create.trial, 1)
        progress = state / "trials" / create.trial.name / "attempt-1.jsonl"
        deadline = time.monotonic() + 240
        while '"epoch"' not in (progress.read_text() if progress.exists() else ""):
            assert time.monotonic() < deadline, "no epoch reported"
            assert not executor.poll(timeout=0.5), "the attempt ended before it was stopped"
        asked = time.monotonic()
        executor.stop(create.trial.name, graceful=True)
        done = []
        while not done:
            done = executor.poll(timeout=0.5)
            assert time.monotonic() - asked < 120, "the halted attempt never ended"
        took = time.monotonic() - asked
    finally:
        executor.close()
    (completion,) = done
    assert completion.cancelled and completion.failure is None and completion.outcome is None, completion
    assert took < HALT_GRACE_S, f"killed at the grace deadline ({took:.1f} s), not halted"
    lines = [json.loads(x) for x in progress.read_text().splitlines()]
    assert not [x for x in lines if "state" in x], "a halted attempt reports no outcome"
    assert 1 <= max(x.get("epoch", 0) for x in lines) < 500
