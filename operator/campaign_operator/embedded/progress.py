"""Folding a trial's progress lines (JSON lines written by the trainer's reporter) into its status.

Pure functions: the runner reads new lines from the progress file and applies them here; the result
is stored together with the file offset in one transaction, so each line counts exactly once even
across runner crashes.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from campaign_operator.api.common import MetricPoint, Mode, TrialState
from campaign_operator.api.trial import HISTORY_LIMIT, BestEpoch, Trial, TrialStatus

PROGRESS_DIR = "trials"
LATE_S = 5.0


def progress_path(trial: str, attempt: int) -> str:
    """Progress file of one attempt, relative to the state dir (one file per attempt: a resumed
    attempt appends to the same file, a retry starts a new one)."""
    return f"{PROGRESS_DIR}/{trial}/attempt-{attempt}.jsonl"


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Complete lines in `data` and how many bytes they span; a torn last line waits for more."""
    end = data.rfind(b"\n") + 1
    lines = []
    for raw in data[:end].splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue  # not ours (a stray print); never fatal
        if isinstance(obj, dict):
            lines.append(obj)
    return lines, end


def finite(metrics: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[str(k)] = float(v)
    return out


def bounded(history: list[MetricPoint], limit: int = HISTORY_LIMIT) -> list[MetricPoint]:
    """At most `limit` points: the first is kept (the baseline), then the newest."""
    if len(history) <= limit:
        return history
    return [history[0], *history[-(limit - 1) :]]


def _better(value: float, than: float, mode: Mode) -> bool:
    return value < than if mode == Mode.MIN else value > than


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def apply_epoch(status: TrialStatus, line: dict[str, Any], trial: Trial) -> TrialStatus:
    epoch = int(line.get("epoch", 0))
    metrics = finite(line.get("metrics"))
    # A resumed attempt repeats the epochs after its last checkpoint: the newer report wins.
    history = [p for p in status.history if p.epoch < epoch]
    history.append(MetricPoint(epoch=epoch, metrics=metrics))
    best = status.best if status.best is not None and status.best.epoch < epoch else None
    objective = trial.spec.objective
    value = metrics.get(objective.metric)
    if best is None:
        best = _best_of(history, objective.metric, objective.mode)
    elif value is not None:
        current = best.metrics.get(objective.metric)
        if current is None or _better(value, current, objective.mode):
            best = BestEpoch(epoch=epoch, metrics=metrics)
    return status.model_copy(
        update={"epoch": epoch, "metrics": metrics, "history": bounded(history), "best": best}
    )


def _best_of(history: list[MetricPoint], metric: str, mode: Mode) -> BestEpoch | None:
    scored = [(p.metrics[metric], p) for p in history if metric in p.metrics]
    if not scored:
        return None
    pick = min if mode == Mode.MIN else max
    _, point = pick(scored, key=lambda s: s[0])
    return BestEpoch(epoch=point.epoch, metrics=point.metrics)


def apply_outcome(status: TrialStatus, line: dict[str, Any], now: datetime) -> TrialStatus:
    """The trainer's final word on an attempt; the runner's own fields (attempt, start time) stay."""
    out = line.get("status") or {}
    try:
        state = TrialState(str(out.get("state")))
    except ValueError:
        state = TrialState.FAILED
    if not state.is_terminal:
        state = TrialState.FAILED
    history = [
        MetricPoint(epoch=int(h.get("epoch", 0)), metrics=finite(h.get("metrics")))
        for h in out.get("history") or []
        if isinstance(h, dict)
    ]
    best = out.get("best")
    # The trainer stamps whole seconds; the runner's clock is finer. Its own stamp only wins when
    # the line is read late (written while no runner was watching).
    stamped = _parse_time(out.get("completionTime"))
    completion = stamped if stamped is not None and (now - stamped).total_seconds() > LATE_S else now
    update: dict[str, Any] = {
        "state": state,
        "reason": str(out.get("reason") or ("Completed" if state == TrialState.SUCCEEDED else "Unknown")),
        "message": str(out.get("message") or ""),
        "epoch": int(out.get("epoch", status.epoch) or 0),
        "metrics": finite(out.get("metrics")) or status.metrics,
        "completion_time": completion,
    }
    if history:
        # The trainer's history of a resumed attempt may start at the resume point: keep earlier epochs.
        first = history[0].epoch
        update["history"] = bounded([p for p in status.history if p.epoch < first] + history)
    if isinstance(best, dict):
        update["best"] = BestEpoch(epoch=int(best.get("epoch", 0)), metrics=finite(best.get("metrics")))
    if out.get("checkpoint"):
        update["checkpoint"] = str(out["checkpoint"])
    return status.model_copy(update=update)


def apply_lines(trial: Trial, attempt: int, lines: list[dict[str, Any]], now: datetime) -> Trial:
    """Applies lines of `attempt` to a Running trial; a trial that already ended ignores them
    (e.g. the planner stopped it and the trainer's last words arrive late)."""
    status = trial.status
    for line in lines:
        if status.state != TrialState.RUNNING or status.attempt != attempt:
            break
        kind = line.get("type")
        if kind == "epoch":
            status = apply_epoch(status, line, trial)
        elif kind == "outcome":
            status = apply_outcome(status, line, now)
    if status is trial.status:
        return trial
    return trial.model_copy(update={"status": status})


def crashed(trial: Trial, reason: str, message: str, now: datetime) -> Trial:
    """An attempt that ended without an outcome line (worker died, task raised outside the trainer)."""
    status = trial.status.model_copy(
        update={"state": TrialState.FAILED, "reason": reason, "message": message, "completion_time": now}
    )
    return trial.model_copy(update={"status": status})
