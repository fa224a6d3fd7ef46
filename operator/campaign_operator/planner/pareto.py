"""Pareto fronts of multi-objective phases (Phase.objectives), and promotion from them.

A trial is on the front when it Succeeded with a finite value of every objective at its best epoch
and no other such trial is at least as good on every objective and better on one. Orders are total
(values, then the trial's name), so the same trials give the same front, bounded status and promoted
trial in every process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from campaign_operator.api.campaign import FRONT_LIMIT, FrontTrial, Phase, Promotion
from campaign_operator.api.common import Mode, Objective, TrialState
from campaign_operator.api.trial import Trial

from .expressions import did_you_mean
from .views import FRONT_ENTRY_FIELDS, final_metrics


@dataclass(frozen=True)
class FrontPoint:
    trial: Trial
    values: tuple[float, ...]
    """The objectives' values, in the order of Phase.objectives."""

    @property
    def name(self) -> str:
        return self.trial.name


def objective_values(trial: Trial, objectives: Sequence[Objective]) -> tuple[float, ...] | None:
    """A Succeeded trial's objective values at its best epoch; None when it did not succeed or one of
    them is missing or not finite (such a trial cannot be compared on every objective)."""
    if trial.status.state != TrialState.SUCCEEDED:
        return None
    metrics = final_metrics(trial)
    values = tuple(metrics.get(o.metric, math.nan) for o in objectives)
    return values if all(math.isfinite(v) for v in values) else None


def _costs(values: tuple[float, ...], objectives: Sequence[Objective]) -> tuple[float, ...]:
    """The values turned so that lower is better on every objective."""
    return tuple(v if o.mode == Mode.MIN else -v for v, o in zip(values, objectives, strict=True))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Costs `a` are at least as good as `b` everywhere and better somewhere (lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(trials: Iterable[Trial], objectives: Sequence[Objective]) -> list[FrontPoint]:
    """The non-dominated trials, ordered by the first objective (best first), then the next ones,
    then name. Trials with equal values are all on the front.

    Sorting first means a trial can only be dominated by one before it, and only the front found so
    far needs checking (whatever dominates it is dominated by a front trial before it): O(n * front).
    """
    candidates = []
    for trial in trials:
        values = objective_values(trial, objectives)
        if values is not None:
            candidates.append((_costs(values, objectives), trial.name, FrontPoint(trial, values)))
    candidates.sort(key=lambda c: (c[0], c[1]))
    front: list[tuple[tuple[float, ...], FrontPoint]] = []
    for costs, _, point in candidates:
        if not any(dominates(kept, costs) for kept, _ in front):
            front.append((costs, point))
    return [point for _, point in front]


def bounded_front(
    front: Sequence[FrontPoint], objectives: Sequence[Objective], limit: int = FRONT_LIMIT
) -> list[FrontTrial]:
    """What status.phases[].front lists: the whole front when it fits, else `limit` trials spread
    evenly along its order, both ends (the best of the first objective, the best of the last
    trade-off) kept, so the list still spans the trade-off rather than one end of it."""
    n = len(front)
    indices = range(n) if n <= limit else [i * (n - 1) // (limit - 1) for i in range(limit)]
    return [
        FrontTrial(
            trial=front[i].name,
            values={o.metric: v for o, v in zip(objectives, front[i].values, strict=True)},
        )
        for i in indices
    ]


def best_by_objective(
    front: Sequence[FrontPoint], objectives: Sequence[Objective], metric: str
) -> FrontPoint:
    """The front's best trial by one of its objectives (ties: the smaller name)."""
    j = next(k for k, o in enumerate(objectives) if o.metric == metric)
    sign = 1.0 if objectives[j].mode == Mode.MIN else -1.0
    return min(front, key=lambda p: (sign * p.values[j], p.name))


def scaled(front: Sequence[FrontPoint], objectives: Sequence[Objective]) -> list[tuple[float, ...]]:
    """Each front trial's objectives rescaled over the front: 1 its best value, 0 its worst (an
    objective all front trials share is 1 for each), so units and min/max no longer matter."""
    columns = []
    for j, objective in enumerate(objectives):
        column = [p.values[j] for p in front]
        lo, hi = min(column), max(column)
        if hi == lo:
            columns.append([1.0] * len(column))
        elif objective.mode == Mode.MAX:
            columns.append([(v - lo) / (hi - lo) for v in column])
        else:
            columns.append([(hi - v) / (hi - lo) for v in column])
    return [tuple(row) for row in zip(*columns, strict=True)]


def best_by_weights(
    front: Sequence[FrontPoint], objectives: Sequence[Objective], weights: Mapping[str, float]
) -> FrontPoint:
    """The front trial with the highest weighted sum of its rescaled objectives (ties: the smaller
    name). Choosing among the front keeps the pick Pareto-optimal whatever the weights."""
    w = [weights.get(o.metric, 0.0) for o in objectives]
    scores = [sum(wi * si for wi, si in zip(w, row, strict=True)) for row in scaled(front, objectives)]
    _, _, point = min(
        ((-s, p.name, p) for s, p in zip(scores, front, strict=True)), key=lambda c: (c[0], c[1])
    )
    return point


def promoted_point(
    front: Sequence[FrontPoint],
    objectives: Sequence[Objective],
    metric: str | None,
    weights: Mapping[str, float] | None,
) -> FrontPoint | None:
    """The front trial fromPhase promotes from a multi-objective phase: by its weights, else the
    front's best by its metric, else by the first objective; None while the front is empty."""
    if not front:
        return None
    if weights:
        return best_by_weights(front, objectives, weights)
    return best_by_objective(front, objectives, metric or objectives[0].metric)


def front_view(front: Sequence[FrontPoint], objectives: Sequence[Objective]) -> list[dict[str, Any]]:
    """What `phase.front` is in CEL (views.front_entry_type): every front trial, in front order."""
    return [
        {
            "trial": p.name,
            **{o.metric: v for o, v in zip(objectives, p.values, strict=True)},
            "metrics": {k: float(v) for k, v in final_metrics(p.trial).items()},
            "parameters": p.trial.spec.parameters,
        }
        for p in front
    ]


def phase_front_view(phase: Phase, front: Sequence[FrontPoint]) -> list[dict[str, Any]] | None:
    """`phase.front` of a multi-objective phase; None for a single-objective one (it has none)."""
    if not phase.objectives:
        return None
    return front_view(front, phase.objectives)


# -- validation (semantics.check_campaign reports these with the offending field's path) -------------
Problem = tuple[str, str]
"""(the field's path below the phase or its fromPhase, what is wrong and how to fix it)."""


def objectives_problems(phase: Phase) -> list[Problem]:
    """An objective named like a field of a front entry would hide it (or be hidden) in `phase.front`."""
    return [
        (
            f"objectives[{j}].metric",
            f"'{o.metric}' is also a field of phase.front entries ({', '.join(FRONT_ENTRY_FIELDS)});"
            " rename the metric the task reports",
        )
        for j, o in enumerate(phase.objectives or ())
        if o.metric in FRONT_ENTRY_FIELDS
    ]


def promotion_problems(promo: Promotion, source: Phase) -> list[Problem]:
    """How fromPhase misuses a source phase's objectives: weights on a single-objective phase, a
    metric or weight that is not one of a multi-objective phase's objectives, a mode against it."""
    if not source.objectives:
        if promo.weights is None:
            return []
        why = (
            f"phase {source.name} has a single objective; weights scalarise a multi-objective phase's"
            " objectives: remove weights (fromPhase.metric/mode rank a single-objective phase) or"
            f" give phase {source.name} objectives"
        )
        return [("weights", why)]
    if promo.metric is not None and promo.weights is not None:
        return [("weights", "set either metric (the front's best by it) or weights, not both")]
    return _metric_problems(promo, source) + _weight_problems(promo, source)


def _listed(objectives: Sequence[Objective]) -> str:
    return ", ".join(f"{o.metric} ({o.mode.value})" for o in objectives)


def _metric_problems(promo: Promotion, source: Phase) -> list[Problem]:
    objectives = source.objectives or []
    names = [o.metric for o in objectives]
    if promo.metric is not None and promo.metric not in names:
        hint = did_you_mean(promo.metric, names)
        why = f"'{promo.metric}' is not an objective of phase {source.name}{hint}; a multi-objective phase"
        return [("metric", f"{why} promotes the front's best by one of: {_listed(objectives)}")]
    if promo.mode is None:
        return []
    ranked = next((o for o in objectives if o.metric == (promo.metric or names[0])), objectives[0])
    if promo.weights is None and promo.mode == ranked.mode:
        return []  # says what the objective already says
    why = f"phase {source.name} is multi-objective and each objective keeps its own mode"
    return [("mode", f"{why} ({_listed(objectives)}); remove mode")]


def _weight_problems(promo: Promotion, source: Phase) -> list[Problem]:
    if promo.weights is None:
        return []
    objectives = source.objectives or []
    names = [o.metric for o in objectives]
    problems: list[Problem] = []
    for metric, weight in promo.weights.items():
        if metric not in names:
            hint = did_you_mean(metric, names)
            why = f"not an objective of phase {source.name}{hint}; its objectives: {_listed(objectives)}"
            problems.append((f"weights.{metric}", why))
        elif not math.isfinite(weight):
            problems.append((f"weights.{metric}", f"must be a finite number, got {weight}"))
    if not any(0 < w < math.inf for w in promo.weights.values()):
        problems.append(("weights", "at least one weight must be above 0"))
    return problems
