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
from typing import Any

from campaign_operator.api.base import MESSAGE_BUDGET
from campaign_operator.api.base import bounded as bounded_text
from campaign_operator.api.common import MetricPoint, Mode, Objective, TrialState
from campaign_operator.api.trial import BestEpoch, ExecutorRef, TrialStatus

from .bounds import bounded, dropped_warning, fit, select_metrics, warned
from .outcomes import JobOutcome
from .stoprules import StopDecision
from .wire import finite_metrics

OUTPUTS_USABLE = (TrialState.SUCCEEDED, TrialState.STOPPED)
"""Verdicts whose outputs (status.outputs) a later phase may consume: trained to the end, or stopped
by a stop rule or early stopping with a model as good as its best epoch allowed."""
LATE_S = 5.0
"""An outcome read this much later than the trainer stamped it keeps the trainer's stamp."""
LAUNCHED = "Launched"
COMPLETED = "Completed"
METRICS_UNAVAILABLE = "MetricsUnavailable"
"""A trial that finished (its trainer said Succeeded) without ever reporting a finite value of its
objective metric: Failed, as Katib's MetricsUnavailable, and counted in the phase's failure rate. Not
retried: the same task with the same parameters reports the same metric names again."""


# -- the trainer/shell contract on measurements ----------------------------------------------------
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
    status: TrialStatus,
    epoch: int,
    metrics: Mapping[str, Any],
    objective: Objective,
    watched: Sequence[str] = (),
) -> TrialStatus:
    """The trainer finished an epoch. A resumed attempt repeats the epochs after its checkpoint:
    the newer report replaces them (and a best epoch among them).

    Bounded (`bounds`): at most METRICS_LIMIT metrics, the objective and the `watched` ones (the
    stop rules' metrics) first; what is dropped is named in a MetricsDropped warning; the history
    is thinned to stay within the status's byte bound."""
    finite = finite_metrics(metrics)
    clean, dropped = select_metrics(finite, (objective.metric, *watched), status.metrics.keys())
    history = bounded(
        [p for p in status.history if p.epoch < epoch] + [MetricPoint(epoch=epoch, metrics=clean)]
    )
    best = status.best if status.best is not None and status.best.epoch < epoch else None
    value = clean.get(objective.metric)
    if best is None:
        best = best_of(history, objective)
    elif value is not None and is_better(value, best.metrics.get(objective.metric), objective.mode):
        best = BestEpoch(epoch=epoch, metrics=clean)
    new = status.model_copy(update={"epoch": epoch, "metrics": clean, "history": history, "best": best})
    if dropped:
        new = warned(new, dropped_warning(epoch, len(finite), dropped))
    return fit(new)


def outcome_reported(
    status: TrialStatus,
    outcome: Mapping[str, Any],
    now: datetime,
    objective: Objective,
    watched: Sequence[str] = (),
) -> TrialStatus:
    """The trainer's verdict (its outcome in status wire form); a non-terminal or unknown state is
    a failure, and so is a success without the objective metric (MetricsUnavailable). The shell's
    own fields (attempt, start time, executor) stay. Bounded as `epoch_reported`."""
    try:
        state = TrialState(str(outcome.get("state")))
    except ValueError:
        state = TrialState.FAILED
    if not state.is_terminal:
        state = TrialState.FAILED
    first = (objective.metric, *watched)

    def kept(metrics: Any) -> dict[str, float]:
        return select_metrics(finite_metrics(metrics), first, status.metrics.keys())[0]

    update: dict[str, Any] = {
        "state": state,
        "reason": str(outcome.get("reason") or (COMPLETED if state == TrialState.SUCCEEDED else "Unknown")),
        "message": str(outcome.get("message") or ""),
        "completion_time": _completion(outcome.get("completionTime"), now),
    }
    dropped: tuple[int, list[str]] | None = None
    if "epoch" in outcome:  # an attempt that died before its first epoch measured nothing
        update["epoch"] = int(outcome["epoch"] or 0)
        finite = finite_metrics(outcome.get("metrics"))
        metrics, names = select_metrics(finite, first, status.metrics.keys())
        update["metrics"] = metrics or status.metrics
        dropped = (len(finite), names) if names else None
    history = [
        MetricPoint(epoch=int(h.get("epoch", 0)), metrics=kept(h.get("metrics")))
        for h in outcome.get("history") or []
        if isinstance(h, Mapping)
    ]
    if history:  # a resumed attempt's history may start at the resume point: earlier epochs stay
        first_epoch = history[0].epoch
        update["history"] = bounded([p for p in status.history if p.epoch < first_epoch] + history)
    best = outcome.get("best")
    if isinstance(best, Mapping):
        update["best"] = BestEpoch(epoch=int(best.get("epoch", 0)), metrics=kept(best.get("metrics")))
    if outcome.get("checkpoint"):
        update["checkpoint"] = str(outcome["checkpoint"])
    if outcome.get("outputs") and state in OUTPUTS_USABLE:
        update["outputs"] = str(outcome["outputs"])
    new = status.model_copy(update=update)
    if dropped is not None:
        new = warned(new, dropped_warning(new.epoch, *dropped))
    if new.state == TrialState.SUCCEEDED and not reported_objective(new, objective):
        new = new.model_copy(
            update={
                "state": TrialState.FAILED,
                "reason": METRICS_UNAVAILABLE,
                "message": metrics_unavailable(objective.metric, new.epoch, new.metrics),
                "outputs": None,  # a failed trial's outputs are nobody's input
            }
        )
    return fit(new)


def reported_objective(status: TrialStatus, objective: Objective) -> bool:
    """Whether any epoch the status holds has a (finite) value of the objective metric."""
    m = objective.metric
    return (
        (status.best is not None and m in status.best.metrics)
        or m in status.metrics
        or any(m in p.metrics for p in status.history)
    )


def metrics_unavailable(metric: str, epochs: int, reported: Mapping[str, Any] | Sequence[str]) -> str:
    """The MetricsUnavailable message: which metric is missing, and what was reported instead."""
    names = sorted(reported)
    shown = ", ".join(bounded_text(k, 40) for k in names[:8]) + (
        f" and {len(names) - 8} more" if len(names) > 8 else ""
    )
    said = f"it reported {shown}" if names else "it reported no metrics"
    return bounded_text(
        f"the trainer finished ({epochs} epochs) but never reported a finite value of the objective"
        f" metric {metric}; {said}: check spec.objective.metric against the metrics the task logs",
        MESSAGE_BUDGET,
    )


def training_verdict(
    decision: StopDecision | None,
    objective_reported: bool,
    epoch: int,
    epochs: int,
    last_metrics: Mapping[str, Any],
    objective_metric: str,
) -> StopDecision:
    """How a training that ran to its end (or to a stop decision) ends: the decision when one was
    taken; else Failed/MetricsUnavailable when the objective never had a finite value; else
    Succeeded/Completed. The trainer's harness and its seed ensembles both judge by this."""
    if decision is not None:
        return decision
    if not objective_reported:
        message = metrics_unavailable(objective_metric, epoch, last_metrics)
        return StopDecision(TrialState.FAILED, METRICS_UNAVAILABLE, message, epoch)
    return StopDecision(TrialState.SUCCEEDED, COMPLETED, f"trained {epoch} of {epochs} epochs", epoch)


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
