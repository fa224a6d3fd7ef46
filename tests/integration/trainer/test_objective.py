"""The objective task under the real harness: each epoch reports value(...) exactly, stop rules and
resumption see the same curve, bad hyperparameters fail the trial naming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaign_operator.api.common import TASK_METRICS
from campaign_trainer.harness import train_fn
from campaign_trainer.tasks.objective import curve_and_value, value

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

POINT = {"function": "hartmann6", "x1": 0.2, "x2": 0.15, "x3": 0.5, "x4": 0.3, "x5": 0.3, "x6": 0.6}


def objective_trial(
    name: str, epochs: int = 5, spec: dict[str, Any] | None = None, **parameters: Any
) -> dict[str, Any]:
    params = {**POINT, "seed": 4, **parameters}
    return trial(name, "objective", epochs=epochs, parameters=params, **(spec or {}))


def test_each_epoch_reports_the_cores_value(recorder: RecordingReporter) -> None:
    out = train_fn(objective_trial("objective-fit", noise=0.05, label="ignored"), recorder)
    assert (out.state, out.reason, out.epoch) == ("Succeeded", "Completed", 5), out.message
    params = {**POINT, "label": "ignored"}
    assert [e for e, _ in recorder.epochs] == [1, 2, 3, 4, 5]
    for epoch, metrics in recorder.epochs:
        assert set(metrics) == set(TASK_METRICS["objective"])
        curve, reported = curve_and_value("hartmann6", params, epoch, 5, 4, 0.05)
        assert metrics["val_loss"] == reported == value("hartmann6", params, epoch, 5, 4, 0.05)
        assert metrics["loss"] == curve
        assert metrics["lr"] == 0.0
    assert out.best is not None and out.best["metrics"]["val_loss"] == min(
        m["val_loss"] for _, m in recorder.epochs
    )


def test_stop_rules_see_the_curve(recorder: RecordingReporter) -> None:
    threshold = value("hartmann6", POINT, 3, 10, 4) + 1e-9  # reached at epoch 3 at the latest
    rule = {
        "metric": "val_loss",
        "comparison": "<",
        "threshold": threshold,
        "action": "Stop",
        "reason": "Good",
    }
    out = train_fn(objective_trial("objective-stop", epochs=10, spec={"stopRules": [rule]}), recorder)
    assert (out.state, out.reason) == ("Stopped", "Good")
    assert out.epoch <= 3 and len(recorder.epochs) == out.epoch


def test_a_resumed_trial_reports_the_same_history(tmp_path: Path) -> None:
    whole = RecordingReporter()
    train_fn(objective_trial("objective-whole", epochs=6), whole, checkpoint_root=str(tmp_path / "a"))
    first, second = RecordingReporter(), RecordingReporter()
    root = str(tmp_path / "b")
    train_fn(objective_trial("objective-resume", epochs=3), first, checkpoint_root=root)
    out = train_fn(objective_trial("objective-resume", epochs=6), second, checkpoint_root=root)
    assert out.state == "Succeeded" and out.resumed_from_epoch == 3
    resumed = [(e, m["val_loss"]) for e, m in first.epochs + second.epochs]
    assert resumed[:3] == [(e, value("hartmann6", POINT, e, 3, 4)) for e in (1, 2, 3)]  # its own 3 epochs
    assert resumed[3:] == [(e, m["val_loss"]) for e, m in whole.epochs[3:]]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"function": "ackley"}, "'ackley' is not one of branin, hartmann6, rosenbrock"),
        ({"x6": None, "x7": 1.0}, "x6"),
        ({"noise": "high"}, "hyperparameter noise: expected a number"),
        ({"epoch_seconds": -1}, "epoch_seconds"),
    ],
)
def test_bad_hyperparameters_fail_the_trial_naming_them(
    parameters: dict[str, Any], message: str, recorder: RecordingReporter
) -> None:
    spec = objective_trial("objective-bad")
    spec["spec"]["parameters"] = {
        k: v for k, v in {**spec["spec"]["parameters"], **parameters}.items() if v is not None
    }
    out = train_fn(spec, recorder)
    assert (out.state, out.reason) == ("Failed", "TaskError")
    assert message in (out.message or "") and recorder.epochs == []


def test_epoch_seconds_makes_each_epoch_take_that_long(recorder: RecordingReporter) -> None:
    out = train_fn(objective_trial("objective-slow", epochs=2, epoch_seconds=0.2), recorder)
    assert out.state == "Succeeded", out.message
    assert all(m["epoch_time_s"] >= 0.2 for _, m in recorder.epochs)
