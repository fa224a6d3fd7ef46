"""phase_trials previews exactly the trials plan() creates: same names, parameters and skips."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import TrialState
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner import CreateTrial, phase_trials, plan
from campaign_operator.planner.admission import load_campaign

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("example", ["teacher-student.yaml", "nba-deep-campaign.yaml"])
def test_matches_what_plan_creates_for_the_phases_that_start(example: str) -> None:
    [doc] = parse_manifests((EXAMPLES / example).read_text())
    campaign = load_campaign(doc)
    created = {a.trial.name: a.trial for a in plan(campaign, [], NOW).actions if isinstance(a, CreateTrial)}
    starting = [i for i, p in enumerate(campaign.spec.phases) if not p.depends_on]
    previewed = [t for i in starting for t in phase_trials(campaign, i)]
    assert [t.name for t in previewed] == list(created)
    for t in previewed:
        trial = created[t.name]
        assert trial.spec.parameters == t.parameters
        assert trial.spec.sweep_point == t.point.params
        if t.skip is None:
            assert trial.status.state == TrialState.PENDING
        else:
            assert (trial.status.state, trial.status.reason, trial.status.message) == (
                TrialState.SKIPPED,
                *t.skip,
            )


def test_skipped_trials_are_not_failures() -> None:
    [doc] = parse_manifests((EXAMPLES / "teacher-student.yaml").read_text())
    campaign = load_campaign(doc)
    teacher = plan(campaign, [], NOW).status.phases[0]
    skipped = sum(1 for t in phase_trials(campaign, 0) if t.skip)
    assert teacher.counts.total == 768
    assert teacher.counts.skipped == skipped > 0
    assert teacher.counts.failed == 0 and teacher.failure_rate == 0.0


def test_promoted_values_override_the_phase_and_yield_to_the_sweep_point() -> None:
    [doc] = parse_manifests((EXAMPLES / "nba-deep-campaign.yaml").read_text())
    campaign = load_campaign(doc)
    trials = phase_trials(campaign, 2, {"alpha": 0.25, "lr": 3e-4, "seed": 7})
    assert [t.parameters["seed"] for t in trials] == list(range(42, 62))
    assert {(t.parameters["alpha"], t.parameters["lr"]) for t in trials} == {(0.25, 3e-4)}
    # The name depends only on the sweep point, so it is known before promotion.
    assert [t.name for t in trials] == [t.name for t in phase_trials(campaign, 2)]


UNEVALUABLE_SKIP = (EXAMPLES.parent / "tests" / "data" / "skip-when-missing-key.yaml").read_text()


def test_a_skip_rule_that_cannot_be_evaluated_is_an_invalid_spec_before_any_trial() -> None:
    [doc] = parse_manifests(UNEVALUABLE_SKIP)
    with pytest.raises(SpecError) as err:
        load_campaign(doc)  # it compiles; only evaluating it shows TCS has no `listed`
    (problem,) = err.value.problems
    assert problem.startswith("spec.phases[0].skipWhen[0].expression: no key 'listed'"), problem
    campaign = TrainingCampaign.model_validate(doc)  # as the operator reads it from the apiserver
    result = plan(campaign, [], NOW)
    assert not any(isinstance(a, CreateTrial) for a in result.actions)
    assert (result.status.state, result.status.reason) == ("Failed", "InvalidSpec")
    assert result.status.message == problem
