from datetime import timedelta

import pytest

from campaign_operator.api import CampaignState, PhaseState, TrialState
from campaign_operator.api.common import MetricPoint
from campaign_operator.planner import CreateTrial, EmitEvent, FinishTrial, LaunchTrial

from .sim import World, campaign

pytestmark = pytest.mark.unit

OK = (TrialState.SUCCEEDED, {"val_loss": 0.5})


def ok(t):
    return TrialState.SUCCEEDED, {"val_loss": float(t.spec.parameters.get("alpha", 1.0))}


def test_priority_orders_launches_across_phases():
    w = World(
        campaign(
            {
                "maxParallelTrials": 1,
                "phases": [
                    {"name": "low", "priority": 6, "sweep": {"seeds": {"count": 2}}},
                    {"name": "high", "priority": 8, "sweep": {"seeds": {"count": 2}}},
                ],
            }
        )
    )
    order = []
    p = w.step()
    for _ in range(20):
        order += [w.trials[n].spec.phase for n, _ in w.launched[len(order) :]]
        if p.status.state == CampaignState.SUCCEEDED:
            break
        for t in w.running():
            w.finish(t, *OK)
        p = w.step()
    assert order == ["high", "high", "low", "low"]


def test_dependency_failure_skips_dependents_with_reason():
    w = World(
        campaign(
            {
                "phases": [
                    {
                        "name": "a",
                        "sweep": {"seeds": {"count": 4}},
                        "failurePolicy": {"maxFailureRate": 0.25},
                    },
                    {"name": "b", "dependsOn": ["a"]},
                ]
            }
        )
    )
    p = w.run(lambda t: (TrialState.FAILED, {}) if t.spec.parameters["seed"] < 2 else OK)
    a, b = p.status.phases
    assert a.state == PhaseState.FAILED and a.reason == "FailureThresholdExceeded"
    assert "50.0%" in a.message and "25.0%" in a.message and "phase a" in a.message
    assert b.state == PhaseState.SKIPPED and b.reason == "DependencyFailed"
    assert p.status.state == CampaignState.FAILED and p.status.reason == "FailureThresholdExceeded"
    assert not any(t.spec.phase == "b" for t in w.trials.values())
    failed = {c.type: c for c in p.status.conditions}["Failed"]
    assert failed.status == "True" and "exceeds maxFailureRate" in failed.message


def test_skipped_trials_are_not_failures():
    w = World(
        campaign(
            {
                "phases": [
                    {
                        "name": "teacher",
                        "sweep": {
                            "matrix": {
                                "axes": {
                                    "symbol": [
                                        {"n": "A", "listed": "2020-01-01"},
                                        {"n": "L", "listed": "2022-05-17"},
                                    ],
                                    "window": ["2021-01-01", "2023-01-01"],
                                }
                            }
                        },
                        "skipWhen": [
                            {"expression": "params.window < params.symbol.listed", "reason": "BeforeListing"}
                        ],
                        "failurePolicy": {"maxFailureRate": 0.34},
                    }
                ]
            }
        )
    )
    fail_one = lambda t: (TrialState.FAILED, {}) if t.spec.parameters["symbol"]["n"] == "L" else OK  # noqa: E731
    p = w.run(fail_one)
    phase = p.status.phases[0]
    assert (phase.counts.total, phase.counts.skipped, phase.counts.failed, phase.counts.succeeded) == (
        4,
        1,
        1,
        2,
    )
    assert phase.failure_rate == pytest.approx(1 / 3)
    assert phase.state == PhaseState.SUCCEEDED
    skipped = [t for t in w.trials.values() if t.status.state == TrialState.SKIPPED]
    assert len(skipped) == 1 and skipped[0].status.reason == "BeforeListing"
    assert all((t.name, 1) not in w.launched for t in skipped)


def test_fail_fast_stops_running_and_cancels_pending():
    w = World(
        campaign(
            {
                "maxParallelTrials": 2,
                "phases": [
                    {"name": "a", "sweep": {"seeds": {"count": 10}}, "failurePolicy": {"maxFailureRate": 0.1}}
                ],
            }
        )
    )
    w.step()
    first, second = w.running()
    w.finish(first, TrialState.FAILED)
    w.finish(second, TrialState.FAILED)
    w.step()
    p = w.step()
    assert p.status.state == CampaignState.FAILED
    finishes = [a for pl in w.plans for a in pl.actions if isinstance(a, FinishTrial)]
    assert len(finishes) == 8 and all(f.reason == "Cancelled" and not f.stop_executor for f in finishes)
    assert len(w.launched) == 2  # both failures seen in one observation: no refill


def test_fail_fast_off_lets_the_phase_finish_then_applies_the_final_rule():
    w = World(
        campaign(
            {
                "phases": [
                    {
                        "name": "a",
                        "sweep": {"seeds": {"count": 6}},
                        "failurePolicy": {"maxFailureRate": 0.2, "failFast": False},
                    }
                ],
            }
        )
    )
    p = w.run(lambda t: (TrialState.FAILED, {}) if t.spec.parameters["seed"] < 2 else OK)
    assert p.status.phases[0].state == PhaseState.FAILED
    assert p.status.phases[0].counts.succeeded == 4  # everything ran


def test_retries_with_exponential_backoff_then_counted_once():
    w = World(
        campaign(
            {
                "phases": [
                    {
                        "name": "a",
                        "failurePolicy": {"retries": 2, "backoffSeconds": 10, "maxFailureRate": 1.0},
                    }
                ]
            }
        )
    )
    w.step()
    (t,) = w.running()
    for attempt, wait in ((1, 10), (2, 20)):
        w.finish(t, TrialState.FAILED)
        p = w.step()
        assert not any(isinstance(a, LaunchTrial) for a in p.actions)
        assert p.requeue_after == pytest.approx(wait)
        assert p.status.phases[0].counts.pending == 1 and p.status.phases[0].counts.failed == 0
        w.now += timedelta(seconds=wait)
        p = w.step()
        assert [a for a in p.actions if isinstance(a, LaunchTrial)] == [LaunchTrial(t.name, attempt + 1)]
    w.finish(t, TrialState.FAILED)
    p = w.step()
    assert p.status.phases[0].counts.failed == 1 and p.status.phases[0].state == PhaseState.SUCCEEDED


def test_deliberate_failures_are_not_retried():
    rule = {"metric": "loss", "comparison": "<", "threshold": 0, "action": "Fail", "reason": "Diverged"}
    w = World(
        campaign(
            {
                "template": {"task": "regression", "stopRules": [rule]},
                "phases": [{"name": "a", "failurePolicy": {"retries": 3, "maxFailureRate": 1.0}}],
            }
        )
    )
    w.step()
    (t,) = w.running()
    w.finish(t, TrialState.FAILED)
    t.status.reason = "Diverged"
    w.now += timedelta(hours=1)
    p = w.step()
    assert p.status.phases[0].counts.failed == 1 and not any(isinstance(a, LaunchTrial) for a in p.actions)


@pytest.mark.parametrize("reason", ["DataError", "InputMissing"])
def test_a_broken_data_file_or_a_missing_input_is_not_retried(reason):
    """The same file (or the same absent teacher) fails the same way again: no retry budget spent."""
    w = World(campaign({"phases": [{"name": "a", "failurePolicy": {"retries": 3, "maxFailureRate": 1.0}}]}))
    w.step()
    (t,) = w.running()
    w.finish(t, TrialState.FAILED)
    t.status.reason = reason
    w.now += timedelta(hours=1)
    p = w.step()
    assert p.status.phases[0].counts.failed == 1 and not any(isinstance(a, LaunchTrial) for a in p.actions)


def test_gate_failure_names_values_and_when_skips():
    w = World(
        campaign(
            {
                "phases": [
                    {
                        "name": "smoke",
                        "sweep": {"grid": {"alpha": [0.3, 0.2]}},
                        "gate": {
                            "expression": "phase.best.metrics.val_loss < 0.1",
                            "message": "smoke must beat 0.1",
                        },
                    },
                    {"name": "full", "dependsOn": ["smoke"]},
                ]
            }
        )
    )
    p = w.run(ok)
    smoke = p.status.phases[0]
    assert smoke.state == PhaseState.FAILED and smoke.reason == "GateNotMet"
    assert smoke.gate is not None and smoke.gate.passed is False
    assert smoke.gate.values["best"]["metrics"]["val_loss"] == pytest.approx(0.2)
    assert "smoke must beat 0.1" in smoke.message and "val_loss=0.2" in smoke.message

    w2 = World(
        campaign(
            {
                "phases": [
                    {"name": "smoke", "sweep": {"grid": {"alpha": [0.3, 0.2]}}},
                    {
                        "name": "full",
                        "dependsOn": ["smoke"],
                        "when": "phases.smoke.best.metrics.val_loss < 0.1",
                    },
                ]
            }
        )
    )
    p2 = w2.run(ok)
    assert [ph.state for ph in p2.status.phases] == [PhaseState.SUCCEEDED, PhaseState.SKIPPED]
    assert p2.status.phases[1].reason == "WhenNotMet" and p2.status.state == CampaignState.SUCCEEDED


def test_promotion_takes_the_best_parameters_without_the_seed():
    w = World(
        campaign(
            {
                "template": {"task": "cql", "hyperparameters": {"lr": 0.001, "seed": 1}},
                "phases": [
                    {"name": "explore", "sweep": {"grid": {"alpha": [0.3, 0.2, 0.25]}}},
                    {
                        "name": "ensemble",
                        "dependsOn": ["explore"],
                        "fromPhase": {"phase": "explore"},
                        "sweep": {"seeds": {"start": 42, "count": 3}},
                    },
                ],
            }
        )
    )
    p = w.run(ok)
    assert p.status.phases[1].promoted == {"lr": 0.001, "alpha": 0.2}
    ens = sorted(
        (t for t in w.trials.values() if t.spec.phase == "ensemble"), key=lambda t: t.spec.parameters["seed"]
    )
    assert [t.spec.parameters for t in ens] == [{"lr": 0.001, "seed": s, "alpha": 0.2} for s in (42, 43, 44)]


def test_stop_rules_backstop_for_running_trials():
    rule = {
        "metric": "variance_ratio",
        "comparison": "<",
        "threshold": 0.1,
        "afterEpoch": 2,
        "reason": "VarianceCollapse",
    }
    w = World(campaign({"template": {"task": "regression", "stopRules": [rule]}, "phases": [{"name": "a"}]}))
    w.step()
    (t,) = w.running()
    t.status.history = [MetricPoint(epoch=e, metrics={"variance_ratio": 0.01}) for e in (1, 2, 3)]
    p = w.step()
    (fin,) = [a for a in p.actions if isinstance(a, FinishTrial)]
    assert fin.state == TrialState.STOPPED and fin.reason == "VarianceCollapse" and fin.stop_executor
    assert p.status.phases[0].counts.stopped == 1


def test_suspend_pauses_launches_and_says_so():
    w = World(campaign({"suspend": True, "phases": [{"name": "a", "sweep": {"seeds": {"count": 3}}}]}))
    p = w.step()
    assert len(w.trials) == 3 and not w.launched
    assert p.status.state == CampaignState.SUSPENDED
    assert {c.type: c.status for c in p.status.conditions}["Suspended"] == "True"


def test_phase_and_campaign_parallelism():
    w = World(
        campaign(
            {
                "maxParallelTrials": 3,
                "phases": [
                    {"name": "a", "maxParallelTrials": 1, "sweep": {"seeds": {"count": 5}}},
                    {"name": "b", "sweep": {"seeds": {"count": 5}}},
                ],
            }
        )
    )
    w.step()
    assert len(w.running("a")) == 1 and len(w.running("b")) == 2


def test_invalid_spec_becomes_failed_condition_once():
    w = World(campaign({"phases": [{"name": "a", "gate": {"expression": "phase.best. >"}}]}))
    p = w.step()
    assert p.status.state == CampaignState.FAILED and p.status.reason == "InvalidSpec"
    assert "spec.phases[0].gate.expression" in p.status.message
    assert [type(a) for a in p.actions] == [EmitEvent] and not w.trials
    assert w.step().actions == ()


def test_trial_cap():
    w = World(
        campaign({"maxTrials": 10, "phases": [{"name": "a", "sweep": {"grid": {"x": list(range(11))}}}]})
    )
    p = w.step()
    assert (
        p.status.reason == "InvalidSpec" and "spec.maxTrials" in p.status.message and "11" in p.status.message
    )


def test_conditions_keep_transition_time_while_unchanged():
    w = World(campaign({"phases": [{"name": "a", "sweep": {"seeds": {"count": 2}}}]}))
    first = {c.type: c for c in w.step().status.conditions}
    w.now += timedelta(minutes=5)
    second = {c.type: c for c in w.step().status.conditions}
    assert second["Progressing"].last_transition_time == first["Progressing"].last_transition_time
    assert second["Progressing"].observed_generation == 1


def test_eta_from_observed_durations():
    w = World(campaign({"maxParallelTrials": 1, "phases": [{"name": "a", "sweep": {"seeds": {"count": 3}}}]}))
    w.step()
    (t,) = w.running()
    w.now += timedelta(seconds=100)
    w.finish(t, *OK)
    p = w.step()
    assert p.status.phases[0].estimated_completion_time == w.now + timedelta(seconds=200)


def test_events_on_transitions_only():
    w = World(campaign({"phases": [{"name": "a"}]}))
    w.run(lambda t: OK)
    reasons = [e.reason for e in w.events]
    assert reasons == ["TrialsCreated", "PhaseStarted", "PhaseSucceeded", "CampaignSucceeded"]


def test_creates_first_then_launches_in_one_plan():
    w = World(campaign({"phases": [{"name": "a", "sweep": {"seeds": {"count": 2}}}]}))
    p = w.step()
    kinds = [type(a).__name__ for a in p.actions if not isinstance(a, EmitEvent)]
    assert kinds == ["CreateTrial", "CreateTrial", "LaunchTrial", "LaunchTrial"]
    assert all(isinstance(a, CreateTrial | LaunchTrial | EmitEvent) for a in p.actions)


def test_phase_task_and_dataset_override_the_template():
    w = World(
        campaign(
            {
                "template": {
                    "task": "m.teacher:build",
                    "dataset": {"path": "s3://bkt/t.parquet", "target": "y"},
                },
                "phases": [
                    {"name": "teacher"},
                    {
                        "name": "student",
                        "dependsOn": ["teacher"],
                        "task": "m.student:build",
                        "dataset": {"synthetic": {"samples": 64}},
                    },
                ],
            }
        )
    )
    w.run(lambda t: OK)
    by_phase = {t.spec.phase: t.spec for t in w.trials.values()}
    assert (
        by_phase["teacher"].task == "m.teacher:build"
        and by_phase["teacher"].dataset.path == "s3://bkt/t.parquet"
    )
    assert (
        by_phase["student"].task == "m.student:build" and by_phase["student"].dataset.synthetic.samples == 64
    )


def test_slots_freed_by_this_plans_cancellations_are_used_now():
    """A fail-fast phase stops its running trial; the freed slot goes to another phase in the same
    plan, so re-planning at once launches nothing more (the plan is a fixed point)."""
    w = World(
        campaign(
            {
                "maxParallelTrials": 2,
                "phases": [
                    {"name": "a", "priority": 1, "sweep": {"seeds": {"count": 2}}},
                    {"name": "b", "sweep": {"seeds": {"count": 2}}},
                ],
            }
        )
    )
    w.step()
    first, _ = sorted(w.running("a"), key=lambda t: t.name)
    w.finish(first, TrialState.FAILED)
    p = w.step()
    assert [a.reason for a in p.actions if isinstance(a, FinishTrial)] == ["Cancelled"]
    assert len([a for a in p.actions if isinstance(a, LaunchTrial)]) == 2
    assert not any(isinstance(a, LaunchTrial) for a in w.step().actions)
