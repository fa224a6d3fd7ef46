"""Scaled-down runs (spec.scaleDown): which trials of a phase run, and for how many epochs.

The sample is a pure function of each point's canonical parameters: points are ranked by a hash of
their canonical JSON, never of the phase, so phases with the same sweep points (a teacher phase and
its students) sample the same points. Trials a skipWhen rule skips test nothing, so the sample takes
points that run first; when the phase has skipped points and the sample has room for two or more,
exactly one of its slots goes to the highest-ranked skipped point, so skipping is still exercised.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from campaign_operator.api.campaign import RunKind, ScaleDown, SearchSweep

SMOKE_TRIALS_PER_PHASE = 2
SMOKE_MAX_EPOCHS = 2

T = TypeVar("T")


def run_kind(scale_down: ScaleDown | None) -> RunKind:
    if scale_down is None:
        return RunKind.FULL
    return RunKind.SMOKE if scale_down.smoke else RunKind.PARTIAL


def run_label(scale_down: ScaleDown | None) -> str | None:
    """What sets this run apart from the full one, for its embedded state dir: `smoke` for the default
    smoke test, else the kind and its settings (`partial-t3-x0.1`); None for the full run. Each
    scaleDown gets a state dir of its own, so no run resumes into another's state."""
    if scale_down is None:
        return None
    parts = [run_kind(scale_down).value]
    if scale_down.max_trials_per_phase is not None:
        parts.append(f"t{scale_down.max_trials_per_phase}")
    if scale_down.epochs_scale is not None:
        parts.append(f"x{scale_down.epochs_scale:g}")
    if scale_down.max_epochs is not None:
        parts.append(f"e{scale_down.max_epochs}")
    return "-".join(parts)


def describe(scale_down: ScaleDown) -> str:
    """One line for the user: what this scaled-down run runs."""
    parts = []
    trials = trials_per_phase(scale_down)
    if trials is not None:
        parts.append(f"at most {trials} trial(s) per phase")
    if scale_down.epochs_scale is not None:
        parts.append(f"epochs x {scale_down.epochs_scale:g}")
    cap = scale_down.max_epochs or (SMOKE_MAX_EPOCHS if scale_down.smoke else None)
    if cap is not None:
        parts.append(f"at most {cap} epoch(s) each")
    if scale_down.smoke:
        parts.append("gates reported, not enforced")
    return f"{run_kind(scale_down).value} run ({', '.join(parts) or 'the whole plan'})"


def trials_per_phase(scale_down: ScaleDown | None) -> int | None:
    """The most trials a phase samples; None: every trial of the sweep."""
    if scale_down is None:
        return None
    if scale_down.max_trials_per_phase is not None:
        return scale_down.max_trials_per_phase
    return SMOKE_TRIALS_PER_PHASE if scale_down.smoke else None


def search_budget(search: SearchSweep, scale_down: ScaleDown | None) -> int:
    """How many trials a search creates: its budget, at most the scaled-down run's per-phase limit."""
    limit = trials_per_phase(scale_down)
    return search.trials if limit is None else min(search.trials, limit)


def scaled_epochs(epochs: int, scale_down: ScaleDown | None) -> int:
    """epochs x epochsScale rounded up (at least 1), then at most maxEpochs (smoke: 2 by default)."""
    if scale_down is None:
        return epochs
    if scale_down.epochs_scale is not None:
        epochs = max(1, math.ceil(epochs * scale_down.epochs_scale - 1e-9))
    cap = scale_down.max_epochs or (SMOKE_MAX_EPOCHS if scale_down.smoke else None)
    return min(epochs, cap) if cap is not None else epochs


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def sample(items: Sequence[T], key: Callable[[T], str], skipped: Callable[[T], bool], limit: int) -> list[T]:
    """At most `limit` of `items` (in their own order): the best-ranked ones that run, and one skipped
    one when there are any and `limit` leaves room beside a running one (or nothing else runs)."""
    ranked = sorted(items, key=lambda item: _rank(key(item)))
    runs = [item for item in ranked if not skipped(item)]
    skips = [item for item in ranked if skipped(item)]
    keep_skip = 1 if skips and (limit >= 2 or not runs) else 0
    chosen = {id(item) for item in [*runs[: limit - keep_skip], *skips[:keep_skip]]}
    return [item for item in items if id(item) in chosen]
