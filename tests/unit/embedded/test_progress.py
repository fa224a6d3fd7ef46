from __future__ import annotations

from datetime import timedelta

import pytest

from campaign_operator.api.common import TrialState
from campaign_operator.embedded import progress

from .helpers import T0, trial

pytestmark = pytest.mark.unit


def test_epochs_fold_into_history_best_and_latest() -> None:
    t = trial(state=TrialState.RUNNING, attempt=1)
    lines = [
        {"type": "epoch", "epoch": 1, "metrics": {"val_loss": 0.9, "r2": None}},
        {"type": "epoch", "epoch": 2, "metrics": {"val_loss": 0.4}},
        {"type": "epoch", "epoch": 3, "metrics": {"val_loss": 0.6}},
    ]
    out = progress.apply_lines(t, 1, lines, T0)
    s = out.status
    assert s.state == TrialState.RUNNING and s.epoch == 3 and s.metrics == {"val_loss": 0.6}
    assert [p.epoch for p in s.history] == [1, 2, 3]
    assert s.history[0].metrics == {"val_loss": 0.9}  # null (non-finite) metrics are dropped
    assert s.best is not None and s.best.epoch == 2


def test_a_resumed_attempt_replaces_repeated_epochs() -> None:
    t = trial(state=TrialState.RUNNING, attempt=1, history=[(1, {"val_loss": 0.9}), (2, {"val_loss": 0.8})])
    out = progress.apply_lines(t, 1, [{"type": "epoch", "epoch": 2, "metrics": {"val_loss": 0.7}}], T0)
    assert [(p.epoch, p.metrics["val_loss"]) for p in out.status.history] == [(1, 0.9), (2, 0.7)]


def test_outcome_ends_the_attempt_and_later_lines_are_ignored() -> None:
    t = trial(state=TrialState.RUNNING, attempt=2, start_time=T0)
    now = T0 + timedelta(seconds=30)
    outcome = {
        "type": "outcome",
        "status": {
            "state": "Failed",
            "reason": "NonFiniteLoss",
            "message": "loss is nan at epoch 1",
            "epoch": 1,
            "metrics": {"loss": 1.0},
            "history": [{"epoch": 1, "metrics": {"loss": 1.0}}],
            "completionTime": "2026-01-01T12:00:29Z",
        },
    }
    late = {"type": "epoch", "epoch": 5, "metrics": {"val_loss": 0.1}}
    out = progress.apply_lines(t, 2, [outcome, late], now)
    s = out.status
    assert (s.state, s.reason, s.epoch, s.attempt) == (TrialState.FAILED, "NonFiniteLoss", 1, 2)
    assert s.completion_time == now  # read promptly: the runner's finer clock wins
    assert s.start_time == T0


def test_an_outcome_read_late_keeps_the_trainers_time() -> None:
    t = trial(state=TrialState.RUNNING, attempt=1, start_time=T0, history=[(1, {"val_loss": 0.5})])
    line = {"type": "outcome", "status": {"state": "Succeeded", "completionTime": "2026-01-01T12:00:10Z"}}
    out = progress.apply_lines(t, 1, [line], T0 + timedelta(minutes=5))
    assert out.status.completion_time == T0 + timedelta(seconds=10)
    assert out.status.reason == "Completed"


def test_lines_of_another_attempt_or_an_ended_trial_change_nothing() -> None:
    line = {"type": "epoch", "epoch": 1, "metrics": {"val_loss": 0.5}}
    running = trial(state=TrialState.RUNNING, attempt=2)
    assert progress.apply_lines(running, 1, [line], T0) is running
    stopped = trial(state=TrialState.STOPPED, attempt=1)
    assert progress.apply_lines(stopped, 1, [line], T0) is stopped
