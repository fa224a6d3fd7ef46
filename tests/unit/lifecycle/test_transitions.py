"""The lifecycle contract's pure transitions and rules: what every shell and the trainer apply."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaign_operator.api.common import MetricPoint, Mode, Objective, TrialState
from campaign_operator.api.trial import ExecutorRef, TrialStatus
from campaign_operator.lifecycle import (
    JobOutcome,
    best_of,
    bounded,
    epoch_reported,
    finished,
    is_better,
    job_ended,
    launched,
    outcome_reported,
)
from campaign_operator.lifecycle.outcomes import executor_error, from_rayjob, unschedulable
from campaign_operator.lifecycle.wire import epoch_line, parse_lines

from ..embedded.helpers import T0

pytestmark = pytest.mark.unit

LOSS = Objective(metric="val_loss", mode=Mode.MIN)


def ref(attempt: int) -> ExecutorRef:
    return ExecutorRef(kind="RayJob", name=f"t-a{attempt}", attempt=attempt)


def test_parse_lines_keeps_a_torn_tail_for_later() -> None:
    data = b'{"type":"epoch","epoch":1}\nnot json\n{"type":"epoch","epoch":2}\n{"type":"ep'
    lines, used = parse_lines(data)
    assert [x["epoch"] for x in lines] == [1, 2]
    assert used == data.rfind(b"\n") + 1


def test_an_epoch_line_keeps_a_bad_metric_as_null_and_the_status_drops_it() -> None:
    line = epoch_line("t", 1, {"val_loss": float("nan"), "r2": 0.5, "note": "x"})
    assert line["metrics"] == {"val_loss": None, "r2": 0.5}
    s = epoch_reported(TrialStatus(), 1, line["metrics"], LOSS)
    assert s.metrics == {"r2": 0.5} and s.best is None


def test_history_keeps_first_and_last_and_thins_the_middle() -> None:
    points = list(range(1, 251))
    kept = bounded(points, 100)
    assert len(kept) == 100 and kept[0] == 1 and kept[-1] == 250
    assert kept[-50:] == list(range(201, 251))  # the newest half dense


def test_incremental_and_whole_history_bounds_agree_on_length_and_ends() -> None:
    s = TrialStatus()
    for epoch in range(1, 301):
        s = epoch_reported(s, epoch, {"val_loss": 1.0 / epoch}, LOSS)
    assert len(s.history) == 100 and s.history[0].epoch == 1 and s.history[-1].epoch == 300
    assert s.best is not None and s.best.epoch == 300


def test_best_is_strictly_better_and_a_tie_keeps_the_earlier_epoch() -> None:
    assert is_better(0.1, None, Mode.MIN) and not is_better(0.2, 0.2, "min") and is_better(3, 2, Mode.MAX)
    history = [MetricPoint(epoch=e, metrics={"val_loss": v}) for e, v in ((1, 0.5), (2, 0.3), (3, 0.3))]
    best = best_of(history, LOSS)
    assert best is not None and best.epoch == 2


def test_a_resumed_attempt_replaces_the_epochs_it_repeats_and_a_best_among_them() -> None:
    s = TrialStatus()
    for epoch, loss in ((1, 0.9), (2, 0.2), (3, 0.5)):
        s = epoch_reported(s, epoch, {"val_loss": loss}, LOSS)
    s = epoch_reported(s, 2, {"val_loss": 0.7}, LOSS)
    assert [(p.epoch, p.metrics["val_loss"]) for p in s.history] == [(1, 0.9), (2, 0.7)]
    assert s.best is not None and s.best.epoch == 2 and s.best.metrics["val_loss"] == 0.7


def test_launch_owns_the_lifecycle_and_keeps_what_earlier_attempts_measured() -> None:
    s = epoch_reported(TrialStatus(), 1, {"val_loss": 0.4}, LOSS)
    s = job_ended(s, executor_error(RuntimeError("worker died")), T0)
    assert (s.state, s.reason, s.completion_time) == (TrialState.FAILED, "ExecutorError", T0)
    s = launched(s, 2, ref(2), T0 + timedelta(seconds=5))
    assert (s.state, s.attempt, s.reason, s.completion_time) == (TrialState.RUNNING, 2, "Launched", None)
    assert s.executor_ref == ref(2) and s.start_time == T0 + timedelta(seconds=5)
    assert s.epoch == 1 and [p.epoch for p in s.history] == [1]


def test_the_trainers_verdict_never_touches_attempt_or_start_time() -> None:
    s = epoch_reported(launched(TrialStatus(), 2, ref(2), T0), 1, {"val_loss": 0.5}, LOSS)
    verdict = {"state": "Succeeded", "reason": "Completed", "attempt": 1, "startTime": "2020-01-01T00:00:00Z"}
    out = outcome_reported(s, verdict, T0 + timedelta(seconds=1), LOSS)
    assert (out.state, out.attempt, out.start_time) == (TrialState.SUCCEEDED, 2, T0)


def test_a_verdict_without_a_terminal_state_is_a_failure_and_one_read_late_keeps_its_stamp() -> None:
    s = epoch_reported(launched(TrialStatus(), 1, ref(1), T0), 1, {"val_loss": 0.5}, LOSS)
    assert outcome_reported(s, {"state": "Running"}, T0, LOSS).state == TrialState.FAILED
    late = outcome_reported(
        s, {"state": "Succeeded", "completionTime": "2026-01-01T12:00:10Z"}, T0 + timedelta(hours=1), LOSS
    )
    assert late.completion_time == T0 + timedelta(seconds=10) and late.reason == "Completed"


def test_a_waiting_job_only_explains_and_a_stop_ends() -> None:
    s = launched(TrialStatus(), 1, ref(1), T0)
    waiting = job_ended(s, JobOutcome(TrialState.RUNNING, "Suspended", "queued"), T0)
    assert (waiting.state, waiting.reason, waiting.completion_time) == (TrialState.RUNNING, "Suspended", None)
    stopped = finished(waiting, TrialState.STOPPED, "Cancelled", "by the user", T0)
    assert (stopped.state, stopped.reason, stopped.completion_time) == (TrialState.STOPPED, "Cancelled", T0)


def test_job_outcomes_name_the_reason_rules_read() -> None:
    assert unschedulable("t-a1", ["GPU=1 (this machine has 0)"]).reason == "Unschedulable"
    resumed = from_rayjob({"metadata": {"name": "j"}, "status": {"jobDeploymentStatus": "Running"}}, True)
    assert resumed is not None and (resumed.state, resumed.reason) == (TrialState.RUNNING, "Resumed")
    assert from_rayjob({"status": {"jobDeploymentStatus": "Running"}}, False) is None
