"""Phase aggregates: best trial, metric statistics and the CEL view that gates and `when` read."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from campaign_operator.api.campaign import BestTrial, FrontTrial, PhaseStatus, TrainingCampaign
from campaign_operator.api.common import Mode, TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle.bounds import best_metrics

from .expressions import DOUBLE, DYN, INT, STRING, CelType, map_of, record

STAT_FIELDS = ("min", "max", "mean", "std", "count")
"""What `metrics.<name>` holds in a phase view."""


def final_metrics(trial: Trial) -> dict[str, float]:
    """A finished trial's metrics at its best epoch (by its objective), else its latest."""
    if trial.status.best is not None and trial.status.best.metrics:
        return trial.status.best.metrics
    return trial.status.metrics


_METRIC_REFERENCE = re.compile(r"""metrics\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(["'])(.*?)\2\s*\])""")


def expression_metrics(campaign: TrainingCampaign) -> tuple[str, ...]:
    """The metric names the campaign's gates and `when`s read (`...metrics.NAME`, `metrics["NAME"]`)
    and its promotions rank by: what a phase's best keeps in the campaign status after its ranking
    metric, and what every Trial's reports keep after its objective and stop rules (keepMetrics)."""
    texts = [p.gate.expression for p in campaign.spec.phases if p.gate] + [
        p.when for p in campaign.spec.phases if p.when
    ]
    names = [m.group(1) or m.group(3) for text in texts for m in _METRIC_REFERENCE.finditer(text)]
    names += [p.from_phase.metric for p in campaign.spec.phases if p.from_phase and p.from_phase.metric]
    names += [o.metric for p in campaign.spec.phases for o in p.objectives or ()]
    return tuple(dict.fromkeys(n for n in names if n))


def best_trial(
    trials: Iterable[Trial], metric: str, mode: Mode, keep: Sequence[str] = ()
) -> BestTrial | None:
    """Best Succeeded trial by metric; ties go to the smaller name so the choice is stable. Its
    metrics are bounded (`bounds.best_metrics`: the ranking metric, `keep`, then by name): the
    campaign status holds one per phase, the Trial all of them."""
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
        metrics=best_metrics(final_metrics(trial), metric, keep),
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


def phase_view(
    status: PhaseStatus, trials: list[Trial], front: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What `phase` (gate) and `phases.<name>` (when) mean in CEL. `best.metrics` holds every metric
    of the best Trial's best epoch, not the bounded copy in the campaign status; `front` (a
    multi-objective phase's, pareto.front_view) is the whole front, not status.front."""
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
            "metrics": {k: float(v) for k, v in _best_epoch_metrics(status.best, trials).items()},
            "parameters": status.best.parameters,
        }
    if front is not None:
        view["front"] = front
    return view


def _best_epoch_metrics(best: BestTrial, trials: list[Trial]) -> dict[str, float]:
    trial = next((t for t in trials if t.name == best.trial), None)
    return final_metrics(trial) if trial is not None else best.metrics


def gate_values(
    view: dict[str, Any], best: BestTrial | None, front: list[FrontTrial] | None = None
) -> dict[str, Any]:
    """What a gate's status records of the view it was evaluated with: no per-metric statistics,
    the best trial's metrics as bounded as status.best's, the front as bounded as status.front."""
    values = {k: v for k, v in view.items() if k != "metrics"}
    if best is not None and "best" in values:
        values["best"] = {**values["best"], "metrics": dict(best.metrics)}
    if front is not None and "front" in values:
        values["front"] = [{"trial": t.trial, **t.values} for t in front]
    return values


UnknownKey = Callable[[str, str], tuple[str, bool]]


def phase_view_type(
    metrics: Collection[str] | None = None,
    unknown_metric: UnknownKey | None = None,
    parameters: Collection[str] | None = None,
    objectives: Sequence[str] = (),
) -> CelType:
    """The shape of `phase_view`'s result, for checking gates and `when` before anything runs.

    metrics: the metric names the phase's trials can report (None: any), with `unknown_metric`
    wording the problem for another name; parameters: the parameter names of its trials;
    objectives: a multi-objective phase's objective metrics (its view then has `front`).
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
    fields = {
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
    }
    if objectives:
        fields["front"] = CelType(
            "list", values=front_entry_type(objectives, metrics, unknown_metric, parameters)
        )
    return record(fields, optional=("best",))


FRONT_ENTRY_FIELDS = ("trial", "metrics", "parameters")
"""What a front entry holds besides its objectives' values (so no objective may be named so)."""


def front_entry_type(
    objectives: Sequence[str],
    metrics: Collection[str] | None,
    unknown_metric: UnknownKey | None,
    parameters: Collection[str] | None,
) -> CelType:
    """One entry of `phase.front`: the trial's name, each objective's value, all its metrics at its
    best epoch and its parameters, e.g. `phase.front.exists(t, t.sharpe > 0.1 && t.drawdown < 0.2)`."""
    entry = record(
        {
            "trial": STRING,
            **{m: DOUBLE for m in objectives},
            "metrics": map_of(DOUBLE, metrics, unknown_metric),
            "parameters": map_of(DYN, parameters),
        }
    )
    return entry.named("phase.front[]")
