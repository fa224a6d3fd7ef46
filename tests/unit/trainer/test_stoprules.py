"""Stop-rule semantics (pure): patience, afterEpoch, actions, early stopping, NaN handling."""

from __future__ import annotations

import math

import pytest

from campaign_trainer.stoprules import StopDecision, evaluate

pytestmark = pytest.mark.unit

COLLAPSE = {
    "metric": "variance_ratio",
    "comparison": "<",
    "threshold": 0.1,
    "afterEpoch": 2,
    "patience": 1,
    "action": "Stop",
    "reason": "VarianceCollapse",
    "message": "predictions collapsed",
}


def hist(metric: str, values: list[float]) -> list[tuple[int, dict[str, float]]]:
    return [(i + 1, {metric: v}) for i, v in enumerate(values)]


def test_no_history_no_decision() -> None:
    assert evaluate([COLLAPSE], {"metric": "r2", "mode": "max", "patience": 1}, []) is None


def test_rule_waits_for_after_epoch() -> None:
    assert evaluate([COLLAPSE], None, hist("variance_ratio", [0.01, 0.01])) is None
    d = evaluate([COLLAPSE], None, hist("variance_ratio", [0.01, 0.01, 0.01]))
    assert d == StopDecision("Stopped", "VarianceCollapse", "predictions collapsed")


def test_rule_does_not_fire_on_healthy_values_or_at_threshold() -> None:
    assert evaluate([COLLAPSE], None, hist("variance_ratio", [0.5, 0.4, 0.3, 0.1])) is None


def test_patience_needs_consecutive_epochs_after_after_epoch() -> None:
    rule = {**COLLAPSE, "patience": 2}
    assert evaluate([rule], None, hist("variance_ratio", [0.5, 0.5, 0.05])) is None
    assert evaluate([rule], None, hist("variance_ratio", [0.5, 0.5, 0.05, 0.2, 0.05])) is None
    assert evaluate([rule], None, hist("variance_ratio", [0.5, 0.5, 0.05, 0.05])) is not None
    # epochs at or before afterEpoch never count towards patience
    assert evaluate([rule], None, hist("variance_ratio", [0.05, 0.05, 0.05])) is None


@pytest.mark.parametrize("bad", [math.nan, None])
def test_missing_or_nan_metric_breaks_the_streak(bad: float | None) -> None:
    rule = {**COLLAPSE, "patience": 2}
    h: list[tuple[int, dict[str, float]]] = hist("variance_ratio", [0.5, 0.5, 0.05])
    h.append((4, {} if bad is None else {"variance_ratio": bad}))
    assert evaluate([rule], None, h) is None


def test_fail_action_and_default_reason_message() -> None:
    rule = {"metric": "loss", "comparison": ">", "threshold": 10, "action": "Fail"}
    d = evaluate([rule], None, hist("loss", [1.0, 11.0]))
    assert d is not None and d.state == "Failed" and d.reason == "StopRule"
    assert "loss=11 > 10 at epoch 2" in d.message


@pytest.mark.parametrize(
    "comparison,value,fires",
    [
        ("<", 0.1, False),
        ("<=", 0.1, True),
        (">", 0.1, False),
        (">=", 0.1, True),
        ("==", 0.1, True),
        ("!=", 0.1, False),
        ("lt", 0.05, True),
        ("gt", 0.2, True),
    ],
)
def test_comparisons(comparison: str, value: float, fires: bool) -> None:
    rule = {"metric": "m", "comparison": comparison, "threshold": 0.1}
    assert (evaluate([rule], None, hist("m", [value])) is not None) is fires


def test_unknown_comparison_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown comparison"):
        evaluate([{"metric": "m", "comparison": "~", "threshold": 1}], None, hist("m", [1.0]))


def test_first_firing_rule_wins_and_rules_outrank_early_stopping() -> None:
    rules = [
        {"metric": "m", "comparison": ">", "threshold": 100, "reason": "First"},
        {"metric": "m", "comparison": "<", "threshold": 100, "reason": "Second", "action": "Fail"},
    ]
    early = {"metric": "m", "mode": "max", "patience": 1}
    d = evaluate(rules, early, hist("m", [1.0, 1.0, 1.0]))
    assert d is not None and (d.reason, d.state) == ("Second", "Failed")


def test_early_stopping_min_mode() -> None:
    early = {"metric": "val_loss", "mode": "min", "patience": 2, "minDelta": 0.0}
    assert evaluate(None, early, hist("val_loss", [1.0, 0.9, 0.95])) is None
    d = evaluate(None, early, hist("val_loss", [1.0, 0.9, 0.95, 0.91]))
    assert d is not None and (d.state, d.reason) == ("Succeeded", "EarlyStopped")
    assert "epoch 2" in d.message
    # improvement resets the counter
    assert evaluate(None, early, hist("val_loss", [1.0, 0.9, 0.95, 0.8, 0.85])) is None


def test_early_stopping_max_mode_with_min_delta() -> None:
    early = {"metric": "r2", "mode": "max", "patience": 2, "minDelta": 0.05}
    # +0.01 steps are not improvements bigger than minDelta
    d = evaluate(None, early, hist("r2", [0.1, 0.11, 0.12]))
    assert d is not None and d.reason == "EarlyStopped"
    assert evaluate(None, early, hist("r2", [0.1, 0.2, 0.21])) is None


def test_snake_case_fields_and_history_dicts_and_model_objects() -> None:
    class Rule:  # the API package's pydantic models expose attributes, not keys
        metric = "variance_ratio"
        comparison = "<"
        threshold = 0.1
        after_epoch = 2
        patience = 1
        action = "Stop"
        reason = "VarianceCollapse"
        message = None

    history = [{"epoch": e, "metrics": {"variance_ratio": 0.01}} for e in (1, 2, 3)]
    d = evaluate([Rule()], None, history)
    assert d is not None and d.reason == "VarianceCollapse" and "variance_ratio=0.01" in d.message
    assert evaluate([{**COLLAPSE, "afterEpoch": None, "after_epoch": 3}], None, history) is None
