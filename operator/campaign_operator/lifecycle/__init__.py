"""The trial lifecycle contract: the one module the shells (operator, embedded runner) and the
trainer share, and nothing heavier than the api (no planner, no CEL, no Kubernetes client).

* `transitions`: a trial status's pure transitions (launched, epoch reported, outcome reported, job
  ended, finished) and the rules on measurements (finite metrics, best epoch, MetricsUnavailable).
* `bounds`: what a status holds at most (metrics per report, name length, bytes, history, the
  campaign's copy of a best epoch) and how a report over a bound degrades.
* `outcomes`: how KubeRay's, Ray's and local Ray's view of an attempt becomes an outcome.
* `stoprules`: the per-epoch stop-rule decision (the trainer's, and the planner's backstop).
* `wire`: resource names, the trial's environment variable, the progress-line schema, a job's
  identity, merge patches that replace.
* `retry`: how the operator's client and the trainer's reporter retry the apiserver.
"""

from .bounds import bounded
from .outcomes import JobOutcome
from .transitions import (
    METRICS_UNAVAILABLE,
    best_of,
    epoch_reported,
    finished,
    is_better,
    job_ended,
    launched,
    outcome_reported,
)
from .wire import finite_metrics

__all__ = [
    "METRICS_UNAVAILABLE",
    "JobOutcome",
    "best_of",
    "bounded",
    "epoch_reported",
    "finished",
    "finite_metrics",
    "is_better",
    "job_ended",
    "launched",
    "outcome_reported",
]
