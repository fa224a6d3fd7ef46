"""sweep.search: suggestions are a pure function of the observed history, restart-safe through plan(),
distinct across parallel slots, and named by index."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_operator.api import TrialState
from campaign_operator.api.campaign import Distribution, SearchAlgorithm, SearchSweep
from campaign_operator.api.common import MetricPoint, Mode
from campaign_operator.planner import CreateTrial, plan
from campaign_operator.planner.naming import canonical_json, search_trial_name
from campaign_operator.planner.search import Observation, Outcome, halton, population, suggest
from campaign_operator.planner.semantics import semantic_problems

from .sim import World, campaign

pytestmark = pytest.mark.unit

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALGORITHMS = [a.value for a in SearchAlgorithm]
SPACE = {
    "x1": {"uniform": [-5.0, 10.0]},
    "x2": {"uniform": [0.0, 15.0]},
    "lr": {"logUniform": [1e-4, 1e-1]},
    "width": {"intUniform": [16, 64]},
    "act": {"choice": ["relu", {"name": "gelu", "approx": True}]},
}


def branin(p: dict[str, Any]) -> float:
    x, y = p["x1"], p["x2"]
    return (
        (y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
    )


def search(algorithm: str, trials: int = 30, space: dict[str, Any] | None = None, **kw: Any) -> SearchSweep:
    return SearchSweep.model_validate(
        {"algorithm": algorithm, "trials": trials, "seed": 7, "space": space or SPACE, **kw}
    )


def search_campaign(algorithm: str, trials: int = 12, parallel: int = 3, **phase: Any) -> Any:
    return campaign(
        {
            "phases": [
                {
                    "name": "explore",
                    "maxParallelTrials": parallel,
                    "sweep": {
                        "search": {"algorithm": algorithm, "trials": trials, "seed": 3, "space": SPACE}
                    },
                    **phase,
                }
            ]
        }
    )


def history_of(algorithm: str, n: int) -> list[Observation]:
    """n trials suggested one after another, each finished with its branin value."""
    s = search(algorithm, trials=40)
    out: list[Observation] = []
    for i in range(n):
        params = suggest(s, Mode.MIN, out, i)
        assert params is not None
        out.append(Observation(i, params, Outcome.COMPLETE, branin(params)))
    return out


def in_space(params: dict[str, Any]) -> bool:
    return (
        -5 <= params["x1"] < 10
        and 0 <= params["x2"] < 15
        and 1e-4 <= params["lr"] < 1e-1
        and isinstance(params["width"], int)
        and 16 <= params["width"] <= 64
        and params["act"] in SPACE["act"]["choice"]
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_suggestions_lie_in_the_space_and_are_distinct(algorithm: str) -> None:
    history = history_of(algorithm, 24)
    assert all(in_space(o.params) for o in history)
    assert len({canonical_json(o.params) for o in history}) == len(history)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@FAST
@given(cut=st.integers(0, 23), running=st.integers(0, 3))
def test_the_same_history_gives_the_same_next_trial(algorithm: str, cut: int, running: int) -> None:
    full = history_of(algorithm, cut + running)
    history = full[:cut] + [Observation(o.index, o.params, Outcome.RUNNING) for o in full[cut:]]
    s = search(algorithm, trials=40)
    first = suggest(s, Mode.MIN, history, len(history))
    again = suggest(s, Mode.MIN, list(reversed(history)), len(history))
    assert first == again


def test_the_same_history_gives_the_same_next_trial_in_another_process() -> None:
    history = history_of("tpe", 15)
    code = (
        "import json, sys\n"
        "from campaign_operator.api.common import Mode\n"
        "from campaign_operator.planner.search import Observation, Outcome, suggest\n"
        "from tests.unit.planner.test_search import search\n"
        "h = [Observation(i, p, Outcome.COMPLETE, v) for i, (p, v) in enumerate(json.loads(sys.argv[1]))]\n"
        "print(json.dumps(suggest(search('tpe', trials=40), Mode.MIN, h, len(h))))\n"
    )
    arg = json.dumps([(o.params, o.value) for o in history])
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, arg], capture_output=True, text=True, check=True, env=env
        ).stdout
        for env in ({"PYTHONHASHSEED": "1", "PATH": ""}, {"PYTHONHASHSEED": "2", "PATH": ""})
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == suggest(search("tpe", trials=40), Mode.MIN, history, 15)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_parallel_suggestions_are_distinct_even_in_a_tiny_space(algorithm: str) -> None:
    tiny = {"a": {"choice": [1, 2, 3]}, "b": {"intUniform": [0, 1]}}
    s = search(algorithm, trials=6, space=tiny)
    history: list[Observation] = []
    for i in range(6):
        params = suggest(s, Mode.MIN, history, i)
        assert params is not None  # (cmaes: 6 is its population for 2 dimensions)
        history.append(Observation(i, params, Outcome.RUNNING))
    assert len({canonical_json(o.params) for o in history}) == 6
    assert suggest(s, Mode.MIN, history, 6) is None, "all 6 points are taken"


def test_an_exhausted_space_suggests_nothing() -> None:
    s = search("tpe", trials=5, space={"a": {"choice": [1, 2]}})
    history = [Observation(0, {"a": 1}, Outcome.COMPLETE, 1.0), Observation(1, {"a": 2}, Outcome.RUNNING)]
    assert suggest(s, Mode.MIN, history, 2) is None


def test_cmaes_waits_for_its_generation_then_learns_from_it() -> None:
    s = search("cmaes", trials=40, space={k: SPACE[k] for k in ("x1", "x2")})
    size = population(2)
    first = []
    for i in range(size):
        params = suggest(s, Mode.MIN, first, i)
        assert params is not None
        first.append(Observation(i, params, Outcome.RUNNING))
    assert suggest(s, Mode.MIN, first, size) is None, "generation 0 still running"
    done = [Observation(o.index, o.params, Outcome.COMPLETE, branin(o.params)) for o in first]
    nxt = suggest(s, Mode.MIN, done, size)
    assert nxt is not None
    # Replayed, not stored: generation 0 is asked again from the seed and is what was suggested.
    assert [suggest(s, Mode.MIN, done[:i], i) for i in range(size)] == [o.params for o in first]


def test_tpe_learns_from_the_history() -> None:
    """On branin (min 0.398), TPE's best of 40 beats the median best-of-40 of five random searches."""
    tpe = min(o.value or math.inf for o in history_of("tpe", 40))
    randoms = sorted(min(branin(p) for p in [search_random(seed, i) for i in range(40)]) for seed in range(5))
    assert tpe < randoms[2]


def search_random(seed: int, index: int) -> dict[str, Any]:
    s = SearchSweep.model_validate({"algorithm": "random", "trials": 40, "seed": seed, "space": SPACE})
    params = suggest(s, Mode.MIN, [], index)
    assert params is not None
    return params


def test_halton_covers_the_cube_evenly() -> None:
    points = [halton(i, 2, seed=5) for i in range(64)]
    assert len({tuple(p) for p in points}) == 64
    cells = {(int(x * 8), int(y * 8)) for x, y in points}
    assert len(cells) >= 48  # random points would fill about 64 * (1 - 1/e) = 40 of the 64 cells


def test_pruned_and_failed_trials_are_told_as_such() -> None:
    s = search("tpe", trials=30, startup_trials=2)
    history = history_of("random", 6)
    history += [
        Observation(6, {**history[0].params, "width": 17}, Outcome.PRUNED, 50.0, ((1, 80.0), (3, 50.0))),
        Observation(7, {**history[1].params, "width": 18}, Outcome.FAILED),
    ]
    assert suggest(s, Mode.MIN, history, 8) == suggest(s, Mode.MIN, history, 8)


# -- through plan() ---------------------------------------------------------------------------------
def finish_with_branin(trial: Any) -> tuple[TrialState, dict[str, float]]:
    value = branin(trial.spec.sweep_point)
    trial.status.history = [MetricPoint(epoch=1, metrics={"val_loss": value})]
    return TrialState.SUCCEEDED, {"val_loss": value}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_search_phase_fills_its_slots_up_to_its_budget(algorithm: str) -> None:
    world = World(search_campaign(algorithm, trials=12, parallel=3))
    p = world.step()
    assert [a.trial.name for a in p.actions if isinstance(a, CreateTrial)] == [
        search_trial_name("c", "explore", i) for i in range(3)
    ]
    seen_running = []
    final = world.run(finish_with_branin, random.Random(1))
    for q in world.plans:
        seen_running.append(q.status.phases[0].counts.running)
    assert final.status.state.value == "Succeeded"
    assert max(seen_running) <= 3
    assert sorted(world.created) == sorted(search_trial_name("c", "explore", i) for i in range(12))
    params = [canonical_json(t.spec.sweep_point) for t in world.trials.values()]
    assert len(set(params)) == 12
    assert final.status.phases[0].best is not None


@pytest.mark.parametrize("algorithm", ["tpe", "cmaes"])
@FAST
@given(seed=st.integers(0, 2**16), stop_after=st.integers(1, 30))
def test_a_restart_at_any_point_creates_nothing_twice_and_changes_no_trial(
    algorithm: str, seed: int, stop_after: int
) -> None:
    """A restarted shell re-plans from the Trials alone: at every step, planning twice over the same
    Trials decides the same, and no created Trial is ever created again or altered (World asserts
    "created twice")."""
    world = World(search_campaign(algorithm, trials=10, parallel=2))
    rng = random.Random(seed)
    specs: dict[str, str] = {}
    for step, _ in enumerate(world.drive(finish_with_branin, rng)):
        again = plan(world.campaign, list(world.trials.values()), world.now)
        assert [a for a in again.actions if isinstance(a, CreateTrial)] == []
        for name, t in world.trials.items():
            assert specs.setdefault(name, t.spec.model_dump_json()) == t.spec.model_dump_json()
        if step >= stop_after:
            break
    assert len(world.created) == len(set(world.created)) <= 10


def test_failed_retried_trials_hold_their_slot() -> None:
    world = World(search_campaign("random", trials=6, parallel=2, failurePolicy={"retries": 1}))
    world.step()
    for t in world.running():
        world.finish(t, TrialState.FAILED)
    p = world.step()
    assert not [a for a in p.actions if isinstance(a, CreateTrial)], "a retry is pending in each slot"


def test_smoke_run_caps_the_budget() -> None:
    c = campaign(
        {
            "scaleDown": {"smoke": True},
            "phases": [{"name": "explore", "sweep": {"search": {"trials": 50, "space": SPACE}}}],
        }
    )
    world = World(c)
    world.run(finish_with_branin)
    assert len(world.created) == 2


def test_search_space_problems_name_the_field() -> None:
    c = campaign(
        {
            "phases": [
                {
                    "name": "explore",
                    "sweep": {"search": {"trials": 5, "space": {"x1": {"uniform": [0, 1]}}}},
                    "skipWhen": [{"expression": "params.x9 > 1", "reason": "Big"}],
                }
            ]
        }
    )
    problems = semantic_problems(c)
    assert any("skipWhen[0]" in p and "x9" in p for p in problems), problems


def test_distribution_reuses_the_random_sweeps_forms() -> None:
    assert Distribution.model_validate({"intUniform": [1, 3]}).int_uniform == [1, 3]


def test_a_multi_objective_search_is_told_every_objective_and_fills_its_front() -> None:
    def two(trial: Any) -> tuple[TrialState, dict[str, float]]:
        p = trial.spec.sweep_point
        return TrialState.SUCCEEDED, {"val_loss": branin(p), "rmse": float(p["width"])}

    c = campaign(
        {
            "phases": [
                {
                    "name": "explore",
                    "maxParallelTrials": 2,
                    "objectives": [
                        {"metric": "val_loss", "mode": "min"},
                        {"metric": "rmse", "mode": "min"},
                    ],
                    "sweep": {
                        "search": dict(algorithm="tpe", trials=14, seed=1, startupTrials=4, space=SPACE)
                    },
                }
            ]
        }
    )
    world = World(c)
    final = world.run(two, random.Random(2))
    assert final.status.state.value == "Succeeded" and len(world.created) == 14
    phase = final.status.phases[0]
    assert phase.front and phase.front_size == len(phase.front) >= 1
    history = []
    for i, t in enumerate(world.trials.values()):
        m = two(t)[1]
        values = (m["val_loss"], m["rmse"])
        history.append(Observation(i, t.spec.sweep_point, Outcome.COMPLETE, values[0], values))
    s = search("tpe", trials=20, startup_trials=4)
    assert suggest(s, [Mode.MIN, Mode.MIN], history, 14) == suggest(s, [Mode.MIN, Mode.MIN], history, 14)
    assert suggest(s, [Mode.MIN, Mode.MIN], history, 14) != suggest(s, Mode.MIN, history, 14)


def test_cmaes_refuses_several_objectives_naming_the_field() -> None:
    c = campaign(
        {
            "phases": [
                {
                    "name": "explore",
                    "objectives": [{"metric": "val_loss", "mode": "min"}, {"metric": "r2", "mode": "max"}],
                    "sweep": {"search": {"algorithm": "cmaes", "trials": 5, "space": SPACE}},
                }
            ]
        }
    )
    problems = semantic_problems(c)
    assert any(p.startswith("spec.phases[0].sweep.search.algorithm") and "tpe" in p for p in problems), (
        problems
    )


def test_a_tpe_budget_within_its_random_startup_is_warned_about() -> None:
    from campaign_operator.planner.semantics import semantic_warnings

    c = campaign(
        {"phases": [{"name": "p", "sweep": {"search": {"trials": 5, "startupTrials": 10, "space": SPACE}}}]}
    )
    (warning,) = [w for w in semantic_warnings(c) if "startupTrials" in w]
    assert (
        warning.startswith("spec.phases[0].sweep.search.startupTrials") and "every trial is random" in warning
    )
    assert not semantic_problems(c)


def test_a_huge_int_space_is_never_listed() -> None:
    from campaign_operator.planner.search import _enumerated

    huge = {"a": Distribution.model_validate({"intUniform": [0, 10**12]})}
    assert _enumerated(huge) == []  # sized as a range, not materialised
    small = {
        "a": Distribution.model_validate({"intUniform": [0, 2]}),
        "b": Distribution.model_validate({"choice": ["x"]}),
    }
    assert _enumerated(small) == [{"a": 0, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
