"""Folding a trial's progress lines (JSON lines written by the trainer's reporter) into its status.

Pure: the runner reads new lines from the progress file and applies them here with the lifecycle's
transitions; the result is stored together with the file offset in one transaction, so each line
counts exactly once even across runner crashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle import epoch_reported, outcome_reported
from campaign_operator.lifecycle.bounds import watched_metrics
from campaign_operator.lifecycle.wire import EPOCH, OUTCOME


def apply_lines(trial: Trial, attempt: int, lines: list[dict[str, Any]], now: datetime) -> Trial:
    """Applies lines of `attempt` to a Running trial; a trial that already ended ignores them
    (e.g. the planner stopped it and the trainer's last words arrive late)."""
    status = trial.status
    spec = trial.spec
    watched = watched_metrics(spec.stop_rules, spec.early_stopping, spec.keep_metrics)
    for line in lines:
        if status.state != TrialState.RUNNING or status.attempt != attempt:
            break
        kind = line.get("type")
        if kind == EPOCH:
            epoch, metrics = int(line.get("epoch", 0)), line.get("metrics") or {}
            status = epoch_reported(status, epoch, metrics, spec.objective, watched)
        elif kind == OUTCOME:
            status = outcome_reported(status, line.get("status") or {}, now, spec.objective, watched)
    if status is trial.status:
        return trial
    return trial.model_copy(update={"status": status})
