"""A Trial created before a crash, whose Skipped status never landed, must not be launched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaign_operator.api import TrainingCampaign, TrialState
from campaign_operator.planner import CreateTrial, FinishTrial, LaunchTrial, plan

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def campaign() -> TrainingCampaign:
    return TrainingCampaign.model_validate(
        {
            "metadata": {"name": "c", "namespace": "ns", "generation": 1},
            "spec": {
                "template": {"task": "regression", "epochs": 1},
                "phases": [
                    {
                        "name": "p",
                        "sweep": {"grid": {"x": [1, 2, 3]}},
                        "skipWhen": [{"expression": "params.x == 2", "reason": "TwoIsSkipped"}],
                    }
                ],
            },
        }
    )


def test_skip_is_decided_again_for_a_trial_whose_status_was_lost() -> None:
    c = campaign()
    first = plan(c, [], NOW)
    created = [a.trial for a in first.actions if isinstance(a, CreateTrial)]
    skipped = [t for t in created if t.status.state == TrialState.SKIPPED]
    assert len(created) == 3 and len(skipped) == 1
    # The crash: every Trial exists, but all with an empty (Pending) status.
    lost = [t.model_copy(update={"status": type(t.status)()}) for t in created]
    second = plan(c, lost, NOW)
    finishes = [a for a in second.actions if isinstance(a, FinishTrial)]
    launches = {a.name for a in second.actions if isinstance(a, LaunchTrial)}
    assert [(f.name, f.state, f.reason, f.stop_executor) for f in finishes] == [
        (skipped[0].name, TrialState.SKIPPED, "TwoIsSkipped", False)
    ]
    assert skipped[0].name not in launches and len(launches) == 2
    assert second.status.phases[0].counts.skipped == 1


def test_a_pending_trial_that_does_not_match_is_left_alone() -> None:
    c = campaign()
    created = [a.trial for a in plan(c, [], NOW).actions if isinstance(a, CreateTrial)]
    again = plan(c, created, NOW)
    assert not [a for a in again.actions if isinstance(a, FinishTrial)]
