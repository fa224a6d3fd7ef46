"""planner.semantics.check_campaign: every check that needs no training, each with a message that
names the field, says what exists or what would fix it, and stays short."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import TASK_METRICS
from campaign_operator.planner import CreateTrial, plan
from campaign_operator.planner.expressions import PROBLEM_MAX, ExpressionError, compile_expression
from campaign_operator.planner.semantics import check_campaign, problems_message, semantic_problems

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE: dict[str, Any] = {
    "metadata": {"name": "c"},
    "spec": {
        "template": {"task": "regression"},
        "phases": [
            {
                "name": "smoke",
                "sweep": {"matrix": {"axes": {"symbol": ["TCS", "LICI"], "window": ["2022", "2023"]}}},
            },
            {"name": "quality", "dependsOn": ["smoke"]},
            {"name": "full", "dependsOn": ["quality"]},
        ],
    },
}


def campaign(**changes: Any) -> TrainingCampaign:
    """BASE with `phase<i>={...}` merged into spec.phases[i] and `spec={...}` into spec."""
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key == "spec":
            doc["spec"].update(value)
        else:
            doc["spec"]["phases"][int(key.removeprefix("phase"))].update(value)
    return TrainingCampaign.model_validate(doc)


def problems(**changes: Any) -> list[str]:
    return check_campaign(campaign(**changes)).errors


def only(**changes: Any) -> str:
    found = problems(**changes)
    assert len(found) == 1, found
    return found[0]


def test_the_base_campaign_and_good_expressions_pass() -> None:
    assert problems() == []
    assert (
        problems(
            phase0={
                "gate": {"expression": "has(phase.best) && phase.best.metrics.r2 > 0.1 && phase.failed == 0"},
                "skipWhen": [
                    {"expression": "params.symbol == 'LICI' && params.window < '2023'", "reason": "Early"}
                ],
            },
            phase2={
                "when": "phases.quality.metrics.val_loss.mean < 1 && phases.quality.state == 'Succeeded'"
            },
        )
        == []
    )


# -- CEL against the variables each context has ---------------------------------------------------


def test_an_unknown_variable_lists_the_ones_there_are() -> None:
    p = only(phase0={"gate": {"expression": "phse.failed == 0"}})
    assert p.startswith("spec.phases[0].gate.expression: unknown variable 'phse' (did you mean phase?)")
    assert "can use: phase" in p
    p = only(phase2={"when": "phase.failed == 0"})
    assert p.startswith("spec.phases[2].when: unknown variable 'phase' (did you mean phases?)")
    p = only(phase0={"skipWhen": [{"expression": "param.symbol == 'TCS'", "reason": "X"}]})
    assert p.startswith("spec.phases[0].skipWhen[0].expression: unknown variable 'param'")


def test_a_gate_field_the_view_lacks_lists_the_fields() -> None:
    p = only(phase0={"gate": {"expression": "phase.counts.failed == 0"}})
    assert p.startswith("spec.phases[0].gate.expression: phase has no field 'counts';")
    assert "best, failed, failureRate, metrics, name, skipped, state, stopped, succeeded, total" in p
    p = only(phase0={"gate": {"expression": "phase.metrics.r2.median > 0"}})
    assert (
        "phase.metrics.r2 has no field 'median' (did you mean mean?); its fields are: count, max, mean" in p
    )
    # has() of a field the view never has is a mistake too; of one it may lack, the point.
    assert "phase has no field 'counts'" in only(phase0={"gate": {"expression": "has(phase.counts)"}})


def test_when_reads_only_phases_in_depends_on() -> None:
    p = only(phase2={"when": "phases.smoke.failed == 0"})
    assert p.startswith("spec.phases[2].when: phases.smoke: smoke is not in dependsOn ['quality'];")
    assert "add it to spec.phases[2].dependsOn" in p
    p = only(phase1={"when": "phases.full.failed == 0"})
    assert "phases.full: full is listed after this phase" in p
    p = only(phase2={"when": "phases.qualty.failed == 0"})
    assert "phases.qualty: no phase is named qualty (did you mean quality?); when can read: quality" in p
    assert only(phase2={"when": "phases['smoke'].failed == 0"}).startswith(
        "spec.phases[2].when: phases.smoke:"
    )


def test_metrics_compared_with_strings_and_mixed_arithmetic() -> None:
    p = only(phase0={"gate": {"expression": 'phase.best.metrics.sharpe > "0.10"'}})
    assert 'compares phase.best.metrics.sharpe (a double) with the string "0.10" using >' in p
    assert p.endswith("write the number without quotes: 0.1")
    assert "(a double) * an int: CEL arithmetic does not mix" in only(
        phase0={"gate": {"expression": "phase.failureRate * 2 < 0.5"}}
    )
    # Comparisons across int and double are fine (the apiserver stores 1.0 as 1).
    assert problems(phase0={"gate": {"expression": "phase.failed < 1.0 && phase.failureRate <= 0"}}) == []


def test_an_expression_must_be_a_condition() -> None:
    assert "must be a condition (a bool), but it is phase.total (an int)" in only(
        phase0={"gate": {"expression": "phase.total"}}
    )
    assert "must be a condition (a bool)" in only(
        phase0={"skipWhen": [{"expression": "size(params) + 1", "reason": "X"}]}
    )


def test_metric_names_in_gates_are_those_the_task_reports() -> None:
    p = only(phase0={"gate": {"expression": "phase.best.metrics.val_los < 1.0"}})
    assert "phase.best.metrics.val_los: task regression never reports 'val_los' (did you mean val_loss?)" in p
    p = only(phase2={"when": "phases.quality.metrics.sharp.mean > 0"})
    assert "phases.quality.metrics.sharp: task regression never reports 'sharp'" in p


def test_skip_parameters_are_those_of_the_trials() -> None:
    p = only(phase0={"skipWhen": [{"expression": "params.windw < '2023'", "reason": "Early"}]})
    assert "params.windw: no trial of phase smoke has a parameter 'windw' (did you mean window?)" in p
    assert "its parameters are: symbol, window" in p
    # has() is how a rule asks about a parameter only some trials have
    assert problems(phase0={"skipWhen": [{"expression": "has(params.windw)", "reason": "Early"}]}) == []


def test_skip_rules_are_evaluated_over_every_trial() -> None:
    axes = {"symbol": [{"name": "TCS"}, {"name": "LICI", "listed": "2022-05"}], "window": ["2022", "2023"]}
    rule = {"expression": "params.window < params.symbol.listed", "reason": "BeforeListing"}
    p = only(phase0={"sweep": {"matrix": {"axes": axes}}, "skipWhen": [rule]})
    assert p.startswith("spec.phases[0].skipWhen[0].expression: no key 'listed'")
    assert "for the trial with parameters {'symbol': {'name': 'TCS'}, 'window': '2022'}" in p
    rule["expression"] = "has(params.symbol.listed) && params.window < params.symbol.listed"
    assert problems(phase0={"sweep": {"matrix": {"axes": axes}}, "skipWhen": [rule]}) == []


# -- sweeps, thresholds, metrics, promotion ---------------------------------------------------------


def test_an_exclude_that_removes_every_combination() -> None:
    matrix = {"axes": {"symbol": ["TCS", "LICI"], "window": ["2022"]}, "exclude": [{"window": "2022"}]}
    p = only(phase0={"sweep": {"matrix": matrix}})
    assert p.startswith("spec.phases[0].sweep.matrix.exclude: removes all 2 combinations of the axes")
    assert "add matrix.include" in p
    assert (
        problems(phase0={"sweep": {"matrix": {**matrix, "include": [{"symbol": "X", "window": "1"}]}}}) == []
    )


def test_include_and_exclude_axes_must_exist() -> None:
    matrix = {
        "axes": {"symbol": ["TCS"], "window": ["2022"]},
        "include": [{"symbl": "LICI", "window": "2022"}],
    }
    p = only(phase0={"sweep": {"matrix": matrix}})
    assert p.startswith(
        "spec.phases[0].sweep.matrix.include[0]: unknown axis ['symbl'] (did you mean symbol?)"
    )


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf])
def test_thresholds_must_be_finite(threshold: float) -> None:
    rule = {"metric": "r2", "comparison": "<", "threshold": threshold, "reason": "Bad"}
    p = only(phase1={"stopRules": [rule]})
    assert p.startswith(f"spec.phases[1].stopRules[0].threshold: must be a finite number, got {threshold}")
    p = only(spec={"template": {"task": "regression", "stopRules": [rule]}})
    assert p.startswith("spec.template.stopRules[0].threshold: must be a finite number")


def test_metric_names_are_those_the_builtin_task_reports() -> None:
    p = only(spec={"objective": {"metric": "val_los"}})
    assert p.startswith(
        "spec.objective.metric: task regression never reports 'val_los' (did you mean val_loss?)"
    )
    rule = {"metric": "variance_ration", "comparison": "<", "threshold": 0.1, "reason": "Collapse"}
    assert only(phase0={"stopRules": [rule]}).startswith(
        "spec.phases[0].stopRules[0].metric: task regression never reports 'variance_ration'"
    )
    early = {"metric": "accuracy"}  # a sequence metric, not a regression one
    assert only(phase0={"earlyStopping": early}).startswith(
        "spec.phases[0].earlyStopping.metric: task regression never reports 'accuracy'"
    )
    # A phase's own task decides.
    assert problems(phase0={"task": "sequence", "earlyStopping": early}) == []
    for task, names in TASK_METRICS.items():
        for metric in names:
            assert problems(spec={"template": {"task": task}, "objective": {"metric": metric}}) == []


def test_for_a_user_task_an_unknown_metric_is_only_a_warning() -> None:
    found = check_campaign(
        campaign(
            spec={"template": {"task": "mypkg.tasks:build"}, "objective": {"metric": "val_acc"}},
            phase0={"gate": {"expression": "phase.best.metrics.val_acc > 0.9"}},
        )
    )
    assert found.errors == []
    assert found.warnings == [
        "spec.phases[0].gate.expression: phase.best.metrics.val_acc: no built-in task reports 'val_acc';"
        " make sure the user task mypkg.tasks:build does",
        "spec.objective.metric: no built-in task reports 'val_acc';"
        " make sure the user task mypkg.tasks:build does",
    ]
    # ...and one a built-in task reports is not even that
    assert check_campaign(campaign(spec={"template": {"task": "m:f"}})).warnings == []


def test_promoted_keys_must_be_parameters_of_the_source_phase() -> None:
    p = only(phase1={"fromPhase": {"phase": "smoke", "keys": ["symbol", "windw"]}})
    assert p.startswith("spec.phases[1].fromPhase.keys: ['windw'] is not a parameter of phase smoke's trials")
    assert "(did you mean window?)" in p
    assert "fromPhase.metric: task regression never reports 'sharp'" in only(
        phase1={"fromPhase": {"phase": "smoke", "metric": "sharp"}}
    )
    # Promoted parameters are known to the promoting phase's skip rules.
    rule = {"expression": "params.window == '2022'", "reason": "Old"}
    assert problems(phase1={"fromPhase": {"phase": "smoke"}, "skipWhen": [rule]}) == []


# -- bounded messages, and the operator path ----------------------------------------------------------


def test_messages_are_bounded_and_never_a_library_dump() -> None:
    long_name = "x" * 1500
    found = problems(phase0={"gate": {"expression": f"{long_name} > 1 && phase.{long_name} > 1"}})
    assert len(found) == 2
    for p in found:
        assert len(p) <= len("spec.phases[0].gate.expression: ") + PROBLEM_MAX
    # The runtime error for an unknown variable: cel-python's is ~4,200 characters of its state.
    with pytest.raises(ExpressionError) as err:
        compile_expression("spec.phases[0].gate.expression", "phse.total > 1").holds(phase={"total": 1})
    text = str(err.value)
    assert text.startswith(
        "spec.phases[0].gate.expression: unknown variable 'phse' (this expression can use: phase)"
    )
    assert len(text) < 200 and "Activation" not in text and "NameContainer" not in text


def test_problems_message_fits_and_says_how_many_more() -> None:
    many = [f"spec.phases[{i}].gate.expression: {'z' * 200}" for i in range(20)]
    message = problems_message(many)
    assert len(message) <= 1024
    assert message.startswith(many[0]) and message.endswith("more (campaign validate lists them all)")
    assert problems_message(["a: b", "c: d"]) == "a: b; c: d"
    assert len(problems_message(["q" * 5000])) == 1024


def test_the_operator_ends_invalid_spec_before_any_trial() -> None:
    bad = campaign(phase0={"gate": {"expression": "phase.counts.failed == 0"}})
    result = plan(bad, [], NOW)
    assert not any(isinstance(a, CreateTrial) for a in result.actions)
    assert (result.status.state, result.status.reason) == ("Failed", "InvalidSpec")
    assert result.status.message == semantic_problems(bad)[0]
    failed = next(c for c in result.status.conditions if c.type == "Failed")
    assert (failed.status, failed.reason, failed.message) == ("True", "InvalidSpec", result.status.message)


def test_a_gate_that_fails_at_run_time_names_its_field() -> None:
    from campaign_operator.api.common import TrialState
    from campaign_operator.api.trial import TrialStatus

    good = campaign(phase0={"sweep": None, "gate": {"expression": "phase.best.value > 0.1"}})
    created = [a.trial for a in plan(good, [], NOW).actions if isinstance(a, CreateTrial)]
    (trial,) = [t for t in created if t.spec.phase == "smoke"]
    trial.status = TrialStatus(state=TrialState.FAILED, attempt=1, completion_time=NOW)
    good.spec.phases[0].failure_policy.max_failure_rate = 1.0
    smoke = plan(good, [trial], NOW).status.phases[0]
    assert (smoke.state, smoke.reason) == ("Failed", "GateError")
    assert smoke.message is not None
    assert smoke.message.startswith("spec.phases[0].gate.expression: could not be evaluated: no key 'best'")


def test_the_checked_view_is_the_view_gates_get_and_the_docs_describe() -> None:
    import re

    from campaign_operator.api.campaign import Gate, PhaseStatus
    from campaign_operator.api.common import TrialState
    from campaign_operator.api.trial import BestEpoch, TrialStatus
    from campaign_operator.planner.views import best_trial, phase_view, phase_view_type

    good = campaign()
    trials = [a.trial for a in plan(good, [], NOW).actions if isinstance(a, CreateTrial)]
    for t in trials:
        t.status = TrialStatus(state=TrialState.SUCCEEDED, best=BestEpoch(epoch=1, metrics={"val_loss": 0.5}))
    status = PhaseStatus(name="smoke", best=best_trial(trials, "val_loss", good.spec.objective.mode))
    view = phase_view(status, trials)
    shape = phase_view_type()
    assert set(view) == set(shape.fields)
    assert set(view["best"]) == set(shape.fields["best"].fields)
    assert set(view["metrics"]["val_loss"]) == set(shape.fields["metrics"].values.fields)  # type: ignore[union-attr]
    described = Gate.model_fields["expression"].description or ""
    for name in shape.fields:
        assert re.search(rf"\b{name}\b", described), name
    assert "counts" not in described
