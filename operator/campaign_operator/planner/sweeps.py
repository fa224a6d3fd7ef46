"""Sweep expansion: a phase's sweep -> an ordered list of distinct parameter points.

A search sweep has no points before it runs: plan() asks `planner.search` for each one as a slot
frees. `typical_points` stands in for them where the manifest is checked before anything runs."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from campaign_operator.api.campaign import Distribution, Phase, SearchSweep, Sweep

from .naming import canonical_json


@dataclass(frozen=True)
class SweepPoint:
    index: int
    params: dict[str, Any]
    key: str
    searched: bool = False
    """Suggested by a search: its trial is named by index, not by parameters."""


def _grid(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(axes[n] for n in names))]


def _matches(point: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(k in point and point[k] == v for k, v in pattern.items())


def _draw(dist: Distribution, rng: random.Random) -> Any:
    if dist.uniform is not None:
        return rng.uniform(dist.uniform[0], dist.uniform[1])
    if dist.log_uniform is not None:
        low, high = math.log(dist.log_uniform[0]), math.log(dist.log_uniform[1])
        return math.exp(rng.uniform(low, high))
    if dist.int_uniform is not None:
        return rng.randint(dist.int_uniform[0], dist.int_uniform[1])
    assert dist.choice is not None
    return dist.choice[rng.randrange(len(dist.choice))]


def raw_points(sweep: Sweep | None) -> list[dict[str, Any]]:
    """The sweep's points in declaration order, before de-duplication."""
    if sweep is None:
        return [{}]
    if sweep.trials is not None:
        return [dict(t) for t in sweep.trials]
    if sweep.grid is not None:
        return _grid(sweep.grid)
    if sweep.matrix is not None:
        points = [
            p for p in _grid(sweep.matrix.axes) if not any(_matches(p, e) for e in sweep.matrix.exclude)
        ]
        return points + [dict(p) for p in sweep.matrix.include]
    if sweep.seeds is not None:
        s = sweep.seeds
        return [{s.parameter: s.start + i} for i in range(s.count)]
    if sweep.search is not None:
        return []
    assert sweep.random is not None
    return _draws(sweep.random.space, sweep.random.seed, sweep.random.samples)


def _draws(space: dict[str, Distribution], seed: int, count: int) -> list[dict[str, Any]]:
    """`count` points drawn from `space`, the same for the same seed."""
    rng = random.Random(seed)
    names = sorted(space)
    return [{n: _draw(space[n], rng) for n in names} for _ in range(count)]


def search_of(phase: Phase) -> SearchSweep | None:
    """The phase's sweep when it is a search (its trials are suggested as slots free)."""
    return phase.sweep.search if phase.sweep is not None else None


def count_points(sweep: Sweep | None) -> int:
    """Upper bound of the expansion size, computed without expanding (for the trial cap)."""
    if sweep is None:
        return 1
    if sweep.grid is not None:
        return math.prod(len(v) for v in sweep.grid.values())
    if sweep.matrix is not None:
        return math.prod(len(v) for v in sweep.matrix.axes.values()) + len(sweep.matrix.include)
    if sweep.seeds is not None:
        return sweep.seeds.count
    if sweep.random is not None:
        return sweep.random.samples
    if sweep.search is not None:
        return sweep.search.trials
    assert sweep.trials is not None
    return len(sweep.trials)


def expand(phase: Phase) -> list[SweepPoint]:
    """Distinct points in first-seen order; duplicate parameter sets collapse into one trial."""
    seen: set[str] = set()
    out: list[SweepPoint] = []
    for params in raw_points(phase.sweep):
        key = canonical_json(params)
        if key in seen:
            continue
        seen.add(key)
        out.append(SweepPoint(len(out), params, key))
    return out


PROBES = 8
"""Draws of a search space that `typical_points` checks the manifest with."""


def typical_points(phase: Phase) -> list[SweepPoint]:
    """The phase's points; for a search, the first draws of its space at random (the same every
    time): what validation evaluates skipWhen, dataset templates and inputs over."""
    search = search_of(phase)
    if search is None:
        return expand(phase)
    draws = _draws(search.space, search.seed, PROBES)
    return [SweepPoint(i, p, canonical_json(p), searched=True) for i, p in enumerate(draws)]
