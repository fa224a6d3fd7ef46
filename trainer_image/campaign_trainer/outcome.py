"""A trial's result and the status shape it is reported in (the Trial CRD's ``status``, camelCase).

The trainer reports only its verdict on the attempt it ran: state, reason and message of its result,
what it measured (epoch, metrics, history, best), where it checkpointed and when it finished. The
attempt number, start time and every other state transition belong to the shell that launched it
(operator or embedded runner); a trainer that wrote them would overwrite what the shell recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Trial.status.history bound (campaign_operator.api.trial.HISTORY_LIMIT): keeps a 2,000-epoch trial
# far from etcd's object-size limit.
HISTORY_LIMIT = 100


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Only finite numbers: the status schema holds numbers and JSON has no NaN/inf.
    A missing key is how a reporter says "undefined" (the outcome's reason says why)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v):
            out[str(k)] = float(v)
    return out


def thin_indices(n: int, limit: int) -> list[int]:
    """Which of ``n`` history entries to keep, at most ``limit``: the newest half dense, the older
    ones evenly thinned; the first and the last entry always kept (the API's documented contract)."""
    if n <= limit:
        return list(range(n))
    if limit < 2:
        return [n - 1][:limit]
    recent = limit // 2
    older = limit - recent  # slots for entries 0 .. n-recent-1, evenly spaced, first included
    span = n - recent
    picks = {round(i * (span - 1) / max(1, older - 1)) for i in range(older)}
    return sorted(picks) + list(range(span, n))


def bounded_history(history: Sequence[Mapping[str, Any]], limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """At most ``limit`` entries (see ``thin_indices``), metrics made JSON-safe."""
    return [
        {"epoch": int(history[i]["epoch"]), "metrics": finite_metrics(history[i].get("metrics") or {})}
        for i in thin_indices(len(history), limit)
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
    completion_time: str | None = None
    resumed_from_epoch: int | None = None

    def to_status(self) -> dict[str, Any]:
        """The Trial status fields this outcome knows. An attempt that died before its first epoch
        knows no epoch/metrics/history: those keys are left out, so a merge patch keeps what an
        earlier attempt reported instead of wiping it."""
        status: dict[str, Any] = {"state": self.state, "reason": self.reason, "message": self.message}
        if self.history or self.epoch:
            status["epoch"] = self.epoch
            status["metrics"] = finite_metrics(self.metrics)
            status["history"] = bounded_history(self.history)
        if self.best is not None:
            status["best"] = {
                "epoch": int(self.best["epoch"]),
                "metrics": finite_metrics(self.best.get("metrics") or {}),
            }
        if self.checkpoint:
            status["checkpoint"] = self.checkpoint
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
