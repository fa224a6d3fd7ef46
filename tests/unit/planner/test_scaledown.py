"""spec.scaleDown: the per-phase sample, the epochs arithmetic, gates in a smoke run, the run's mark."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_operator.api import PhaseState, TrialState
from campaign_operator.api.campaign import RunKind, ScaleDown
from campaign_operator.planner import CreateTrial, phase_trials
from campaign_operator.planner.scaledown import run_label, sample, scaled_epochs

from .sim import World, campaign

pytestmark = pytest.mark.unit

FAST = settings(max_examples=60, deadline=None)


def ok(t):
    return TrialState.SUCCEEDED, {"val_loss": float(t.spec.parameters.get("alpha", 1.0))}


def _keys(trials: list[Any]) -> list[str]:
    return [t.point.key for t in trials]


@st.composite
def grid_phases(draw):
    """Two phases over the same grid (a teacher and its students), each with the same skip rule."""
    alphas = draw(st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True))
    windows = draw(st.lists(st.integers(2000, 2010), min_size=1, max_size=3, unique=True))
    skip = {"expression": f"params.alpha < {draw(st.integers(0, 50))}", "reason": "TooSmall"}
    sweep = {"grid": {"alpha": alphas, "window": windows}}
    phases = [
        {"name": "teacher", "sweep": sweep, "skipWhen": [skip]},
        {"name": "student", "dependsOn": ["teacher"], "sweep": sweep, "skipWhen": [skip], "epochs": 9},
    ]
    return phases, draw(st.integers(1, 8))


@FAST
@given(grid_phases())
def test_the_sample_is_bounded_deterministic_and_the_same_in_phases_with_the_same_points(drawn):
    phases, limit = drawn
    c = campaign({"phases": phases, "scaleDown": {"maxTrialsPerPhase": limit}})
    full = campaign({"phases": phases})
    teacher, student = phase_trials(c, 0), phase_trials(c, 1)
    everything = phase_trials(full, 0)
    assert 1 <= len(teacher) <= limit
    assert _keys(teacher) == _keys(student) == _keys(phase_trials(c, 0))
    # A subset of the full plan, in its order, with the full plan's names.
    assert [t.name for t in teacher] == [t.name for t in everything if t.point.key in set(_keys(teacher))]
    runnable = [t for t in everything if t.skip is None]
    skipped = [t for t in teacher if t.skip is not None]
    # Trials that run come first; one skipped trial when there is room beside one that runs.
    assert len(skipped) <= 1
    assert len(teacher) - len(skipped) == min(len(runnable), limit - len(skipped))
    if runnable and len(runnable) < len(everything) and limit >= 2:
        assert len(skipped) == 1
    if not runnable:
        assert len(teacher) == 1 and len(skipped) == 1


def test_the_sample_does_not_depend_on_the_order_of_the_points() -> None:
    items = [f"p{i}" for i in range(20)]
    chosen = sample(items, str, lambda _: False, 5)
    assert sorted(sample(list(reversed(items)), str, lambda _: False, 5)) == sorted(chosen)
    assert chosen == [i for i in items if i in chosen] and len(chosen) == 5


@FAST
@given(
    st.integers(1, 100_000),
    st.one_of(st.none(), st.floats(0.001, 1.0)),
    st.one_of(st.none(), st.integers(1, 50)),
    st.booleans(),
)
def test_epochs_are_scaled_up_to_at_least_one_and_capped(epochs, scale, cap, smoke):
    sd = ScaleDown(smoke=smoke, epochs_scale=scale, max_epochs=cap)
    got = scaled_epochs(epochs, sd)
    assert 1 <= got <= epochs
    scaled = epochs if scale is None else max(1, math.ceil(epochs * scale - 1e-9))
    limit = cap if cap is not None else (2 if smoke else None)
    assert got == (scaled if limit is None else min(scaled, limit))
    assert scaled_epochs(epochs, None) == epochs


def test_exact_products_are_not_rounded_up_by_float_error() -> None:
    assert scaled_epochs(10, ScaleDown(epochs_scale=0.3)) == 3
    assert scaled_epochs(10, ScaleDown(epochs_scale=0.31)) == 4
    assert scaled_epochs(3, ScaleDown(epochs_scale=0.01)) == 1


def test_state_dir_labels_tell_every_scale_apart() -> None:
    assert run_label(None) is None
    assert run_label(ScaleDown(smoke=True)) == "smoke"
    assert run_label(ScaleDown(smoke=True, max_trials_per_phase=4)) == "smoke-t4"
    assert run_label(ScaleDown(epochs_scale=0.1, max_trials_per_phase=3)) == "partial-t3-x0.1"


SMOKE_GATE = {
    "phases": [
        {
            "name": "search",
            "sweep": {"grid": {"alpha": [0.3, 0.2, 0.5, 0.9, 0.7]}},
            "epochs": 40,
            "gate": {"expression": "phase.best.metrics.val_loss < 0.1", "message": "must beat 0.1"},
        },
        {"name": "final", "dependsOn": ["search"], "fromPhase": {"phase": "search"}},
    ]
}


def test_a_smoke_run_reports_its_gate_without_enforcing_it() -> None:
    w = World(campaign({**SMOKE_GATE, "scaleDown": {"smoke": True}}))
    p = w.run(ok)
    search, final = p.status.phases
    assert search.state == PhaseState.SUCCEEDED and search.reason == "GateNotEnforced"
    assert search.gate is not None and search.gate.passed is False
    assert search.gate.values["best"]["metrics"]["val_loss"] == search.best.value
    assert search.message.startswith("smoke run: the gate did not hold and was not enforced")
    assert "must beat 0.1" in search.message
    # The DAG and promotion stay: the final phase ran the sampled search's best configuration.
    assert final.state == PhaseState.SUCCEEDED and final.promoted == search.best.parameters
    assert p.status.run == RunKind.SMOKE
    assert p.status.message.startswith("smoke run: 2 phase(s) succeeded")
    assert "gates not enforced (smoke run): search" in p.status.message
    created = [t for t in w.trials.values() if t.spec.phase == "search"]
    assert len(created) == 2 and {t.spec.epochs for t in created} == {2}
    assert search.counts.total == 2


def test_a_partial_run_enforces_its_gate() -> None:
    w = World(campaign({**SMOKE_GATE, "scaleDown": {"maxTrialsPerPhase": 3, "epochsScale": 0.25}}))
    p = w.run(ok)
    search = p.status.phases[0]
    assert search.state == PhaseState.FAILED and search.reason == "GateNotMet"
    assert search.message.startswith("partial run: must beat 0.1")
    assert p.status.run == RunKind.PARTIAL and p.status.message.startswith("partial run: ")
    assert {t.spec.epochs for t in w.trials.values()} == {10}


def test_a_smoke_run_keeps_the_failure_threshold() -> None:
    spec = {
        "phases": [
            {
                "name": "search",
                "sweep": {"seeds": {"count": 6}},
                "failurePolicy": {"maxFailureRate": 0.0},
            }
        ],
        "scaleDown": {"smoke": True},
    }
    w = World(campaign(spec))
    p = w.run(lambda t: (TrialState.FAILED, {}))
    assert p.status.phases[0].reason == "FailureThresholdExceeded"
    assert p.status.phases[0].counts.total == 2


def test_a_full_run_is_marked_full_and_its_messages_are_unchanged() -> None:
    w = World(campaign({"phases": [{"name": "a", "sweep": {"seeds": {"count": 3}}}]}))
    first = w.step()
    assert sum(isinstance(a, CreateTrial) for a in first.actions) == 3
    assert first.status.run == RunKind.FULL
    assert first.status.phases[0].message == "0/3 trials finished"
    p = w.run(ok)
    assert p.status.message == "1 phase(s) succeeded, 0 skipped"


def test_a_running_scaled_down_phase_says_what_it_samples() -> None:
    w = World(campaign({**SMOKE_GATE, "scaleDown": {"smoke": True}}))
    p = w.step()
    assert p.status.phases[0].message == "smoke run: 0/2 trials finished (a sample of the plan's 5)"
    assert p.status.message == "smoke run: search: 0/2 trials finished (a sample of the plan's 5)"
