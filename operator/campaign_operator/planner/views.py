"""Phase aggregates: best trial, metric statistics and the CEL view that gates and `when` read."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Iterable
from typing import Any

from campaign_operator.api.campaign import BestTrial, PhaseStatus
from campaign_operator.api.common import Mode, TrialState
from campaign_operator.api.trial import Trial

from .expressions import DOUBLE, DYN, INT, STRING, CelType, map_of, record

STAT_FIELDS = ("min", "max", "mean", "std", "count")
"""What `metrics.<name>` holds in a phase view."""


def final_metrics(trial: Trial) -> dict[str, float]:
    """A finished trial's metrics at its best epoch (by its objective), else its latest."""
    if trial.status.best is not None and trial.status.best.metrics:
        return trial.status.best.metrics
    return trial.status.metrics


def best_trial(trials: Iterable[Trial], metric: str, mode: Mode) -> BestTrial | None:
    """Best Succeeded trial by metric; ties go to the smaller name so the choice is stable."""
    candidates = []
    for t in trials:
        if t.status.state != TrialState.SUCCEEDED:
            continue
        value = final_metrics(t).get(metric)
        if value is None or math.isnan(value):
            continue
        candidates.append((value if mode == Mode.MIN else -value, t.name, t, value))
    if not candidates:
        return None
    _, _, trial, value = min(candidates, key=lambda c: (c[0], c[1]))
    return BestTrial(
        trial=trial.name,
        metric=metric,
        value=value,
        parameters=trial.spec.parameters,
        metrics=final_metrics(trial),
    )


def metric_stats(trials: Iterable[Trial]) -> dict[str, dict[str, float]]:
    """min/max/mean/std/count of each metric over Succeeded trials (std is the sample std)."""
    values: dict[str, list[float]] = {}
    for t in trials:
        if t.status.state != TrialState.SUCCEEDED:
            continue
        for k, v in final_metrics(t).items():
            if not math.isnan(v):
                values.setdefault(k, []).append(v)
    return {
        k: {
            "min": min(vs),
            "max": max(vs),
            "mean": statistics.fmean(vs),
            "std": statistics.stdev(vs) if len(vs) > 1 else 0.0,
            "count": float(len(vs)),
        }
        for k, vs in values.items()
    }


def phase_view(status: PhaseStatus, trials: list[Trial]) -> dict[str, Any]:
    """What `phase` (gate) and `phases.<name>` (when) mean in CEL."""
    c = status.counts
    view: dict[str, Any] = {
        "name": status.name,
        "state": status.state.value,
        "total": c.total,
        "succeeded": c.succeeded,
        "failed": c.failed,
        "stopped": c.stopped,
        "skipped": c.skipped,
        "failureRate": float(status.failure_rate),
        "metrics": metric_stats(trials),
    }
    if status.best is not None:
        view["best"] = {
            "trial": status.best.trial,
            "metric": status.best.metric,
            "value": float(status.best.value),
            "metrics": {k: float(v) for k, v in status.best.metrics.items()},
            "parameters": status.best.parameters,
        }
    return view


UnknownKey = Callable[[str, str], tuple[str, bool]]


def phase_view_type(
    metrics: Collection[str] | None = None,
    unknown_metric: UnknownKey | None = None,
    parameters: Collection[str] | None = None,
) -> CelType:
    """The shape of `phase_view`'s result, for checking gates and `when` before anything runs.

    metrics: the metric names the phase's trials can report (None: any), with `unknown_metric`
    wording the problem for another name; parameters: the parameter names of its trials.
    """
    stats = record({k: DOUBLE for k in STAT_FIELDS})
    best = record(
        {
            "trial": STRING,
            "metric": STRING,
            "value": DOUBLE,
            "metrics": map_of(DOUBLE, metrics, unknown_metric),
            "parameters": map_of(DYN, parameters),
        }
    )
    return record(
        {
            "name": STRING,
            "state": STRING,
            "total": INT,
            "succeeded": INT,
            "failed": INT,
            "stopped": INT,
            "skipped": INT,
            "failureRate": DOUBLE,
            "metrics": map_of(stats, metrics, unknown_metric),
            "best": best,
        },
        optional=("best",),
    )
