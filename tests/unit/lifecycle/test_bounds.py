"""The bounds of the lifecycle contract (pure): metrics per report, name length, bytes per Trial
status, what a campaign's best keeps, and the verdict on a success without its objective metric."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from campaign_operator.api.common import (
    METRIC_NAME_MAX_LENGTH,
    METRICS_LIMIT,
    EarlyStopping,
    Mode,
    Objective,
    StopRule,
    TrialState,
)
from campaign_operator.api.trial import (
    HISTORY_LIMIT,
    STATUS_BYTES_LIMIT,
    WARNINGS_LIMIT,
    ExecutorRef,
    TrialStatus,
    TrialWarning,
)
from campaign_operator.lifecycle import METRICS_UNAVAILABLE, epoch_reported, launched, outcome_reported
from campaign_operator.lifecycle.bounds import (
    BEST_METRICS_LIMIT,
    HISTORY_TRIMMED,
    METRICS_DROPPED,
    best_metrics,
    fit,
    select_metrics,
    status_bytes,
    warned,
    watched_metrics,
)

from ..embedded.helpers import T0

pytestmark = pytest.mark.unit

LOSS = Objective(metric="val_loss", mode=Mode.MIN)
WATCHED = ("variance_ratio",)


def many(n: int, epoch: int = 1, width: int = 24) -> dict[str, float]:
    """`n` task metrics named m00000..., plus the objective and a watched metric last (a task that
    logs thousands of per-class metrics before the ones that matter)."""
    metrics = {f"m{i:05d}".ljust(width, "x"): i / 7 for i in range(n)}
    return metrics | {"val_loss": 1.0 / epoch, "variance_ratio": 0.5}


def running() -> TrialStatus:
    return launched(TrialStatus(), 1, ExecutorRef(kind="RayJob", name="t-a1", attempt=1), T0)


def test_the_objective_and_the_watched_metrics_come_first_then_held_then_by_name() -> None:
    metrics = {
        "z": 1.0,
        "b": 2.0,
        "a": 3.0,
        "held": 4.0,
        "val_loss": 5.0,
        "x" * (METRIC_NAME_MAX_LENGTH + 1): 6.0,
    }
    kept, dropped = select_metrics(metrics, ("val_loss", "z"), {"held"}, limit=4)
    assert list(kept) == ["z", "a", "held", "val_loss"]  # in the reported order, whatever their rank
    assert dropped == sorted(["b", "x" * (METRIC_NAME_MAX_LENGTH + 1)])
    assert select_metrics({"a": 1.0}, ("val_loss",)) == ({"a": 1.0}, [])


def test_an_over_long_name_is_dropped_never_cut() -> None:
    name = "v" * (METRIC_NAME_MAX_LENGTH + 1)
    s = epoch_reported(running(), 1, {"val_loss": 0.5, name: 1.0}, LOSS)
    assert s.metrics == {"val_loss": 0.5}
    (w,) = s.warnings
    assert w.reason == METRICS_DROPPED and f"more than {METRIC_NAME_MAX_LENGTH} characters" in w.message


def test_watched_metrics_are_the_stop_rules_and_early_stoppings() -> None:
    rule = StopRule(metric="variance_ratio", comparison="<", threshold=0.1, reason="VarianceCollapse")
    again = rule.model_copy(update={"reason": "Again"})
    assert watched_metrics([rule, again], EarlyStopping(metric="r2")) == ("variance_ratio", "r2")
    assert watched_metrics([], None) == ()


def test_an_epoch_with_thousands_of_metrics_keeps_the_bound_and_says_what_it_dropped() -> None:
    s = epoch_reported(running(), 1, many(3000), LOSS, WATCHED)
    assert len(s.metrics) == METRICS_LIMIT and {"val_loss", "variance_ratio"} <= set(s.metrics)
    assert len(s.history[0].metrics) == METRICS_LIMIT
    assert s.best is not None and len(s.best.metrics) == METRICS_LIMIT and s.best.metrics["val_loss"] == 1.0
    (w,) = s.warnings
    assert (w.reason, w.epoch) == (METRICS_DROPPED, 1)
    assert w.message.startswith(f"epoch 1 reported 3002 metrics; the status keeps at most {METRICS_LIMIT}")
    assert f"{3002 - METRICS_LIMIT} were dropped" in w.message and "m00062" in w.message
    assert "and 2930 more" in w.message and len(w.message) < 1024
    # the next epoch keeps the same columns (those held first), and the warning follows it
    s2 = epoch_reported(s, 2, many(3000, 2), LOSS, WATCHED)
    assert set(s2.metrics) == set(s.metrics) and s2.warnings[0].epoch == 2
    # an epoch within the bound keeps the warning: some epochs of this trial lost metrics
    s3 = epoch_reported(s2, 3, {"val_loss": 0.2}, LOSS, WATCHED)
    assert s3.metrics == {"val_loss": 0.2} and [w.reason for w in s3.warnings] == [METRICS_DROPPED]


def test_history_is_trimmed_by_bytes_and_the_status_stays_within_its_bound() -> None:
    s = running()
    wide = METRIC_NAME_MAX_LENGTH - 8  # the widest names a report may keep
    for epoch in range(1, 151):
        s = epoch_reported(s, epoch, many(500, epoch, wide), LOSS, WATCHED)
        assert status_bytes(s) <= STATUS_BYTES_LIMIT
    assert len(json.dumps(s.model_dump(by_alias=True, mode="json", exclude_none=True))) <= STATUS_BYTES_LIMIT
    epochs = [p.epoch for p in s.history]
    assert epochs[0] == 1 and epochs[-1] == 150 and 2 <= len(epochs) < HISTORY_LIMIT
    assert epochs == sorted(set(epochs))
    assert s.best is not None and s.best.epoch == 150  # val_loss = 1/epoch: the last is the best
    reasons = {w.reason: w for w in s.warnings}
    assert set(reasons) == {METRICS_DROPPED, HISTORY_TRIMMED}
    assert f"keeps {len(epochs)} epochs" in reasons[HISTORY_TRIMMED].message
    assert reasons[HISTORY_TRIMMED].epoch == 150


def test_a_status_within_its_bound_is_left_alone() -> None:
    s = running()
    for epoch in range(1, 101):
        s = epoch_reported(s, epoch, {"val_loss": 1.0 / epoch, "r2": 0.1}, LOSS)
    assert len(s.history) == HISTORY_LIMIT and not s.warnings and fit(s) is s


def test_a_verdict_with_thousands_of_metrics_lands_bounded_with_its_state() -> None:
    s = epoch_reported(running(), 1, many(3000), LOSS, WATCHED)
    history = [{"epoch": e, "metrics": many(3000, e, 60)} for e in range(1, 101)]
    verdict = {
        "state": "Succeeded",
        "reason": "Completed",
        "message": "trained 100 of 100 epochs",
        "epoch": 100,
        "metrics": many(3000, 100),
        "history": history,
        "best": {"epoch": 100, "metrics": many(3000, 100)},
        "completionTime": "2026-01-01T12:00:01Z",
    }
    out = outcome_reported(s, verdict, T0 + timedelta(seconds=1), LOSS, WATCHED)
    assert (out.state, out.reason, out.epoch) == (TrialState.SUCCEEDED, "Completed", 100)
    assert status_bytes(out) <= STATUS_BYTES_LIMIT
    assert len(out.metrics) == METRICS_LIMIT and all(len(p.metrics) <= METRICS_LIMIT for p in out.history)
    assert out.best is not None and out.best.metrics["val_loss"] == pytest.approx(0.01)
    assert out.history[0].epoch == 1 and out.history[-1].epoch == 100
    assert {w.reason for w in out.warnings} == {METRICS_DROPPED, HISTORY_TRIMMED}


def test_warnings_keep_one_per_reason_and_at_most_their_bound() -> None:
    s = TrialStatus()
    for i in range(10):
        s = warned(s, TrialWarning(reason=f"R{i % 6}", message=str(i), epoch=i))
    assert len(s.warnings) == WARNINGS_LIMIT and [w.message for w in s.warnings] == ["6", "7", "8", "9"]


# -- MetricsUnavailable ----------------------------------------------------------------------------
def test_a_success_without_the_objective_metric_is_metrics_unavailable() -> None:
    s = epoch_reported(running(), 1, {"loss": 0.3, "r2": 0.1}, LOSS)
    out = outcome_reported(s, {"state": "Succeeded", "reason": "Completed", "epoch": 1}, T0, LOSS)
    assert (out.state, out.reason) == (TrialState.FAILED, METRICS_UNAVAILABLE)
    assert out.message is not None and "objective metric val_loss" in out.message
    assert "it reported loss, r2" in out.message and out.completion_time == T0


def test_an_objective_that_was_never_finite_is_unavailable_too() -> None:
    s = epoch_reported(running(), 1, {"val_loss": float("nan"), "loss": 1.0}, LOSS)
    out = outcome_reported(s, {"state": "Succeeded"}, T0, LOSS)
    assert out.reason == METRICS_UNAVAILABLE


def test_the_objective_anywhere_in_the_status_is_enough_and_other_verdicts_stand() -> None:
    early = epoch_reported(running(), 1, {"val_loss": 0.5}, LOSS)
    later = epoch_reported(early, 2, {"loss": 0.4}, LOSS)  # the objective only at epoch 1
    assert outcome_reported(later, {"state": "Succeeded"}, T0, LOSS).state == TrialState.SUCCEEDED
    bare = running()
    for state, reason in (("Stopped", "VarianceCollapse"), ("Failed", "TaskError")):
        out = outcome_reported(bare, {"state": state, "reason": reason}, T0, LOSS)
        assert (out.state.value, out.reason) == (state, reason)


# -- the campaign's copy of a best epoch -----------------------------------------------------------
def test_best_metrics_keep_the_ranking_metric_then_the_named_ones_then_by_name() -> None:
    metrics = {f"a{i:02d}": float(i) for i in range(40)} | {"sharpe": 1.0, "zeta": 2.0}
    kept = best_metrics(metrics, "zeta", ("sharpe",))
    assert len(kept) == BEST_METRICS_LIMIT and {"zeta", "sharpe"} <= set(kept)
    assert sorted(set(kept) - {"zeta", "sharpe"}) == [f"a{i:02d}" for i in range(BEST_METRICS_LIMIT - 2)]
