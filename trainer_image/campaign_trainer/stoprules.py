"""Per-epoch stop-rule evaluation: the lifecycle contract's pure ``evaluate`` (one semantics for the
trainer, which stops a trial, and the planner, which double-checks reported history).

Semantics (campaign_operator.lifecycle.stoprules): a comparison rule fires once its condition held for
``patience`` consecutive epochs with ``epoch > afterEpoch``; a missing/NaN value breaks the streak.
Stop -> Stopped, Fail -> Failed. Early stopping: ``patience`` epochs without an improvement larger
than ``minDelta`` -> Succeeded/EarlyStopped. Rules outrank early stopping at the same epoch.
This wrapper accepts rules as API models or as wire-form mappings, history as ``(epoch, metrics)``
pairs or ``{"epoch", "metrics"}`` mappings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from campaign_operator.api.common import EarlyStopping, StopRule
from campaign_operator.lifecycle import stoprules as lifecycle_stoprules
from campaign_operator.lifecycle.stoprules import StopDecision

__all__ = ["StopDecision", "evaluate"]


def as_rule(rule: StopRule | Mapping[str, Any]) -> StopRule:
    return rule if isinstance(rule, StopRule) else StopRule.model_validate(rule)


def as_early_stopping(early: EarlyStopping | Mapping[str, Any] | None) -> EarlyStopping | None:
    if early is None or isinstance(early, EarlyStopping):
        return early
    return EarlyStopping.model_validate(early)


def _pair(item: Any) -> tuple[int, Mapping[str, float]]:
    if isinstance(item, Mapping):
        return int(item["epoch"]), item.get("metrics") or {}
    return int(item[0]), item[1]


def evaluate(
    rules: Sequence[StopRule | Mapping[str, Any]] | None,
    early_stopping: EarlyStopping | Mapping[str, Any] | None,
    history: Sequence[Any],
) -> StopDecision | None:
    """Decide whether the trial ends after the newest epoch in ``history``."""
    if not history:
        return None
    return lifecycle_stoprules.evaluate(
        [as_rule(r) for r in rules or ()],
        as_early_stopping(early_stopping),
        [_pair(h) for h in history],
    )
