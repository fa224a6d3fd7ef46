"""Per-epoch stop-rule evaluation: a pure function of the rules and the metric history.

Same signature as the planner's ``campaign_operator.planner.stoprules.evaluate`` so the trainer and the
operator agree on one semantics (this module delegates to the planner once that lands on main).

Semantics:
* A comparison rule fires when its condition holds for ``patience`` consecutive epochs, counting only
  epochs with ``epoch > afterEpoch`` (epochs count from 1). A missing or NaN metric breaks the streak:
  an undefined value is never evidence for stopping.
* ``action: Stop`` gives state ``Stopped``, ``action: Fail`` gives ``Failed``; reason/message from the rule.
* Early stopping: no improvement by more than ``minDelta`` over the best-so-far for ``patience`` epochs
  gives state ``Succeeded`` with reason ``EarlyStopped``.
* Rules are checked in order before early stopping (an emergency stop outranks a quiet finish).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HistoryEntry = tuple[int, Mapping[str, float]]

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}


@dataclass(frozen=True)
class StopDecision:
    state: str  # "Stopped" | "Failed" | "Succeeded"
    reason: str
    message: str


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """Read a field from a dict (camelCase or snake_case keys) or a model object."""
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj and obj[name] is not None:
                return obj[name]
        elif getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return default


def _entries(history: Sequence[Any]) -> list[HistoryEntry]:
    out: list[HistoryEntry] = []
    for item in history:
        if isinstance(item, tuple | list):
            epoch, metrics = item[0], item[1]
        else:
            epoch, metrics = _get(item, "epoch"), _get(item, "metrics", default={})
        out.append((int(epoch), metrics))
    return out


def _value(metrics: Mapping[str, Any], name: str) -> float | None:
    v = metrics.get(name)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _rule_fires(rule: Any, entries: list[HistoryEntry]) -> bool:
    metric = str(_get(rule, "metric"))
    comparison = str(_get(rule, "comparison", default="<"))
    compare = _COMPARISONS.get(comparison)
    if compare is None:
        raise ValueError(f"unknown comparison {comparison!r} in stop rule on {metric!r}")
    threshold = float(_get(rule, "threshold"))
    after = int(_get(rule, "afterEpoch", "after_epoch", default=0))
    patience = max(1, int(_get(rule, "patience", default=1)))
    for streak, (epoch, metrics) in enumerate(reversed(entries), start=1):
        value = _value(metrics, metric)
        if epoch <= after or value is None or not compare(value, threshold):
            return False
        if streak >= patience:
            return True
    return False


def _early_stop(early: Any, entries: list[HistoryEntry]) -> StopDecision | None:
    metric = str(_get(early, "metric", default="val_loss"))
    mode = str(_get(early, "mode", default="min"))
    patience = int(_get(early, "patience", default=3))
    min_delta = abs(float(_get(early, "minDelta", "min_delta", default=0.0)))
    sign = -1.0 if mode == "min" else 1.0
    best: float | None = None
    best_epoch: int | None = None
    since = 0
    for epoch, metrics in entries:
        value = _value(metrics, metric)
        if value is not None and (best is None or sign * (value - best) > min_delta):
            best, best_epoch, since = value, epoch, 0
        else:
            since += 1
    if best is not None and patience > 0 and since >= patience:
        return StopDecision(
            state="Succeeded",
            reason="EarlyStopped",
            message=f"{metric} has not improved by more than {min_delta:g} for {since} epochs "
            f"(best {best:.6g} at epoch {best_epoch})",
        )
    return None


def evaluate(
    rules: Sequence[Any] | None,
    early_stopping: Any | None,
    history: Sequence[Any],
) -> StopDecision | None:
    """Decide whether the trial must end after the last epoch in ``history`` (oldest first)."""
    entries = _entries(history)
    if not entries:
        return None
    for rule in rules or ():
        if _rule_fires(rule, entries):
            action = str(_get(rule, "action", default="Stop"))
            metric = _get(rule, "metric")
            value = _value(entries[-1][1], str(metric))
            default_msg = (
                f"{metric}={value:.6g} {_get(rule, 'comparison', default='<')} "
                f"{float(_get(rule, 'threshold')):g} at epoch {entries[-1][0]}"
            )
            return StopDecision(
                state="Failed" if action.lower() == "fail" else "Stopped",
                reason=str(_get(rule, "reason", default="StopRule")),
                message=str(_get(rule, "message", default=default_msg)),
            )
    if early_stopping is not None:
        return _early_stop(early_stopping, entries)
    return None
