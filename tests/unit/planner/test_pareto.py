"""Multi-objective phases (Phase.objectives): the Pareto front against a brute-force reference written
here from the definition, its bounded status, promotion by an objective or by weights, gates over
`phase.front`, and the validation of every misuse (each message naming its field)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_operator.api import TrialState
from campaign_operator.api.common import Mode, Objective
from campaign_operator.api.trial import Trial
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.pareto import (
    best_by_objective,
    best_by_weights,
    bounded_front,
    pareto_front,
)
from campaign_operator.planner.semantics import semantic_problems

from .sim import World, campaign

pytestmark = pytest.mark.unit

MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATES = [TrialState.SUCCEEDED] * 4 + [TrialState.FAILED, TrialState.STOPPED, TrialState.RUNNING]
SHARPE_DRAWDOWN = [{"metric": "sharpe", "mode": "max"}, {"metric": "rmse", "mode": "min"}]


def make_trial(name: str, state: TrialState, metrics: dict[str, float]) -> Trial:
    return Trial.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "campaign": "c",
                "phase": "p",
                "task": "regression",
                "epochs": 1,
                "parameters": {"i": name},
            },
            "status": {"state": state.value, "metrics": metrics},
        }
    )


# -- the reference: the definition, with no sorting trick ------------------------------------------
def ref_front(trials: list[Trial], objectives: list[Objective]) -> set[str]:
    def costs(t: Trial) -> tuple[float, ...] | None:
        if t.status.state != TrialState.SUCCEEDED:
            return None
        vs = [t.status.metrics.get(o.metric) for o in objectives]
        if any(v is None or not math.isfinite(v) for v in vs):
            return None
        return tuple(v if o.mode == Mode.MIN else -v for v, o in zip(vs, objectives, strict=True))  # type: ignore[operator]

    comparable = {t.name: c for t in trials if (c := costs(t)) is not None}
    return {
        a
        for a, ca in comparable.items()
        if not any(
            all(x <= y for x, y in zip(cb, ca, strict=True)) and cb != ca
            for b, cb in comparable.items()
            if b != a
        )
    }


value = st.one_of(
    st.integers(-3, 3).map(float),  # few values: ties and duplicates are common
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
objectives_st = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=2, max_size=4, unique=True).flatmap(
    lambda ms: st.tuples(*(st.sampled_from([Mode.MIN, Mode.MAX]) for _ in ms)).map(
        lambda modes: [Objective(metric=m, mode=mode) for m, mode in zip(ms, modes, strict=True)]
    )
)


@st.composite
def populations(draw: Any) -> tuple[list[Trial], list[Objective]]:
    objectives = draw(objectives_st)
    n = draw(st.integers(0, 24))
    trials = []
    for i in range(n):
        metrics = {
            o.metric: draw(value) for o in objectives if draw(st.integers(0, 9)) > 0
        }  # sometimes a metric is missing
        trials.append(
            make_trial(f"t{draw(st.integers(0, 99)):02d}-{i}", draw(st.sampled_from(STATES)), metrics)
        )
    return trials, objectives


@MANY
@given(populations())
def test_front_is_the_non_dominated_set_in_a_total_order(pop: tuple[list[Trial], list[Objective]]) -> None:
    trials, objectives = pop
    front = pareto_front(trials, objectives)
    names = [p.name for p in front]
    assert set(names) == ref_front(trials, objectives)
    assert len(names) == len(set(names))
    signs = [1 if o.mode == Mode.MIN else -1 for o in objectives]
    keys = [(tuple(s * v for s, v in zip(signs, p.values, strict=True)), p.name) for p in front]
    assert keys == sorted(keys)  # best first by the first objective, then the next ones, then name
    assert pareto_front(list(reversed(trials)), objectives) == front  # observation order does not matter


@MANY
@given(
    populations(),
    st.lists(st.floats(0, 5), min_size=4, max_size=4),
    st.sampled_from([2.0**k for k in range(-10, 11)]),
)
def test_weighted_pick_is_on_the_front_and_ignores_units(
    pop: tuple[list[Trial], list[Objective]], raw: list[float], scale: float
) -> None:
    trials, objectives = pop
    front = pareto_front(trials, objectives)
    if not front:
        return
    weights = {o.metric: w for o, w in zip(objectives, raw, strict=False)}
    pick = best_by_weights(front, objectives, weights)
    assert pick in front
    # Rescaling an objective's units changes no weighted pick (each objective is rescaled over the front);
    # by powers of two, so the rescaled scores are exactly equal and ties break the same way.
    first = objectives[0].metric
    rescaled = [
        make_trial(
            t.name, t.status.state, {k: (v * scale if k == first else v) for k, v in t.status.metrics.items()}
        )
        for t in trials
    ]
    assert best_by_weights(pareto_front(rescaled, objectives), objectives, weights).name == pick.name


@MANY
@given(populations())
def test_weight_on_one_objective_picks_the_fronts_best_by_it(
    pop: tuple[list[Trial], list[Objective]],
) -> None:
    trials, objectives = pop
    front = pareto_front(trials, objectives)
    if not front:
        return
    for o in objectives:
        by_weight = best_by_weights(front, objectives, {o.metric: 1.0})
        assert by_weight.name == best_by_objective(front, objectives, o.metric).name


def test_weights_trade_objectives_after_rescaling_over_the_front() -> None:
    objectives = [Objective(metric="sharpe", mode=Mode.MAX), Objective(metric="rmse", mode=Mode.MIN)]
    trials = [
        make_trial("high-risk", TrialState.SUCCEEDED, {"sharpe": 2.0, "rmse": 0.9}),
        make_trial("middle", TrialState.SUCCEEDED, {"sharpe": 1.6, "rmse": 0.3}),
        make_trial("safe", TrialState.SUCCEEDED, {"sharpe": 0.1, "rmse": 0.1}),
        make_trial("dominated", TrialState.SUCCEEDED, {"sharpe": 0.05, "rmse": 0.5}),
    ]
    front = pareto_front(trials, objectives)
    assert [p.name for p in front] == ["high-risk", "middle", "safe"]
    # middle: sharpe (1.6-0.1)/1.9 = 0.79, rmse (0.9-0.3)/0.8 = 0.75; both ends score 1.0 on one only
    assert best_by_weights(front, objectives, {"sharpe": 1, "rmse": 1}).name == "middle"
    assert best_by_weights(front, objectives, {"sharpe": 10, "rmse": 1}).name == "high-risk"
    assert best_by_weights(front, objectives, {"rmse": 1}).name == "safe"


def test_bounded_front_keeps_both_ends_and_spreads_evenly() -> None:
    objectives = [Objective(metric="a", mode=Mode.MIN), Objective(metric="b", mode=Mode.MIN)]
    trials = [
        make_trial(f"t{i:03d}", TrialState.SUCCEEDED, {"a": float(i), "b": float(-i)}) for i in range(100)
    ]
    front = pareto_front(trials, objectives)
    assert len(front) == 100
    shown = bounded_front(front, objectives)
    assert len(shown) == 16
    assert shown[0].trial == "t000" and shown[-1].trial == "t099"
    indices = [int(t.trial[1:]) for t in shown]
    assert indices == sorted(set(indices))
    assert (
        max(b - a for a, b in itertools.pairwise(indices))
        - min(b - a for a, b in itertools.pairwise(indices))
        <= 1
    )
    assert shown[3].values == {"a": float(indices[3]), "b": float(-indices[3])}
    assert [t.trial for t in bounded_front(front[:16], objectives)] == [p.name for p in front[:16]]


# -- through plan() ----------------------------------------------------------------------------------
def by_params(t: Trial) -> tuple[TrialState, dict[str, float]]:
    """sharpe/rmse from the trial's `risk` parameter: more risk, more sharpe and more rmse, except risk 3."""
    risk = t.spec.parameters["risk"]
    return TrialState.SUCCEEDED, {
        "sharpe": {0: 0.1, 1: 0.8, 2: 1.5, 3: 0.2}[risk],
        "rmse": {0: 0.1, 1: 0.3, 2: 0.8, 3: 0.9}[risk],
        "val_loss": 1.0,
    }


def two_phases(**promotion: Any) -> dict[str, Any]:
    return {
        "phases": [
            {
                "name": "explore",
                "objectives": SHARPE_DRAWDOWN,
                "sweep": {"grid": {"risk": [0, 1, 2, 3]}},
                "gate": {"expression": "phase.front.exists(t, t.sharpe > 1.0 && t.rmse < 0.85)"},
            },
            {"name": "final", "dependsOn": ["explore"], "fromPhase": {"phase": "explore", **promotion}},
        ]
    }


def risk_of(w: World, trial: str) -> int:
    return int(w.trials[trial].spec.parameters["risk"])


def test_a_multi_objective_phase_reports_its_front_and_gates_over_it() -> None:
    w = World(campaign(two_phases()))
    p = w.run(by_params)
    explore = p.status.phases[0]
    assert [risk_of(w, t.trial) for t in explore.front or []] == [2, 1, 0]  # risk 3 is dominated
    assert explore.front_size == 3
    assert explore.front and explore.front[0].values == {"sharpe": 1.5, "rmse": 0.8}
    assert explore.best is not None and risk_of(w, explore.best.trial) == 2  # the front's best sharpe
    assert explore.best.metrics["rmse"] == 0.8  # the objectives are kept with the best trial
    assert explore.gate is not None and explore.gate.passed is True
    assert explore.gate.values["front"][0] == {"trial": explore.front[0].trial, "sharpe": 1.5, "rmse": 0.8}
    # every trial of a multi-objective phase picks its best epoch by the first objective
    assert {t.spec.objective.metric for t in w.trials.values() if t.spec.phase == "explore"} == {"sharpe"}


def test_a_gate_no_front_trial_meets_fails_the_phase() -> None:
    spec = two_phases()
    spec["phases"][0]["gate"] = {"expression": "phase.front.exists(t, t.sharpe > 1.0 && t.rmse < 0.5)"}
    p = World(campaign(spec)).run(by_params)
    assert p.status.phases[0].reason == "GateNotMet"


@pytest.mark.parametrize(
    ("promotion", "risk"),
    [
        ({}, 2),  # default: the front's best by the first objective
        ({"metric": "rmse"}, 0),
        ({"metric": "sharpe", "mode": "max"}, 2),
        ({"weights": {"sharpe": 1, "rmse": 1}}, 1),  # the knee: 0.5 + 0.71 against 1.0 at either end
        ({"weights": {"rmse": 1}}, 0),
    ],
)
def test_promotion_from_a_multi_objective_phase_follows_its_rule(
    promotion: dict[str, Any], risk: int
) -> None:
    p = World(campaign(two_phases(**promotion))).run(by_params)
    assert p.status.phases[1].promoted == {"risk": risk}


def test_a_front_with_no_comparable_trial_has_nothing_to_promote() -> None:
    spec = two_phases()
    del spec["phases"][0]["gate"]
    p = World(campaign(spec)).run(lambda t: (TrialState.SUCCEEDED, {"sharpe": 1.0, "val_loss": 1.0}))
    explore, final = p.status.phases
    assert explore.front == [] and explore.front_size == 0 and explore.best is None
    assert final.reason == "NoTrialToPromote"
    assert "no Succeeded trial with finite sharpe, rmse" in (final.message or "")


# -- validation -------------------------------------------------------------------------------------
def problems_of(spec: dict[str, Any]) -> list[str]:
    return semantic_problems(campaign(spec))


def with_phase0(**changes: Any) -> dict[str, Any]:
    spec = two_phases()
    spec["phases"][0].update(changes)
    return spec


def with_promotion(**promotion: Any) -> dict[str, Any]:
    return two_phases(**promotion)


def test_the_two_phase_campaign_is_valid() -> None:
    assert problems_of(two_phases()) == []


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            with_phase0(
                objectives=[{"metric": "sharpe", "mode": "max"}, {"metric": "drawdown", "mode": "min"}]
            ),
            "spec.phases[0].objectives[1].metric",
            "task regression never reports 'drawdown'",
        ),
        (
            with_promotion(metric="r2"),
            "spec.phases[1].fromPhase.metric",
            "'r2' is not an objective of phase explore",
        ),
        (with_promotion(metric="sharp"), "spec.phases[1].fromPhase.metric", "did you mean sharpe?"),
        (
            with_promotion(weights={"sharpe": 1, "r2": 1}),
            "spec.phases[1].fromPhase.weights.r2",
            "not an objective",
        ),
        (with_promotion(weights={"sharpe": 0}), "spec.phases[1].fromPhase.weights", "at least one weight"),
        (
            with_promotion(metric="sharpe", weights={"sharpe": 1}),
            "spec.phases[1].fromPhase.weights",
            "either metric",
        ),
        (with_promotion(metric="rmse", mode="max"), "spec.phases[1].fromPhase.mode", "own mode"),
        (
            with_phase0(gate={"expression": "phase.front.exists(t, t.sharp > 1.0)"}),
            "spec.phases[0].gate.expression",
            "phase.front[] has no field 'sharp'",
        ),
        (
            with_phase0(gate={"expression": "phase.front.exists(t, t.metrics.sharp > 1.0)"}),
            "spec.phases[0].gate.expression",
            "'sharp'",
        ),
        (
            with_phase0(gate={"expression": "phase.front.exists(t, t.sharpe > 'x')"}),
            "spec.phases[0].gate.expression",
            "string",
        ),
    ],
)
def test_misuse_is_named_by_its_field(spec: dict[str, Any], field: str, words: str) -> None:
    found = problems_of(spec)
    assert any(p.startswith(f"{field}: ") and words in p for p in found), found


def test_weights_on_a_single_objective_phase_are_refused() -> None:
    spec = two_phases(weights={"val_loss": 1})
    del spec["phases"][0]["objectives"], spec["phases"][0]["gate"]
    [problem] = problems_of(spec)
    assert problem.startswith("spec.phases[1].fromPhase.weights: phase explore has a single objective")


def test_a_single_objective_phase_has_no_front() -> None:
    spec = two_phases()
    del spec["phases"][0]["objectives"]
    [problem] = problems_of(spec)
    assert problem.startswith("spec.phases[0].gate.expression: phase has no field 'front'")


def test_when_reads_an_earlier_phases_front() -> None:
    spec = two_phases()
    spec["phases"][1]["when"] = "phases.explore.front.exists(t, t.rmse < 0.2)"
    assert problems_of(spec) == []
    p = World(campaign(spec)).run(by_params)
    assert p.status.phases[1].state.value == "Succeeded"
    spec["phases"][1]["when"] = "size(phases.explore.front) > 3"
    assert World(campaign(spec)).run(by_params).status.phases[1].reason == "WhenNotMet"


@pytest.mark.parametrize(
    ("objectives", "words"),
    [
        (
            [{"metric": "sharpe", "mode": "max"}, {"metric": "sharpe", "mode": "min"}],
            "each metric may appear only once",
        ),
        ([{"metric": "sharpe", "mode": "max"}], "at least 2"),
        ([{"metric": m} for m in ("rmse", "r2", "ic", "rank_ic", "sharpe")], "at most 4"),
    ],
)
def test_objectives_shape_is_checked_on_parse(objectives: list[dict[str, str]], words: str) -> None:
    with pytest.raises(SpecError) as e:
        campaign(with_phase0(objectives=objectives))
    assert any("objectives" in p and words in p for p in e.value.problems), e.value.problems


def test_objective_and_objectives_are_exclusive() -> None:
    with pytest.raises(SpecError) as e:
        campaign(with_phase0(objective={"metric": "sharpe", "mode": "max"}))
    assert any("spec.phases[0].objectives" in p and "not both" in p for p in e.value.problems), (
        e.value.problems
    )
