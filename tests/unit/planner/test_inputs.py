"""Phase inputs: each student consumes the outputs of the teacher with its (symbol, window); a teacher
that was skipped, failed or left nothing skips its student, outside the failure rate. Decided by
plan() alone, the same way on every re-plan, and checked before anything runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_operator.api import TrialState
from campaign_operator.api.campaign import PhaseState
from campaign_operator.api.trial import Trial
from campaign_operator.planner import CreateTrial, FinishTrial, LaunchTrial, plan
from campaign_operator.planner.inputs import INPUT_SKIPPED, INPUT_UNAVAILABLE, InputError, InputMatcher
from campaign_operator.planner.semantics import check_campaign
from campaign_operator.planner.sweeps import expand
from campaign_operator.planner.trials import build_trial

from .sim import World, campaign

pytestmark = pytest.mark.unit

SYMBOLS = [{"name": "TCS"}, {"name": "INFY"}, {"name": "LICI", "listed": "2022-05-17"}]
WINDOWS = [{"start": "2022-01-01"}, {"start": "2023-01-01"}]
AXES = {"symbol": SYMBOLS, "window": WINDOWS}
BEFORE_LISTING = {
    "expression": "has(params.symbol.listed) && params.window.start < params.symbol.listed",
    "reason": "BeforeListing",
}
STUDENT_INPUT = {"name": "teacher", "fromPhase": "teacher", "match": ["symbol", "window"]}


def spec(student: dict[str, Any] | None = None, teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "phases": [
            {
                "name": "teacher",
                "hyperparameters": {"role": "teacher"},
                "sweep": {"matrix": {"axes": AXES}},
                "skipWhen": [BEFORE_LISTING],
                "failurePolicy": {"maxFailureRate": 0.5},
                **(teacher or {}),
            },
            {
                "name": "student",
                "dependsOn": ["teacher"],
                "hyperparameters": {"role": "student"},
                "sweep": {"matrix": {"axes": AXES}},
                "inputs": [STUDENT_INPUT],
                "failurePolicy": {"maxFailureRate": 0.0},
                **(student or {}),
            },
        ]
    }


def key(trial: Trial) -> tuple[str, str]:
    return trial.spec.parameters["symbol"]["name"], trial.spec.parameters["window"]["start"]


OUTCOMES = {
    # (symbol, window start) of the teacher -> how it ended
    ("INFY", "2022-01-01"): (TrialState.FAILED, None),
    ("INFY", "2023-01-01"): (TrialState.SUCCEEDED, None),  # finished, wrote nothing
    ("TCS", "2023-01-01"): (TrialState.STOPPED, "file:///out/tcs-2023"),  # stopped early, kept its model
}


def end_teachers(world: World, outcomes: dict[tuple[str, str], tuple[TrialState, str | None]]) -> None:
    """Run every teacher to its end (the phase's own rate keeps it within 50%)."""
    for _ in range(20):
        world.step()
        running = world.running("teacher")
        if not running:
            return
        for t in running:
            state, outputs = outcomes.get(
                key(t), (TrialState.SUCCEEDED, f"file:///out/{key(t)[0]}-{key(t)[1]}")
            )
            world.finish(t, state, {"val_loss": 0.5})
            t.status.outputs = outputs
    raise AssertionError("teachers did not end")


def students(world: World) -> dict[tuple[str, str], Trial]:
    return {key(t): t for t in world.trials.values() if t.spec.phase == "student"}


def test_each_student_gets_its_teachers_outputs_or_is_skipped_with_the_reason() -> None:
    world = World(campaign(spec()))
    end_teachers(world, OUTCOMES)
    world.step()
    got = students(world)
    assert len(got) == 6
    assert got[("TCS", "2022-01-01")].spec.inputs == {"teacher": "file:///out/TCS-2022-01-01"}
    assert got[("TCS", "2023-01-01")].spec.inputs == {"teacher": "file:///out/tcs-2023"}
    skipped = {k: (t.status.reason, t.status.message) for k, t in got.items() if t.status.state == "Skipped"}
    teacher = {key(t): t.name for t in world.trials.values() if t.spec.phase == "teacher"}
    assert skipped == {
        ("LICI", "2022-01-01"): (
            INPUT_SKIPPED,
            f"input teacher: trial {teacher['LICI', '2022-01-01']} of phase teacher was skipped"
            " (BeforeListing: skipWhen matched: has(params.symbol.listed) &&"
            " params.window.start < params.symbol.listed)",
        ),
        ("INFY", "2022-01-01"): (
            INPUT_UNAVAILABLE,
            f"input teacher: trial {teacher['INFY', '2022-01-01']} of phase teacher failed (TaskError)",
        ),
        ("INFY", "2023-01-01"): (
            INPUT_UNAVAILABLE,
            f"input teacher: trial {teacher['INFY', '2023-01-01']} of phase teacher succeeded (Completed)"
            " without outputs",
        ),
    }
    assert all(not t.spec.inputs for k, t in got.items() if k in skipped)
    # The teacher's failure counted once, in its own phase: the student phase (maxFailureRate 0)
    # runs its three students and succeeds.
    launched = {name for name, _ in world.launched}
    assert {t.name for k, t in got.items() if k not in skipped} <= launched
    assert not {t.name for k, t in got.items() if k in skipped} & launched
    for t in world.running("student"):
        world.finish(t, TrialState.SUCCEEDED, {"val_loss": 0.1})
    final = world.step()
    student = final.status.phases[1]
    assert (student.state, student.counts.skipped, student.counts.failed, student.failure_rate) == (
        PhaseState.SUCCEEDED,
        3,
        0,
        0.0,
    )


def test_a_skipped_students_lost_status_is_decided_again_and_it_never_launches() -> None:
    world = World(campaign(spec()))
    end_teachers(world, OUTCOMES)  # its last plan created the students
    created = [a.trial for a in world.plans[-1].actions if isinstance(a, CreateTrial)]
    assert len(created) == 6
    # The shell died after creating the students, before their Skipped status landed.
    teachers = [t for t in world.trials.values() if t.spec.phase == "teacher"]
    lost = [t.model_copy(update={"status": type(t.status)()}) for t in created]
    again = plan(world.campaign, [*teachers, *lost], world.now)
    assert not [a for a in again.actions if isinstance(a, CreateTrial)]
    finishes = {(a.name, a.reason) for a in again.actions if isinstance(a, FinishTrial)}
    assert finishes == {(t.name, t.status.reason) for t in created if t.status.state == TrialState.SKIPPED}
    assert len(finishes) == 3
    launches = {a.name for a in again.actions if isinstance(a, LaunchTrial)}
    assert launches == {t.name for t in created if t.status.state == TrialState.PENDING}


teacher_outcomes = st.dictionaries(
    st.sampled_from([(s["name"], w["start"]) for s in SYMBOLS for w in WINDOWS]),
    st.sampled_from(
        [
            (TrialState.SUCCEEDED, None),
            (TrialState.FAILED, None),
            (TrialState.STOPPED, "file:///o/stopped"),
            (TrialState.STOPPED, None),
            (TrialState.SUCCEEDED, "file:///o/other"),
        ]
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(teacher_outcomes)
def test_decisions_follow_the_teacher_and_are_the_same_on_every_replan(
    outcomes: dict[tuple[str, str], tuple[TrialState, str | None]],
) -> None:
    world = World(campaign(spec(teacher={"failurePolicy": {"maxFailureRate": 1.0}})))
    end_teachers(world, outcomes)
    observed = [t.model_copy(deep=True) for t in world.trials.values()]
    first, second = plan(world.campaign, observed, world.now), plan(world.campaign, observed, world.now)
    assert first.actions == second.actions  # pure: the same observed trials, the same decisions
    world.step()
    assert not [a for a in world.step().actions if isinstance(a, CreateTrial)]  # nothing twice
    teachers = {key(t): t for t in world.trials.values() if t.spec.phase == "teacher"}
    for k, student in students(world).items():
        teacher = teachers[k].status
        consumable = teacher.state in (TrialState.SUCCEEDED, TrialState.STOPPED) and teacher.outputs
        if consumable:
            assert student.spec.inputs == {"teacher": teacher.outputs}
            assert student.status.state != TrialState.SKIPPED
        else:
            assert student.status.state == TrialState.SKIPPED and not student.spec.inputs
            reason = INPUT_SKIPPED if teacher.state == TrialState.SKIPPED else INPUT_UNAVAILABLE
            assert student.status.reason == reason


def test_a_students_own_skip_rule_comes_first() -> None:
    world = World(campaign(spec(student={"skipWhen": [BEFORE_LISTING]})))
    end_teachers(world, {})
    world.step()
    lici = students(world)[("LICI", "2022-01-01")]
    assert (lici.status.state, lici.status.reason) == (TrialState.SKIPPED, "BeforeListing")


def test_matching_ignores_how_a_number_was_written() -> None:
    """100.0 in one phase and 100 in the other are the same value (as trial names and the apiserver
    have them)."""
    doc = spec(
        teacher={"sweep": {"grid": {"n": [100.0, 200.0]}}, "skipWhen": []},
        student={"sweep": {"grid": {"n": [100, 200]}}, "inputs": [{**STUDENT_INPUT, "match": ["n"]}]},
    )
    assert check_campaign(campaign(doc)).errors == []
    world = World(campaign(doc))
    for _ in range(5):
        world.step()
        for t in world.running("teacher"):
            world.finish(t, TrialState.SUCCEEDED, {"val_loss": 0.5})
            t.status.outputs = f"file:///o/{t.spec.parameters['n']:g}"
    assert {t.spec.inputs["teacher"] for t in world.trials.values() if t.spec.phase == "student"} == {
        "file:///o/100",
        "file:///o/200",
    }


def test_several_matches_at_run_time_are_refused_not_picked() -> None:
    """(check_campaign rejects this up front; at run time only a promoted parameter could cause it.)"""
    doc = spec(
        teacher={"sweep": {"grid": {"symbol": ["TCS"], "seed": [1, 2]}}, "skipWhen": []},
        student={"inputs": [{**STUDENT_INPUT, "match": ["symbol"]}]},
    )
    c = campaign(doc)
    teachers = [build_trial(c, c.spec.phases[0], point, None) for point in expand(c.spec.phases[0])]
    matcher = InputMatcher(c.spec.phases[1], {"teacher": teachers})
    with pytest.raises(InputError, match="the trial with symbol=TCS matches 2 trials of phase teacher"):
        matcher.decide({"symbol": "TCS", "window": "w"})


# -- plan-time checks -----------------------------------------------------------------------------


def errors(doc: dict[str, Any]) -> list[str]:
    return check_campaign(campaign(doc)).errors


def test_the_teacher_student_layout_passes() -> None:
    assert errors(spec()) == []


def test_a_match_key_must_be_a_parameter_of_both_phases() -> None:
    student, teacher = errors(spec(student={"inputs": [{**STUDENT_INPUT, "match": ["symbol", "windw"]}]}))
    assert student.startswith(
        "spec.phases[1].inputs[0].match: ['windw'] is not a parameter of phase student's trials"
        " (did you mean window?); its parameters are: role, symbol, window"
    )
    assert teacher.startswith(
        "spec.phases[1].inputs[0].match: ['windw'] is not a parameter of phase teacher's"
    )
    found = errors(spec(student={"inputs": [{**STUDENT_INPUT, "match": ["role", "lr"]}]}))
    assert any("['lr'] is not a parameter of phase teacher's trials" in p for p in found), found
    assert any("['lr'] is not a parameter of phase student's trials" in p for p in found), found


def test_each_student_must_match_exactly_one_teacher() -> None:
    students_axes = {"symbol": [*SYMBOLS, {"name": "WIPRO"}], "window": WINDOWS}
    (p,) = errors(spec(student={"sweep": {"matrix": {"axes": students_axes}}}))
    assert p.startswith(
        "spec.phases[1].inputs[0].match: 2 of 8 trials match no or several trials of phase teacher"
        " on ['symbol', 'window'] (each must match exactly one: align the sweeps or change match):"
        " symbol=WIPRO window=2022-01-01 matches none; symbol=WIPRO window=2023-01-01 matches none"
    )
    (p,) = errors(spec(student={"inputs": [{**STUDENT_INPUT, "match": ["symbol"]}]}))
    assert "6 of 6 trials match no or several" in p and "symbol=TCS matches 2" in p


def test_from_phase_must_be_an_earlier_phase_and_names_unique() -> None:
    # The CRD's rule (fromPhase in dependsOn, dependsOn earlier) says so first; check_campaign too.
    model = campaign(spec())
    model.spec.phases[1].inputs[0].from_phase = "teachr"
    (p,) = check_campaign(model).errors
    assert p.startswith(
        "spec.phases[1].inputs[0].fromPhase: no phase is named teachr (did you mean teacher?);"
        " earlier phases are: teacher"
    )
    model.spec.phases[1].inputs[0].from_phase = "student"
    (p,) = check_campaign(model).errors
    assert p.startswith("spec.phases[1].inputs[0].fromPhase: student is this phase; a phase's inputs")
    twice = copy.deepcopy(STUDENT_INPUT)
    (p,) = errors(spec(student={"inputs": [STUDENT_INPUT, twice]}))
    assert p.startswith("spec.phases[1].inputs[1].name: teacher is also inputs[0].name;")


def test_a_scaled_down_run_matches_against_the_teachers_it_samples() -> None:
    """spec.scaleDown samples the same points in phases with the same sweep, so students still find
    their teachers; a student whose teacher is not in the sample is an error before anything runs."""
    small = {"scaleDown": {"maxTrialsPerPhase": 2}}
    same = {
        "skipWhen": [BEFORE_LISTING]
    }  # the sample prefers trials that run: the same rule, the same sample
    assert errors({**spec(student=same), **small}) == []
    (p,) = errors({**spec(), **small})
    assert p.startswith("spec.phases[1].inputs[0].match: 1 of 2 trials match no or several trials of phase")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(["TCS", "INFY", "ITC"]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(["TCS", "INFY", "ITC"]), min_size=1, max_size=3, unique=True),
    st.booleans(),
)
def test_what_plan_time_accepts_is_what_run_time_resolves(
    teachers: list[str], students_: list[str], seeded: bool
) -> None:
    """One matching rule both ways: check_campaign accepts the layout exactly when every student,
    once its phase starts, finds one teacher (with `seed` in the teachers' sweep, several match)."""
    teacher_axes: dict[str, Any] = {"symbol": teachers, **({"seed": [1, 2]} if seeded else {})}
    doc = spec(
        teacher={"sweep": {"matrix": {"axes": teacher_axes}}, "skipWhen": []},
        student={
            "sweep": {"matrix": {"axes": {"symbol": students_}}},
            "inputs": [{**STUDENT_INPUT, "match": ["symbol"]}],
        },
    )
    c = campaign(doc)
    accepted = check_campaign(c).errors == []
    assert accepted == (set(students_) <= set(teachers) and not seeded)
    teacher_trials = [build_trial(c, c.spec.phases[0], p, None) for p in expand(c.spec.phases[0])]
    for t in teacher_trials:
        t.status.state, t.status.outputs = TrialState.SUCCEEDED, f"file:///o/{t.name}"
    matcher = InputMatcher(c.spec.phases[1], {"teacher": teacher_trials})
    resolved = []
    for symbol in students_:
        try:
            resolved.append(not matcher.decide({"symbol": symbol}).skip)
        except InputError:
            resolved.append(False)
    assert accepted == all(resolved)
