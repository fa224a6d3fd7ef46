import pytest

from campaign_operator.api import StopRule, TrialState
from campaign_operator.api.common import EarlyStopping
from campaign_operator.planner import evaluate_stop_rules

pytestmark = pytest.mark.unit

COLLAPSE = StopRule.model_validate(
    {
        "metric": "variance_ratio",
        "comparison": "<",
        "threshold": 0.1,
        "afterEpoch": 2,
        "reason": "VarianceCollapse",
    }
)


def hist(values, metric="variance_ratio"):
    return [(i + 1, {metric: v}) for i, v in enumerate(values)]


def test_rule_ignores_epochs_up_to_after_epoch():
    assert evaluate_stop_rules([COLLAPSE], None, hist([0.01, 0.01])) is None
    d = evaluate_stop_rules([COLLAPSE], None, hist([0.01, 0.01, 0.05]))
    assert d is not None and d.state == TrialState.STOPPED and d.reason == "VarianceCollapse" and d.epoch == 3


def test_patience_needs_consecutive_epochs():
    rule = COLLAPSE.model_copy(update={"patience": 2, "after_epoch": 0})
    assert evaluate_stop_rules([rule], None, hist([0.05, 0.5, 0.05, 0.5])) is None
    d = evaluate_stop_rules([rule], None, hist([0.05, 0.5, 0.05, 0.05]))
    assert d is not None and d.epoch == 4


def test_fail_action_fails_the_trial():
    rule = COLLAPSE.model_copy(update={"action": "Fail"})
    d = evaluate_stop_rules([rule], None, hist([1, 1, 0.0]))
    assert d is not None and d.state == TrialState.FAILED


def test_early_stopping_succeeds_with_early_stopped():
    early = EarlyStopping(metric="r2", mode="max", patience=2)
    assert evaluate_stop_rules([], early, hist([0.1, 0.2, 0.3, 0.3], "r2")) is None
    d = evaluate_stop_rules([], early, hist([0.1, 0.2, 0.3, 0.3, 0.25], "r2"))
    assert d is not None and d.state == TrialState.SUCCEEDED and d.reason == "EarlyStopped" and d.epoch == 5


def test_earliest_decision_wins_and_rules_beat_early_stopping_on_ties():
    early = EarlyStopping(metric="variance_ratio", mode="max", patience=1)
    d = evaluate_stop_rules([COLLAPSE], early, hist([0.5, 0.4, 0.05]))
    assert d is not None and d.reason == "EarlyStopped" and d.epoch == 2
    rule = COLLAPSE.model_copy(update={"after_epoch": 0})
    d = evaluate_stop_rules([rule], early, hist([0.5, 0.05]))
    assert d is not None and d.reason == "VarianceCollapse"


def test_missing_and_nan_metrics_never_fire():
    assert evaluate_stop_rules([COLLAPSE], None, [(3, {}), (4, {"variance_ratio": float("nan")})]) is None
