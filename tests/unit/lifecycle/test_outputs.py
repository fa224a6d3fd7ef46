"""A trial's outputs URI through the lifecycle: the trainer's verdict carries it (progress line or
status patch), the status keeps it only for a usable model, and data errors name the trial."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from campaign_operator.api.common import Mode, Objective, TrialState
from campaign_operator.api.trial import ExecutorRef, TrialStatus
from campaign_operator.embedded import progress
from campaign_operator.lifecycle import epoch_reported, launched, outcome_reported
from campaign_operator.lifecycle.outcomes import POINT_LABEL_LIMIT, point_label
from campaign_operator.lifecycle.wire import outcome_line, parse_lines
from campaign_trainer.outcome import Outcome
from campaign_trainer.reporters import outcome_line as trainer_outcome_line
from campaign_trainer.reporters import verdict_patch

from ..embedded.helpers import T0, trial

pytestmark = pytest.mark.unit

LOSS = Objective(metric="val_loss", mode=Mode.MIN)
OUT = "s3://bucket/ckpt/c-teacher-0001/outputs"


def running() -> TrialStatus:
    s = launched(TrialStatus(), 1, ExecutorRef(kind="local", name="t-a1", attempt=1), T0)
    return epoch_reported(s, 1, {"val_loss": 0.5}, LOSS)


@pytest.mark.parametrize(
    "state,reason,kept",
    [
        ("Succeeded", "Completed", True),
        ("Stopped", "EarlyStopped", True),
        ("Failed", "NonFiniteLoss", False),
    ],
)
def test_outputs_are_kept_only_for_a_usable_model(state: str, reason: str, kept: bool) -> None:
    verdict = {"state": state, "reason": reason, "epoch": 1, "metrics": {"val_loss": 0.5}, "outputs": OUT}
    s = outcome_reported(running(), verdict, T0 + timedelta(seconds=1), LOSS)
    assert s.state == TrialState(state)
    assert s.outputs == (OUT if kept else None)


def test_a_success_without_the_objective_fails_and_drops_its_outputs() -> None:
    s = launched(TrialStatus(), 1, ExecutorRef(kind="local", name="t-a1", attempt=1), T0)
    verdict = {"state": "Succeeded", "epoch": 1, "metrics": {"loss": 0.1}, "outputs": OUT}
    out = outcome_reported(s, verdict, T0, LOSS)
    assert (out.state, out.reason, out.outputs) == (TrialState.FAILED, "MetricsUnavailable", None)


def test_the_embedded_progress_line_carries_outputs_into_the_status() -> None:
    said = Outcome(
        trial="c-p-0001",
        state="Succeeded",
        reason="Completed",
        epoch=1,
        metrics={"val_loss": 0.4},
        history=[{"epoch": 1, "metrics": {"val_loss": 0.4}}],
        outputs=OUT,
    )
    line = trainer_outcome_line(said)
    assert line["status"]["outputs"] == OUT
    # through the bytes the runner reads, as it reads them
    lines, _ = parse_lines((json.dumps(line) + "\n").encode())
    t = trial(state=TrialState.RUNNING, attempt=1, start_time=T0)
    s = progress.apply_lines(t, 1, lines, T0 + timedelta(seconds=2)).status
    assert (s.state, s.outputs) == (TrialState.SUCCEEDED, OUT)
    assert outcome_line("t", {"state": "Failed"})["status"].get("outputs") is None


def test_the_kubernetes_verdict_patch_sends_outputs() -> None:
    said = Outcome(trial="t", state="Succeeded", reason="Completed", epoch=1, metrics={"val_loss": 0.4})
    said.outputs = OUT
    assert verdict_patch(running(), said, LOSS)["status"]["outputs"] == OUT
    assert verdict_patch(None, said, LOSS)["status"]["outputs"] == OUT
    said.outputs = None
    assert verdict_patch(running(), said, LOSS)["status"].get("outputs") is None


def test_point_label_names_a_trial_as_its_user_does() -> None:
    point = {
        "symbol": {"name": "LICI", "listed": "2022-05-17"},
        "window": {"start": "2022-01-01", "end": "2022-06-30"},
    }
    assert point_label(point) == "symbol=LICI window=2022-01-01..2022-06-30"
    assert point_label({"lr": 0.001, "dims": [64, 32]}) == "lr=0.001 dims=64,32"
    long = point_label({f"p{i}": "x" * 30 for i in range(20)})
    assert len(long) == POINT_LABEL_LIMIT and long.endswith("...")
