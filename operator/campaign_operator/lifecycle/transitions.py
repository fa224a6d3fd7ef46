"""A trial's status transitions, as pure functions of (status, event) -> status.

Every shell applies the same ones: the operator writes the result as a guarded patch, the embedded
runner stores it, the trainer reports with the epoch and outcome transitions. Ownership: the shells
own the lifecycle (state, attempt, startTime, executorRef); the trainer only measures (epoch,
metrics, history, best, checkpoint) and gives its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from campaign_operator.api.common import MetricPoint, Mode, Objective, TrialState
from campaign_operator.api.trial import HISTORY_LIMIT, BestEpoch, ExecutorRef, TrialStatus

from .outcomes import JobOutcome
from .wire import finite_metrics

LATE_S = 5.0
"""An outcome read this much later than the trainer stamped it keeps the trainer's stamp."""
LAUNCHED = "Launched"
COMPLETED = "Completed"

T = TypeVar("T")


# -- the trainer/shell contract on measurements ----------------------------------------------------
def thin_indices(n: int, limit: int) -> list[int]:
    """Which of `n` history entries to keep, at most `limit`: the newest half dense, the older ones
    evenly thinned; the first and the last entry always kept (the API's documented contract)."""
    if n <= limit:
        return list(range(n))
    if limit < 2:
        return [n - 1][:limit]
    recent = limit // 2
    older = limit - recent  # slots for entries 0 .. n-recent-1, evenly spaced, first included
    span = n - recent
    picks = {round(i * (span - 1) / max(1, older - 1)) for i in range(older)}
    return sorted(picks) + list(range(span, n))


def bounded(history: Sequence[T], limit: int = HISTORY_LIMIT) -> list[T]:
    """At most `limit` entries of a history, chosen by `thin_indices`."""
    return [history[i] for i in thin_indices(len(history), limit)]


def is_better(value: float, than: float | None, mode: Mode | str) -> bool:
    """Strictly better by the objective's mode (a tie keeps the earlier epoch; NaN never is)."""
    if math.isnan(value):
        return False
    if than is None:
        return True
    return value < than if mode == Mode.MIN else value > than


def best_of(history: Sequence[MetricPoint], objective: Objective) -> BestEpoch | None:
    best: MetricPoint | None = None
    for point in history:
        value = point.metrics.get(objective.metric)
        if value is not None and is_better(
            value, None if best is None else best.metrics[objective.metric], objective.mode
        ):
            best = point
    return None if best is None else BestEpoch(epoch=best.epoch, metrics=best.metrics)


# -- transitions -----------------------------------------------------------------------------------
def launched(status: TrialStatus, attempt: int, ref: ExecutorRef, now: datetime) -> TrialStatus:
    """An attempt started. What earlier attempts measured stays (a retry resumes from the trial's
    checkpoint, and its first report replaces every epoch from there on); their verdict goes."""
    return status.model_copy(
        update={
            "state": TrialState.RUNNING,
            "attempt": attempt,
            "executor_ref": ref,
            "reason": LAUNCHED,
            "message": f"attempt {attempt}: job {ref.name}",
            "start_time": now,
            "completion_time": None,
        }
    )


def epoch_reported(
    status: TrialStatus, epoch: int, metrics: Mapping[str, Any], objective: Objective
) -> TrialStatus:
    """The trainer finished an epoch. A resumed attempt repeats the epochs after its checkpoint:
    the newer report replaces them (and a best epoch among them)."""
    clean = finite_metrics(metrics)
    history = bounded(
        [p for p in status.history if p.epoch < epoch] + [MetricPoint(epoch=epoch, metrics=clean)]
    )
    best = status.best if status.best is not None and status.best.epoch < epoch else None
    value = clean.get(objective.metric)
    if best is None:
        best = best_of(history, objective)
    elif value is not None and is_better(value, best.metrics.get(objective.metric), objective.mode):
        best = BestEpoch(epoch=epoch, metrics=clean)
    return status.model_copy(update={"epoch": epoch, "metrics": clean, "history": history, "best": best})


def outcome_reported(status: TrialStatus, outcome: Mapping[str, Any], now: datetime) -> TrialStatus:
    """The trainer's verdict (its outcome in status wire form); a non-terminal or unknown state is
    a failure. The shell's own fields (attempt, start time, executor) stay."""
    try:
        state = TrialState(str(outcome.get("state")))
    except ValueError:
        state = TrialState.FAILED
    if not state.is_terminal:
        state = TrialState.FAILED
    update: dict[str, Any] = {
        "state": state,
        "reason": str(outcome.get("reason") or (COMPLETED if state == TrialState.SUCCEEDED else "Unknown")),
        "message": str(outcome.get("message") or ""),
        "completion_time": _completion(outcome.get("completionTime"), now),
    }
    if "epoch" in outcome:  # an attempt that died before its first epoch measured nothing
        update["epoch"] = int(outcome["epoch"] or 0)
        update["metrics"] = finite_metrics(outcome.get("metrics")) or status.metrics
    history = [
        MetricPoint(epoch=int(h.get("epoch", 0)), metrics=finite_metrics(h.get("metrics")))
        for h in outcome.get("history") or []
        if isinstance(h, Mapping)
    ]
    if history:  # a resumed attempt's history may start at the resume point: earlier epochs stay
        first = history[0].epoch
        update["history"] = bounded([p for p in status.history if p.epoch < first] + history)
    best = outcome.get("best")
    if isinstance(best, Mapping):
        update["best"] = BestEpoch(
            epoch=int(best.get("epoch", 0)), metrics=finite_metrics(best.get("metrics"))
        )
    if outcome.get("checkpoint"):
        update["checkpoint"] = str(outcome["checkpoint"])
    return status.model_copy(update=update)


def job_ended(status: TrialStatus, outcome: JobOutcome, now: datetime) -> TrialStatus:
    """The job system's word on an attempt the trainer gave no verdict for; a non-terminal outcome
    (e.g. Kueue suspended the job) only explains why the trial waits."""
    update: dict[str, Any] = {"reason": outcome.reason, "message": outcome.message}
    if outcome.state.is_terminal:
        update |= {"state": outcome.state, "completion_time": now}
    return status.model_copy(update=update)


def finished(status: TrialStatus, state: TrialState, reason: str, message: str, now: datetime) -> TrialStatus:
    """The planner ended the trial (skipped, cancelled, stopped by a rule, failed fast)."""
    return status.model_copy(
        update={"state": state, "reason": reason, "message": message, "completion_time": now}
    )


def attempt_over(status: TrialStatus, attempt: int) -> bool:
    """Whether `attempt`'s job has nothing left to do: the trial runs another attempt, or ended.

    The next attempt of a trial waiting to be (re)launched is not over: its job may have been
    submitted just before a crash, and the repeated launch adopts it."""
    if status.state == TrialState.RUNNING:
        return attempt != status.attempt
    if status.state in (TrialState.PENDING, TrialState.FAILED):  # may still launch attempt + 1
        return attempt != status.attempt + 1
    return True


def _completion(stamp: Any, now: datetime) -> datetime:
    # The trainer stamps whole seconds; the shell's clock is finer. The trainer's stamp only wins
    # when the verdict is read late (written while no shell was watching).
    if not isinstance(stamp, str):
        return now
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return now
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t if (now - t).total_seconds() > LATE_S else now
