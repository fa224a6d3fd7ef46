"""Small real objects for the embedded unit tests (built with the same API models the runner uses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from campaign_operator.api.common import MetricPoint, TrialState
from campaign_operator.api.meta import ObjectMeta
from campaign_operator.api.trial import BestEpoch, Trial, TrialSpec, TrialStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def trial(
    name: str = "c-p-0001",
    phase: str = "p",
    state: TrialState = TrialState.PENDING,
    params: dict[str, Any] | None = None,
    history: list[tuple[int, dict[str, float]]] | None = None,
    **status: Any,
) -> Trial:
    points = [MetricPoint(epoch=e, metrics=m) for e, m in (history or [])]
    best = None
    if points:
        b = min(points, key=lambda p: p.metrics.get("val_loss", 0.0))
        best = BestEpoch(epoch=b.epoch, metrics=b.metrics)
    return Trial(
        metadata=ObjectMeta(name=name),
        spec=TrialSpec(campaign="c", phase=phase, task="regression", parameters=params or {}, epochs=3),
        status=TrialStatus(
            state=state,
            history=points,
            metrics=points[-1].metrics if points else {},
            epoch=points[-1].epoch if points else 0,
            best=best,
            **status,
        ),
    )


def finished(name: str, phase: str, state: TrialState, seconds: float = 10.0, **kw: Any) -> Trial:
    return trial(
        name, phase, state, start_time=T0, completion_time=T0 + timedelta(seconds=seconds), attempt=1, **kw
    )
