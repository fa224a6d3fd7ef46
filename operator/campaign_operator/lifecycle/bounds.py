"""The bounds on what a trial reports: how many metrics, how long their names, how many bytes its
status takes, how many epochs its history keeps, and how much of its best epoch a campaign's status
copies. The transitions apply them, so the operator, the embedded runner and the trainer's reporter
record the same bounded status, whatever a task reports; the numbers live with the API models whose
CRD schemas and descriptions state them.

A report over a bound degrades instead of failing: extra metrics are dropped (named in a
MetricsDropped warning), an oversized history is thinned further (a HistoryTrimmed warning). A status
write that cannot fit would lose the trainer's outcome, which is worth more than any metric.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from campaign_operator.api.base import MESSAGE_BUDGET
from campaign_operator.api.base import bounded as bounded_text
from campaign_operator.api.campaign import BEST_METRICS_LIMIT
from campaign_operator.api.common import METRIC_NAME_MAX_LENGTH, METRICS_LIMIT, EarlyStopping, StopRule
from campaign_operator.api.trial import (
    HISTORY_LIMIT,
    STATUS_BYTES_LIMIT,
    WARNINGS_LIMIT,
    TrialStatus,
    TrialWarning,
)

__all__ = [
    "BEST_METRICS_LIMIT",
    "HISTORY_LIMIT",
    "HISTORY_TRIMMED",
    "METRICS_DROPPED",
    "METRICS_LIMIT",
    "METRIC_NAME_MAX_LENGTH",
    "STATUS_BYTES_LIMIT",
    "WARNINGS_LIMIT",
    "bounded",
    "fit",
    "select_metrics",
    "status_bytes",
    "thin_indices",
    "warned",
    "watched_metrics",
]

METRICS_DROPPED = "MetricsDropped"
HISTORY_TRIMMED = "HistoryTrimmed"
NAMES_SHOWN = 8
"""Dropped metric names a warning quotes (then "and N more")."""
NAME_SHOWN = 40
"""Characters of each quoted name."""
_SLACK = 64  # bytes a warning's numbers may still grow by once the history is chosen

T = TypeVar("T")


# -- history by count ------------------------------------------------------------------------------
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


# -- metrics per report ----------------------------------------------------------------------------
def watched_metrics(
    stop_rules: Iterable[StopRule], early_stopping: EarlyStopping | None, keep: Iterable[str] = ()
) -> tuple[str, ...]:
    """The metrics kept right after the objective: those a trial's stop rules and early stopping
    read (so the planner's stop-rule backstop sees them in the status), then `keep` (the Trial's
    spec.keepMetrics: what the campaign's gates, whens and promotions read)."""
    names = [r.metric for r in stop_rules] + ([early_stopping.metric] if early_stopping else [])
    return tuple(dict.fromkeys([*names, *keep]))


def select_metrics(
    metrics: Mapping[str, float],
    first: Sequence[str] = (),
    held: Collection[str] = (),
    limit: int = METRICS_LIMIT,
) -> tuple[dict[str, float], list[str]]:
    """At most `limit` of `metrics`, none named longer than METRIC_NAME_MAX_LENGTH: the names in
    `first` (the objective, the watched metrics) in that order, then those in `held` (what the
    status held before, so a trial's columns stay put from epoch to epoch), then the others by
    name. Returns the kept ones in their reported order and the dropped names, sorted."""
    fits = [k for k in metrics if len(k) <= METRIC_NAME_MAX_LENGTH]
    if len(fits) == len(metrics) <= limit:
        return dict(metrics), []
    rank = {k: i for i, k in reversed(list(enumerate(first)))}

    def order(name: str) -> tuple[int, int, str]:
        if name in rank:
            return (0, rank[name], "")
        return (1 if name in held else 2, 0, name)

    chosen = set(sorted(fits, key=order)[:limit])
    return {k: v for k, v in metrics.items() if k in chosen}, sorted(k for k in metrics if k not in chosen)


def dropped_warning(
    epoch: int, reported: int, dropped: Sequence[str], limit: int = METRICS_LIMIT
) -> TrialWarning:
    """MetricsDropped: how many of the `reported` metrics were dropped and the first few names."""
    long = sum(1 for k in dropped if len(k) > METRIC_NAME_MAX_LENGTH)
    shown = ", ".join(bounded_text(k, NAME_SHOWN) for k in dropped[:NAMES_SHOWN])
    more = f" and {len(dropped) - NAMES_SHOWN} more" if len(dropped) > NAMES_SHOWN else ""
    why = f" ({long} named with more than {METRIC_NAME_MAX_LENGTH} characters)" if long else ""
    message = (
        f"epoch {epoch} reported {reported} metrics; the status keeps at most {limit} (the objective"
        f" and the stop rules' metrics first, then by name), so {len(dropped)} were dropped{why}:"
        f" {shown}{more}"
    )
    return TrialWarning(reason=METRICS_DROPPED, message=bounded_text(message, MESSAGE_BUDGET), epoch=epoch)


def warned(status: TrialStatus, warning: TrialWarning) -> TrialStatus:
    """`status` with `warning` replacing any earlier one of its reason (at most WARNINGS_LIMIT)."""
    kept = [w for w in status.warnings if w.reason != warning.reason] + [warning]
    return status.model_copy(update={"warnings": kept[-WARNINGS_LIMIT:]})


# -- bytes per status ------------------------------------------------------------------------------
def _size(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def status_bytes(status: TrialStatus) -> int:
    """What `status` takes as compact JSON (UTF-8), as the apiserver stores it."""
    return _size(status.model_dump(by_alias=True, mode="json", exclude_none=True))


def fit(status: TrialStatus, limit: int = STATUS_BYTES_LIMIT) -> TrialStatus:
    """`status` within `limit` bytes: its history thinned (by `thin_indices`: first and last kept,
    the newest half dense) until the whole status fits, with a HistoryTrimmed warning saying so.
    Every other field is bounded on its own, far below the limit."""
    history = status.history
    if len(history) < 2 or status_bytes(status) <= limit:
        return status
    n = len(history)
    sizes = [_size(p.model_dump(by_alias=True, mode="json", exclude_none=True)) for p in history]
    probe = warned(status.model_copy(update={"history": []}), _trimmed(status.epoch, n, limit))
    base = status_bytes(probe) + _SLACK  # "history":[] included; each entry adds its size and a comma

    def total(keep: int) -> int:
        return base + sum(sizes[i] + 1 for i in thin_indices(n, keep))

    keep = n
    while keep > 1 and (size := total(keep)) > limit:
        # a proportional guess, always at least one entry fewer
        keep = max(1, min(keep - 1, keep * max(0, limit - base) // max(1, size - base)))
    kept = bounded(history, keep)
    return warned(status.model_copy(update={"history": kept}), _trimmed(status.epoch, len(kept), limit))


def _trimmed(epoch: int, kept: int, limit: int) -> TrialWarning:
    return TrialWarning(
        reason=HISTORY_TRIMMED,
        message=(
            f"the history keeps {kept} epochs, not up to {HISTORY_LIMIT} (first and last included, the"
            f" middle thinned), so that the whole status stays within {limit // 1024} KiB as JSON"
        ),
        epoch=epoch,
    )


def best_metrics(metrics: Mapping[str, float], metric: str, keep: Sequence[str] = ()) -> dict[str, float]:
    """What a campaign's status copies of a best trial's metrics: the ranking metric, `keep` (the
    metrics its expressions name), then by name; at most BEST_METRICS_LIMIT."""
    return select_metrics(metrics, (metric, *keep), (), BEST_METRICS_LIMIT)[0]
