"""metav1.Condition bookkeeping: lastTransitionTime moves only when status changes."""

from __future__ import annotations

from datetime import datetime

from campaign_operator.api.common import Condition, ConditionStatus


def set_condition(
    existing: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    previous = next((c for c in existing if c.type == type_), None)
    transition = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=transition,
    )
    return [c for c in existing if c.type != type_] + [updated]
