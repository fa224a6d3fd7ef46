"""One row per trial: phase, name, state, reason, parameters, final and best metrics, duration, and
the run (full, smoke or partial).

Pure functions over Trials; the `results` command only picks the format and where it goes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from campaign_operator.api.campaign import RunKind, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle import outcomes
from campaign_operator.planner.scaledown import run_kind


@dataclass(frozen=True)
class CampaignData:
    """A finished (or running) campaign as the results table and the report read it, from a state
    dir or from the apiserver."""

    campaign: TrainingCampaign
    status: TrainingCampaignStatus
    trials: list[Trial]
    runner: str | None = None
    """Who runs it where the source tells (a state dir: e.g. that no runner holds an unfinished run)."""

    @property
    def run(self) -> RunKind:
        """full, smoke or partial: whether these are the whole plan's results (spec.scaleDown)."""
        return run_kind(self.campaign.spec.scale_down)


FIXED = (
    "phase",
    "name",
    "state",
    "reason",
    "attempt",
    "epochs",
    "best_epoch",
    "duration_s",
    "start_time",
    "run",
)


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested mappings become dotted columns; lists (e.g. hidden_dims) stay one JSON cell."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(flatten(f"{prefix}.{k}", value[k]))
        return out
    if isinstance(value, list | tuple):
        return {prefix: json.dumps(value, separators=(",", ":"))}
    return {prefix: value}


def duration_s(trial: Trial) -> float | None:
    s = trial.status
    if s.start_time is None or s.completion_time is None:
        return None
    return round((s.completion_time - s.start_time).total_seconds(), 3)


def row(trial: Trial, run: RunKind = RunKind.FULL) -> dict[str, Any]:
    s = trial.status
    out: dict[str, Any] = {
        "phase": trial.spec.phase,
        "name": trial.name,
        "state": s.state.value,
        "reason": s.reason,
        "attempt": s.attempt,
        "epochs": s.epoch,
        "best_epoch": s.best.epoch if s.best else None,
        "duration_s": duration_s(trial),
        "start_time": s.start_time.isoformat() if s.start_time else None,
        "run": run.value,
    }
    out.update(flatten("param", trial.spec.parameters))
    out.update({f"final.{k}": v for k, v in sorted(s.metrics.items())})
    out.update({f"best.{k}": v for k, v in sorted((s.best.metrics if s.best else {}).items())})
    return out


def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Fixed columns, then param.*, final.*, best.*, each group sorted: the same trials give the same
    columns in whatever order a source lists them (a state dir, the apiserver)."""
    out = list(FIXED)
    for group in ("param.", "final.", "best."):
        out += sorted({k for r in rows for k in r if k.startswith(group)})
    return out


def rows(
    trials: Iterable[Trial], phase: str | None = None, run: RunKind = RunKind.FULL
) -> list[dict[str, Any]]:
    return [row(t, run) for t in trials if phase is None or t.spec.phase == phase]


def to_csv(rs: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(rs), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rs:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def to_json(rs: Sequence[dict[str, Any]]) -> str:
    cols = columns(rs)
    return json.dumps([{c: r.get(c) for c in cols} for r in rs], indent=2)


def _column_values(rs: Sequence[dict[str, Any]], col: str) -> list[Any]:
    values = [r.get(col) for r in rs]
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} and float in kinds:
        return [None if v is None else float(v) for v in values]
    if len(kinds) > 1:  # e.g. a parameter that is a number in one trial and a string in another
        return [None if v is None else str(v) for v in values]
    return values


def to_parquet(rs: Sequence[dict[str, Any]], path: str | Path | BinaryIO) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    cols = columns(rs)
    table = pa.table({c: _column_values(rs, c) for c in cols})
    pq.write_table(table, str(path) if isinstance(path, str | Path) else path)


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


# -- a trial's identity for people: its sweep point, not its hash --------------------------------
POINT_WIDTH = 60


def value_label(value: Any) -> str:
    """One parameter value in a table cell or on a chart axis: {name: RELIANCE} -> RELIANCE,
    {start, end} -> start..end, [64, 32] -> [64,32], 0.001 -> 0.001."""
    if isinstance(value, dict):
        if "name" in value:
            return str(value["name"])
        if "start" in value and "end" in value:
            return f"{value['start']}..{value['end']}"
        return "{" + ",".join(f"{k}:{value_label(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(value_label(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def point_label(trial: Trial, limit: int = POINT_WIDTH) -> str:
    """The trial's sweep point (what makes it distinct in its phase) as the trial's own messages name
    it (symbol=TCS window=2022-01-01..2022-04-30), at most `limit` characters."""
    if not trial.spec.sweep_point:
        return "(phase defaults)"
    text = outcomes.point_label(trial.spec.sweep_point)
    return text if len(text) <= limit else text[: limit - 1] + "…"
