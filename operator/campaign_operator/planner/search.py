"""Adaptive search (sweep.search): the next trial's parameters, from the phase's observed trials only.

Pure and deterministic: a suggestion is a function of (the search, the objective's mode, the observed
trials in index order, the new trial's index). Samplers are rebuilt from that history on every call
and seeded by (seed, index, retry), so another process (a restarted operator, the embedded runner)
suggests the same; nothing of a sampler's own state survives between calls.

Engines: Optuna's TPE (multivariate, constant liar for the running trials: parallel slots get
different suggestions); CMA-ES from the `cmaes` library by generations of `population` trials, each
generation told to the optimiser once all of it has finished (replayed from the history, so the
optimiser needs no stored state); plain random draws; a scrambled Halton sequence for qmc.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from campaign_operator.api.campaign import Distribution, SearchAlgorithm, SearchSweep
from campaign_operator.api.common import Mode, Objective, TrialState
from campaign_operator.api.trial import Trial

from .naming import canonical_json
from .pareto import objective_values

RETRIES = 16
"""Fresh draws tried when a suggestion repeats a trial's parameters (an int or choice space small
enough to collide), before the points left are listed (or the space is called exhausted)."""


class Outcome(StrEnum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    """Stopped early with a partial learning curve (earlyTermination, a stop rule)."""
    FAILED = "failed"
    RUNNING = "running"
    """Pending or running: its parameters are taken, its value is not known yet."""
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Observation:
    """One earlier trial of the search, as the planner observed it."""

    index: int
    params: dict[str, Any]
    outcome: Outcome
    value: float | None = None
    """The objective: final for COMPLETE, the latest reported for PRUNED."""
    values: tuple[float, ...] = ()
    """COMPLETE in a phase of several objectives: each objective's final value, in their order."""
    curve: tuple[tuple[int, float], ...] = field(default=())
    """(epoch, objective) as reported, for PRUNED."""


def observation(index: int, trial: Trial, objectives: Sequence[Objective], retrying: bool) -> Observation:
    """What a search learns from one of its trials: a Succeeded trial's final objectives (the phase's
    objective, or its objectives in order), a Stopped one's learning curve of the first, that a
    Failed one failed (unless a retry will run it again: then, as a Pending or Running one, only that
    its parameters are taken)."""
    state, params, metric = trial.status.state, trial.spec.sweep_point, objectives[0].metric
    curve = tuple(
        (p.epoch, p.metrics[metric]) for p in trial.status.history if _finite(p.metrics.get(metric))
    )
    if state == TrialState.SUCCEEDED:
        values = objective_values(trial, objectives)
        if values is None:
            return Observation(index, params, Outcome.FAILED)
        return Observation(index, params, Outcome.COMPLETE, values[0], values if len(values) > 1 else ())
    if state == TrialState.STOPPED and curve:
        return Observation(index, params, Outcome.PRUNED, curve[-1][1], curve=curve)
    if state == TrialState.SKIPPED:
        return Observation(index, params, Outcome.SKIPPED)
    if state in (TrialState.PENDING, TrialState.RUNNING) or retrying:
        return Observation(index, params, Outcome.RUNNING)
    return Observation(index, params, Outcome.FAILED)


def suggest(
    search: SearchSweep, mode: Mode | Sequence[Mode], history: Sequence[Observation], index: int
) -> dict[str, Any] | None:
    """Parameters of trial `index`, distinct from every observed trial's; None when the search must
    wait (cmaes: the previous generation is still running) or its space has no new point left.
    `mode`: the objective's, or each objective's of a multi-objective phase (tpe searches for their
    Pareto front; cmaes takes one objective only; random and qmc do not read results)."""
    modes = (mode,) if isinstance(mode, Mode) else tuple(mode)
    taken = {canonical_json(o.params) for o in history}
    for retry in range(RETRIES):
        params = _draw(search, modes, history, index, retry)
        if params is None:
            return None
        if canonical_json(params) not in taken:
            return params
    untaken = [p for p in _enumerated(search.space) if canonical_json(p) not in taken]
    return random.Random(derived_seed(search.seed, index, RETRIES)).choice(untaken) if untaken else None


ENUMERATION_LIMIT = 100_000


def _enumerated(space: dict[str, Distribution]) -> list[dict[str, Any]]:
    """Every point of a space of ints and choices small enough to list (else none): where draws keep
    colliding, the points left are found by listing."""
    axes: list[Sequence[Any]] = []
    for name in sorted(space):
        d = space[name]
        if d.int_uniform is not None:
            axes.append(range(d.int_uniform[0], d.int_uniform[1] + 1))
        elif d.choice is not None:
            axes.append(d.choice)
        else:
            return []
    if math.prod(len(a) for a in axes) > ENUMERATION_LIMIT:  # ranges: sized without being listed
        return []
    names = sorted(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]


def _draw(
    search: SearchSweep, modes: tuple[Mode, ...], history: Sequence[Observation], index: int, retry: int
) -> dict[str, Any] | None:
    seed = derived_seed(search.seed, index, retry)
    if search.algorithm == SearchAlgorithm.RANDOM or (retry > 0 and search.algorithm != SearchAlgorithm.QMC):
        return _random(search.space, seed)
    if search.algorithm == SearchAlgorithm.QMC:
        return decode(search.space, halton(index + retry * search.trials, len(search.space), search.seed))
    if search.algorithm == SearchAlgorithm.CMAES:
        return _cmaes(search, modes[0], history, index)
    return _tpe(search, modes, history, seed)


def derived_seed(*parts: int) -> int:
    """A 32-bit seed from integers, the same in every process (unlike hash() of a str)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


# -- the unit cube <-> parameters ----------------------------------------------------------------
def decode(space: dict[str, Distribution], unit: Sequence[float]) -> dict[str, Any]:
    """A point of [0, 1)^d as parameters, dimensions in the space's sorted name order."""
    return {name: _decode_one(space[name], u) for name, u in zip(sorted(space), unit, strict=True)}


def _decode_one(dist: Distribution, u: float) -> Any:
    u = min(max(u, 0.0), math.nextafter(1.0, 0.0))
    if dist.uniform is not None:
        low, high = dist.uniform
        return low + u * (high - low)
    if dist.log_uniform is not None:
        low, high = (math.log(x) for x in dist.log_uniform)
        return math.exp(low + u * (high - low))
    if dist.int_uniform is not None:
        low, high = dist.int_uniform
        return low + int(u * (high - low + 1))
    assert dist.choice is not None
    return dist.choice[int(u * len(dist.choice))]


def _random(space: dict[str, Distribution], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return decode(space, [rng.random() for _ in space])


# -- qmc -------------------------------------------------------------------------------------------
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


def _primes(count: int) -> list[int]:
    out = list(_PRIMES[:count])
    candidate = out[-1] + 2 if out else 2
    while len(out) < count:
        if all(candidate % p for p in out if p * p <= candidate):
            out.append(candidate)
        candidate += 2
    return out


def halton(index: int, dims: int, seed: int) -> list[float]:
    """Point `index` of a Halton sequence with seeded random digit permutations (Owen-style
    scrambling per base): low discrepancy, and a pure function of (index, seed)."""
    point = []
    for d, base in enumerate(_primes(dims)):
        perm = list(range(base))
        random.Random(derived_seed(seed, d)).shuffle(perm)
        value, scale, n = 0.0, 1.0 / base, index + 1
        while n:
            n, digit = divmod(n, base)
            value += perm[digit] * scale
            scale /= base
        point.append(value)
    return point


# -- tpe (Optuna) ----------------------------------------------------------------------------------
def _tpe(
    search: SearchSweep, modes: tuple[Mode, ...], history: Sequence[Observation], seed: int
) -> dict[str, Any]:
    """Optuna's TPE over the history (several objectives: its multi-objective TPE, which has no
    pruned trials: a stopped trial counts as failed there)."""
    import optuna  # here: only a search phase pays for the import
    from optuna.study import StudyDirection
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists, to_optuna, from_optuna = _optuna_space(search.space)
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=search.startup_trials, multivariate=True, constant_liar=True
    )
    directions = [StudyDirection.MINIMIZE if m == Mode.MIN else StudyDirection.MAXIMIZE for m in modes]
    study = optuna.create_study(directions=directions, sampler=sampler)
    several = len(modes) > 1
    states = {
        Outcome.COMPLETE: TrialState.COMPLETE,
        Outcome.PRUNED: TrialState.FAIL if several else TrialState.PRUNED,
        Outcome.FAILED: TrialState.FAIL,
        Outcome.RUNNING: TrialState.RUNNING,
    }
    for o in sorted(history, key=lambda o: o.index):
        if o.outcome == Outcome.SKIPPED or (o.outcome == Outcome.COMPLETE and o.value is None):
            continue
        complete = o.outcome == Outcome.COMPLETE
        study.add_trial(
            create_trial(
                params=to_optuna(o.params),
                distributions=dists,
                value=o.value if complete and not several else None,
                values=list(o.values) if complete and several else None,
                intermediate_values=dict(o.curve) if o.outcome == Outcome.PRUNED and not several else None,
                state=states[o.outcome],
            )
        )
    suggested: dict[str, Any] = from_optuna(study.ask(dists).params)
    return suggested


def _optuna_space(
    space: dict[str, Distribution],
) -> tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]], Callable[[dict[str, Any]], Any]]:
    """Optuna distributions, and the mapping of parameters to and from them: choices travel as their
    index (Optuna's categories must be scalars; ours may be objects)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists: dict[str, Any] = {}
    for name, d in space.items():
        if d.uniform is not None:
            dists[name] = FloatDistribution(d.uniform[0], d.uniform[1])
        elif d.log_uniform is not None:
            dists[name] = FloatDistribution(d.log_uniform[0], d.log_uniform[1], log=True)
        elif d.int_uniform is not None:
            dists[name] = IntDistribution(d.int_uniform[0], d.int_uniform[1])
        else:
            assert d.choice is not None
            dists[name] = CategoricalDistribution(list(range(len(d.choice))))

    def choice_index(name: str, value: Any) -> int:
        choices = space[name].choice or []
        return next(i for i, c in enumerate(choices) if canonical_json(c) == canonical_json(value))

    def to_optuna(params: dict[str, Any]) -> dict[str, Any]:
        return {
            k: choice_index(k, v) if space[k].choice is not None else v
            for k, v in params.items()
            if k in space
        }

    def from_optuna(params: dict[str, Any]) -> dict[str, Any]:
        return {k: _from_optuna_value(space[k], v) for k, v in params.items()}

    return dists, to_optuna, from_optuna


def _from_optuna_value(dist: Distribution, value: Any) -> Any:
    return value if dist.choice is None else dist.choice[value]


# -- cmaes -----------------------------------------------------------------------------------------
def population(dims: int) -> int:
    """CMA-ES's default population size (Hansen): 4 + floor(3 ln d)."""
    return 4 + int(3 * math.log(max(dims, 1)))


def _cmaes(
    search: SearchSweep, mode: Mode, history: Sequence[Observation], index: int
) -> dict[str, Any] | None:
    """Member `index % population` of generation `index // population`: the optimiser is replayed
    from the start, asking each earlier generation again (the same seed asks the same points) and
    telling it those generations' results. A generation with a trial not finished yet: wait."""
    import numpy as np
    from cmaes import CMA

    dims = len(search.space)
    size = population(dims)
    generation, member = divmod(index, size)
    by_index = {o.index: o for o in history}
    earlier = [by_index.get(i) for i in range(generation * size)]
    if any(o is None or o.outcome == Outcome.RUNNING for o in earlier):
        return None
    sign = 1.0 if mode == Mode.MIN else -1.0
    losses = [sign * o.value if o is not None and o.value is not None else math.nan for o in earlier]
    finite = [x for x in losses if math.isfinite(x)]
    penalty = (max(finite) + 1.0) if finite else 1.0
    optimiser = CMA(
        mean=np.full(dims, 0.5),
        sigma=0.3,
        bounds=np.array([[0.0, 1.0]] * dims),
        seed=derived_seed(search.seed),
        population_size=size,
    )
    for g in range(generation):
        asked = [optimiser.ask() for _ in range(size)]
        told = losses[g * size : (g + 1) * size]
        optimiser.tell([(x, y if math.isfinite(y) else penalty) for x, y in zip(asked, told, strict=True)])
    point = [optimiser.ask() for _ in range(member + 1)][-1]
    return decode(search.space, [float(u) for u in point])


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
