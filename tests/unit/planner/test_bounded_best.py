"""The campaign status's copy of a phase's best trial is bounded, gates still read every metric of
that trial, and MetricsUnavailable counts as the failure it is without a pointless retry."""

from datetime import timedelta

import pytest

from campaign_operator.api import PhaseState, TrialState
from campaign_operator.lifecycle import METRICS_UNAVAILABLE
from campaign_operator.lifecycle.bounds import BEST_METRICS_LIMIT
from campaign_operator.planner import LaunchTrial
from campaign_operator.planner.views import expression_metrics, phase_view

from .sim import World, campaign

pytestmark = pytest.mark.unit

USER_TASK = "tasks.mine:train"  # a user task: its metric names are the user's, not a built-in table's


def wide(t):
    """40 metrics besides the objective; zz_far sorts last, so only a gate naming it keeps it."""
    alpha = float(t.spec.parameters.get("alpha", 1.0))
    return TrialState.SUCCEEDED, {f"m{i:02d}": float(i) for i in range(40)} | {
        "val_loss": alpha,
        "zz_far": 2.0,
    }


def test_best_keeps_the_objective_and_what_gates_and_whens_name_within_its_bound():
    c = campaign(
        {
            "template": {"task": USER_TASK},
            "phases": [
                {
                    "name": "smoke",
                    "sweep": {"grid": {"alpha": [0.3, 0.2]}},
                    "gate": {
                        "expression": "phase.best.metrics.zz_far > 1.0 && phase.best.metrics.m39 > 38.0"
                    },
                },
                {"name": "full", "dependsOn": ["smoke"], "when": 'phases.smoke.best.metrics["m38"] > 1.0'},
            ],
        }
    )
    assert expression_metrics(c) == ("zz_far", "m39", "m38")
    p = World(c).run(wide)
    smoke = p.status.phases[0]
    assert smoke.state == PhaseState.SUCCEEDED and smoke.reason == "GatePassed"
    assert smoke.best is not None and smoke.best.value == pytest.approx(0.2)
    kept = smoke.best.metrics
    assert len(kept) == BEST_METRICS_LIMIT and {"val_loss", "zz_far", "m39", "m38"} <= set(kept)
    assert sorted(set(kept) - {"val_loss", "zz_far", "m39", "m38"}) == [f"m{i:02d}" for i in range(12)]
    assert smoke.gate is not None and smoke.gate.values["best"]["metrics"] == kept  # what status holds
    assert p.status.phases[1].state == PhaseState.SUCCEEDED  # the when read m38 as well
    size = len(p.status.model_dump_json(by_alias=True))
    assert size < 4000, size


def test_a_gate_reads_every_metric_of_the_best_trial_not_only_the_bounded_copy():
    c = campaign(
        {"template": {"task": USER_TASK}, "phases": [{"name": "p", "sweep": {"grid": {"alpha": [0.5]}}}]}
    )
    w = World(c)
    p = w.run(wide)
    status = p.status.phases[0]
    assert status.best is not None and "m39" not in status.best.metrics
    view = phase_view(status, list(w.trials.values()))
    assert view["best"]["metrics"]["m39"] == 39.0 and len(view["best"]["metrics"]) == 42


def test_metrics_unavailable_is_a_failure_in_the_rate_and_is_not_retried():
    w = World(
        campaign(
            {
                "phases": [
                    {
                        "name": "a",
                        "sweep": {"seeds": {"count": 2}},
                        "failurePolicy": {"retries": 3, "maxFailureRate": 0.5, "backoffSeconds": 1},
                    }
                ]
            }
        )
    )
    w.step()
    silent, fine = w.running()
    w.finish(silent, TrialState.FAILED)
    silent.status.reason = METRICS_UNAVAILABLE
    silent.status.attempt = 1
    w.finish(fine, TrialState.SUCCEEDED, {"val_loss": 0.4})
    w.now += timedelta(hours=1)
    p = w.step()
    (phase,) = p.status.phases
    assert not any(isinstance(a, LaunchTrial) for a in p.actions)
    assert (phase.counts.failed, phase.counts.succeeded, float(phase.failure_rate)) == (1, 1, 0.5)
    assert phase.state == PhaseState.SUCCEEDED  # 1 of 2 failed is within 50%


def test_trials_keep_what_the_campaign_reads_however_many_metrics_a_task_reports():
    from campaign_operator.lifecycle import epoch_reported
    from campaign_operator.lifecycle.bounds import METRICS_LIMIT, watched_metrics

    c = campaign(
        {
            "template": {"task": USER_TASK},
            "phases": [
                {"name": "a", "gate": {"expression": 'phase.best.metrics["zz/far"] > 1.0'}},
                {"name": "b", "dependsOn": ["a"], "fromPhase": {"phase": "a", "metric": "zz_rank"}},
            ],
        }
    )
    w = World(c)
    w.step()
    (t,) = w.trials.values()
    assert t.spec.keep_metrics == ["zz/far", "zz_rank"]
    spec = t.spec
    reported = {f"m{i:04d}": 1.0 for i in range(3000)} | {"zz/far": 2.0, "zz_rank": 3.0, "val_loss": 0.5}
    s = epoch_reported(
        t.status,
        1,
        reported,
        spec.objective,
        watched_metrics(spec.stop_rules, spec.early_stopping, spec.keep_metrics),
    )
    assert len(s.metrics) == METRICS_LIMIT and {"val_loss", "zz/far", "zz_rank"} <= set(s.metrics)
