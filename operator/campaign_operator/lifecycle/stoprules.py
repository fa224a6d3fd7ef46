"""Stop-rule decisions from reported metrics (part of the lifecycle contract: no planner, no CEL).

One pure function used in two places: the trainer evaluates it every epoch, and the planner
evaluates it over a Trial's reported history as a backstop (a trainer that cannot stop itself).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from campaign_operator.api.common import (
    Comparison,
    EarlyStopping,
    MetricPoint,
    Mode,
    StopAction,
    StopRule,
    TrialState,
)

_COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
}

EARLY_STOPPED = "EarlyStopped"


@dataclass(frozen=True)
class StopDecision:
    state: TrialState
    reason: str
    message: str
    epoch: int


def _as_points(history: Sequence[MetricPoint | tuple[int, Mapping[str, float]]]) -> list[MetricPoint]:
    return [h if isinstance(h, MetricPoint) else MetricPoint(epoch=h[0], metrics=dict(h[1])) for h in history]


def _rule_fires(rule: StopRule, points: list[MetricPoint]) -> MetricPoint | None:
    streak = 0
    for point in points:
        value = point.metrics.get(rule.metric)
        if point.epoch <= rule.after_epoch or value is None or math.isnan(value):
            streak = 0
            continue
        streak = streak + 1 if _COMPARE[rule.comparison](value, rule.threshold) else 0
        if streak >= rule.patience:
            return point
    return None


def _early_stop(early: EarlyStopping, points: list[MetricPoint]) -> MetricPoint | None:
    best: float | None = None
    since = 0
    for point in points:
        value = point.metrics.get(early.metric)
        if value is None or math.isnan(value):
            continue
        improved = best is None or (
            value < best - early.min_delta if early.mode == Mode.MIN else value > best + early.min_delta
        )
        if improved:
            best, since = value, 0
        else:
            since += 1
            if since >= early.patience:
                return point
    return None


def evaluate(
    rules: Sequence[StopRule],
    early_stopping: EarlyStopping | None,
    history: Sequence[MetricPoint | tuple[int, Mapping[str, float]]],
) -> StopDecision | None:
    """The first decision the history calls for, or None to keep training.

    Comparison rules fire once `metric <comparison> threshold` held for `patience` consecutive
    epochs after `afterEpoch`; a Stop rule ends the trial Stopped, a Fail rule ends it Failed.
    Early stopping ends it Succeeded (EarlyStopped) after `patience` epochs without improvement.
    When several apply, the one reached at the earliest epoch wins; rules beat early stopping.
    """
    points = sorted(_as_points(history), key=lambda p: p.epoch)
    decisions: list[StopDecision] = []
    for rule in rules:
        hit = _rule_fires(rule, points)
        if hit is not None:
            value = hit.metrics[rule.metric]
            detail = (
                f"{rule.metric}={value:.4g} {rule.comparison.value} {rule.threshold:g}"
                f" for {rule.patience} epoch(s) after epoch {rule.after_epoch}"
            )
            state = TrialState.FAILED if rule.action == StopAction.FAIL else TrialState.STOPPED
            message = f"{rule.message}: {detail}" if rule.message else detail
            decisions.append(StopDecision(state, rule.reason, message, hit.epoch))
    if early_stopping is not None:
        hit = _early_stop(early_stopping, points)
        if hit is not None:
            decisions.append(
                StopDecision(
                    TrialState.SUCCEEDED,
                    EARLY_STOPPED,
                    f"{early_stopping.metric} did not improve for {early_stopping.patience} epoch(s)",
                    hit.epoch,
                )
            )
    if not decisions:
        return None
    return min(decisions, key=lambda d: (d.epoch, d.state == TrialState.SUCCEEDED))
