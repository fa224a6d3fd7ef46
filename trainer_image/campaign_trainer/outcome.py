"""A trial's result and the status shape it is reported in (the Trial CRD's ``status``, camelCase).

The trainer reports only its verdict on the attempt it ran: state, reason and message of its result,
what it measured (epoch, metrics, history, best), where it checkpointed and when it finished. The
attempt number, start time and every other state transition belong to the shell that launched it
(operator or embedded runner); a trainer that wrote them would overwrite what the shell recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from campaign_operator.api.trial import HISTORY_LIMIT
from campaign_operator.lifecycle.bounds import bounded, select_metrics
from campaign_operator.lifecycle.wire import finite_metrics

__all__ = [
    "HISTORY_LIMIT",
    "Outcome",
    "bounded_history",
    "bounded_metrics",
    "error_message",
    "failure",
    "finite_metrics",
    "now_rfc3339",
]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bounded_metrics(metrics: Mapping[str, Any] | None, first: Sequence[str] = ()) -> dict[str, float]:
    """The finite metrics; given `first` (the objective, the watched metrics), at most the
    lifecycle's METRICS_LIMIT of them: those, then by name, as the shells keep them
    (`bounds.select_metrics`). Without `first` all of them: only the shells know the objective."""
    finite = finite_metrics(metrics)
    return select_metrics(finite, first)[0] if first else finite


def bounded_history(
    history: Sequence[Mapping[str, Any]], limit: int = HISTORY_LIMIT, first: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The lifecycle's history bound (first and last kept, the middle thinned), metrics made JSON-safe
    and bounded as `bounded_metrics`."""
    return [
        {"epoch": int(h["epoch"]), "metrics": bounded_metrics(h.get("metrics"), first)}
        for h in bounded(history, limit)
    ]


@dataclass
class Outcome:
    trial: str
    state: str  # Succeeded | Failed | Stopped
    reason: str
    message: str = ""
    epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None  # {"epoch": int, "metrics": {...}}
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None
    outputs: str | None = None
    """URI of the published outputs directory (its model, its predictions); set only when the
    trial ended with a usable model (Succeeded, or Stopped by a stop rule or early stopping)."""
    completion_time: str | None = None
    resumed_from_epoch: int | None = None
    keep_first: tuple[str, ...] = ()
    """The objective and the watched metrics (`bounds.watched_metrics`), set by the harness: then
    the outcome's metrics are bounded as the shells bound them, so a wide task's outcome line stays
    small too. Empty: left to the shells (none is dropped here)."""

    def to_status(self) -> dict[str, Any]:
        """The Trial status fields this outcome knows. An attempt that died before its first epoch
        knows no epoch/metrics/history: those keys are left out, so a merge patch keeps what an
        earlier attempt reported instead of wiping it."""
        status: dict[str, Any] = {"state": self.state, "reason": self.reason, "message": self.message}
        first = self.keep_first
        if self.history or self.epoch:
            status["epoch"] = self.epoch
            status["metrics"] = bounded_metrics(self.metrics, first)
            status["history"] = bounded_history(self.history, first=first)
        if self.best is not None:
            status["best"] = {
                "epoch": int(self.best["epoch"]),
                "metrics": bounded_metrics(self.best.get("metrics"), first),
            }
        if self.checkpoint:
            status["checkpoint"] = self.checkpoint
        if self.outputs:
            status["outputs"] = self.outputs
        if self.completion_time:
            status["completionTime"] = self.completion_time
        return status


def failure(trial: str, exc: BaseException, *, reason: str = "TaskError") -> Outcome:
    """The outcome of a crash: exception type plus a short preview of its message."""
    return Outcome(
        trial=trial, state="Failed", reason=reason, message=error_message(exc), completion_time=now_rfc3339()
    )


def error_message(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
