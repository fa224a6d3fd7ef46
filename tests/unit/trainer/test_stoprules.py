"""The trainer's stop-rule adapter: wire-form rules and history in, the planner's decision out.

The semantics themselves are the planner's (tests/unit/planner/test_stoprules.py); these tests pin
what the trainer relies on each epoch, through the shapes it actually passes.
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from campaign_operator.api.common import StopRule
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


def test_collapse_rule_waits_for_after_epoch_then_stops() -> None:
    assert evaluate([COLLAPSE], None, hist("variance_ratio", [0.01, 0.01])) is None
    d = evaluate([COLLAPSE], None, hist("variance_ratio", [0.01, 0.01, 0.01]))
    assert isinstance(d, StopDecision)
    assert (d.state, d.reason) == ("Stopped", "VarianceCollapse")
    assert d.message.startswith("predictions collapsed") and "variance_ratio=0.01" in d.message


def test_healthy_values_and_the_threshold_itself_do_not_fire() -> None:
    assert evaluate([COLLAPSE], None, hist("variance_ratio", [0.5, 0.4, 0.3, 0.1])) is None


def test_patience_counts_consecutive_epochs_and_nan_breaks_the_streak() -> None:
    rule = {**COLLAPSE, "patience": 2}
    assert evaluate([rule], None, hist("variance_ratio", [0.5, 0.5, 0.05, 0.2, 0.05])) is None
    assert evaluate([rule], None, hist("variance_ratio", [0.5, 0.5, 0.05, math.nan, 0.05])) is None
    assert evaluate([rule], None, hist("variance_ratio", [0.5, 0.5, 0.05, 0.05])) is not None
    assert evaluate([rule], None, hist("variance_ratio", [0.05, 0.05, 0.5])) is None  # before afterEpoch


def test_fail_action_gives_failed() -> None:
    rule = {"metric": "loss", "comparison": ">", "threshold": 10, "action": "Fail", "reason": "Diverged"}
    d = evaluate([rule], None, hist("loss", [1.0, 11.0]))
    assert d is not None and (d.state, d.reason) == ("Failed", "Diverged")


def test_early_stopping_succeeds_and_rules_outrank_it() -> None:
    early = {"metric": "val_loss", "mode": "min", "patience": 2, "minDelta": 0.0}
    assert evaluate(None, early, hist("val_loss", [1.0, 0.9, 0.95])) is None
    d = evaluate(None, early, hist("val_loss", [1.0, 0.9, 0.95, 0.91]))
    assert d is not None and (d.state, d.reason) == ("Succeeded", "EarlyStopped")
    both = evaluate(
        [{**COLLAPSE, "metric": "val_loss", "threshold": 5, "afterEpoch": 3}],
        early,
        hist("val_loss", [1.0, 0.9, 0.95, 0.91]),
    )
    assert both is not None and both.reason == "VarianceCollapse"


def test_accepts_models_and_dict_history() -> None:
    rule = StopRule.model_validate(COLLAPSE)
    history = [{"epoch": e, "metrics": {"variance_ratio": 0.01}} for e in (1, 2, 3)]
    d = evaluate([rule], None, history)
    assert d is not None and d.reason == "VarianceCollapse"


def test_invalid_rule_is_rejected_by_the_api_model() -> None:
    with pytest.raises(ValidationError):
        evaluate([{**COLLAPSE, "comparison": "~"}], None, hist("variance_ratio", [1.0]))
