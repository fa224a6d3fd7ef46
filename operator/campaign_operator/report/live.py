"""What a person watching a campaign sees: a rich live view on a terminal, plain lines otherwise.
The same view whatever feeds it: the embedded runner, its state dir, or the apiserver (kubectl
campaign).

`render(snapshot)` and `plain_lines(before, after)` are pure (data in, text/renderables out); the
`LiveDisplay` / `PlainDisplay` classes only push them to a terminal or stream.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from campaign_operator.api.campaign import (
    CampaignState,
    PhaseState,
    PhaseStatus,
    TrainingCampaignStatus,
)
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.planner import accounting

LATEST_FAILURES = 5
PREVIEW = 110


@dataclass(frozen=True)
class Event:
    """A campaign's event: the embedded store's, or a Kubernetes Event about the campaign."""

    time: datetime
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the views show, read from the runner's memory or from the store."""

    name: str
    status: TrainingCampaignStatus
    trials: Sequence[Trial] = ()
    events: Sequence[Event] = ()
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    runner: str | None = None
    """Who is running it, e.g. 'runner pid 1234' or 'no runner (interrupted)'."""
    runner_alive: bool = True

    @property
    def finished(self) -> bool:
        return self.status.state in (CampaignState.SUCCEEDED, CampaignState.FAILED)


# -- pure formatting ------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta(phase: PhaseStatus, now: datetime) -> str:
    if phase.state.is_terminal:
        return "done"
    if phase.estimated_completion_time is None:
        return "—"
    return duration((phase.estimated_completion_time - now).total_seconds())


def finished(phase: PhaseStatus) -> int:
    c = phase.counts
    return c.succeeded + c.failed + c.stopped + c.skipped


@dataclass(frozen=True)
class Threshold:
    """How a phase's failures stand against its maxFailureRate."""

    rate: float
    limit: float
    failed: int
    allowed: int
    level: str
    """ok | near | over"""

    @property
    def marker(self) -> str:
        return {"ok": "✓", "near": "⚠", "over": "✗"}[self.level]

    def text(self) -> str:
        return (
            f"{self.marker} {self.rate:.1%} / max {self.limit:.0%}"
            f" ({self.failed} of {self.allowed} allowed failures)"
        )


def threshold(phase: PhaseStatus) -> Threshold:
    c = phase.counts
    allowed = accounting.max_failures_allowed(c.total, c.skipped, phase.max_failure_rate)
    if accounting.exceeds(c.failed, c.total, c.skipped, phase.max_failure_rate):
        level = "over"
    elif c.failed and c.failed >= allowed:
        level = "near"  # one more failure crosses the threshold
    else:
        level = "ok"
    return Threshold(phase.failure_rate, phase.max_failure_rate, c.failed, allowed, level)


def best_text(phase: PhaseStatus) -> str:
    if phase.best is None:
        return "—"
    return f"{phase.best.metric}={phase.best.value:.4g} ({phase.best.trial})"


def gate_text(phase: PhaseStatus) -> str:
    if phase.gate is None:
        return "—"
    if phase.gate.passed is None:
        return "pending"
    return "✓ passed" if phase.gate.passed else "✗ not met"


def preview(text: str | None, limit: int = PREVIEW) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def latest_failures(trials: Sequence[Trial], limit: int = LATEST_FAILURES) -> list[Trial]:
    failed = [t for t in trials if t.status.state == TrialState.FAILED]
    epoch0 = datetime.min.replace(tzinfo=UTC)
    failed.sort(key=lambda t: (t.status.completion_time or epoch0, t.name), reverse=True)
    return failed[:limit]


def objective_value(trial: Trial) -> str:
    metric = trial.spec.objective.metric
    value = trial.status.metrics.get(metric)
    return f"{metric}={value:.4g}" if value is not None else ""


def headline(snap: Snapshot) -> str:
    s = snap.status
    elapsed = (snap.now - s.start_time).total_seconds() if s.start_time else None
    if s.completion_time and s.start_time:
        elapsed = (s.completion_time - s.start_time).total_seconds()
    parts = [f"campaign {snap.name}", s.state.value, f"{s.progress or '0/0'} trials finished"]
    if s.current_phase:
        parts.append(f"phase {s.current_phase}")
    parts.append(f"elapsed {duration(elapsed)}")
    if snap.runner:
        parts.append(snap.runner)
    return " · ".join(parts)


def summary_line(snap: Snapshot) -> str:
    """One line per phase state, for plain output and logs."""
    bits = []
    for p in snap.status.phases:
        c = p.counts
        th = threshold(p)
        bits.append(
            f"{p.name} {p.state.value} {finished(p)}/{c.total}"
            f" run={c.running} ok={c.succeeded} fail={c.failed} stop={c.stopped} skip={c.skipped}"
            f" failrate={th.rate:.1%}/{th.limit:.0%}{th.marker} eta={eta(p, snap.now)}"
        )
    return " | ".join(bits)


# -- rich view ------------------------------------------------------------------------------------
_STATE_STYLE = {
    "Pending": "dim",
    "Running": "cyan",
    "Succeeded": "green",
    "Failed": "bold red",
    "Stopped": "yellow",
    "Skipped": "dim",
    "Suspended": "yellow",
}
_LEVEL_STYLE = {"ok": "green", "near": "yellow", "over": "bold red"}


def render(snap: Snapshot) -> RenderableType:
    s = snap.status
    head = Text(headline(snap), style="bold")
    phases = Table(box=None, pad_edge=False, expand=False, header_style="bold")
    for col in ("Phase", "State", "Progress", "Done", "Run", "OK", "Fail", "Stop", "Skip"):
        phases.add_column(
            col, justify="right" if col in ("Done", "Run", "OK", "Fail", "Stop", "Skip") else "left"
        )
    phases.add_column("Failure rate vs threshold")
    phases.add_column("Gate")
    phases.add_column("Best")
    phases.add_column("ETA", justify="right")
    for p in s.phases:
        c = p.counts
        th = threshold(p)
        bar = ProgressBar(total=max(c.total, 1), completed=finished(p), width=24)
        phases.add_row(
            p.name,
            Text(p.state.value, style=_STATE_STYLE.get(p.state.value, "")),
            bar,
            f"{finished(p)}/{c.total}",
            str(c.running),
            str(c.succeeded),
            Text(str(c.failed), style="red" if c.failed else ""),
            str(c.stopped),
            str(c.skipped),
            Text(th.text(), style=_LEVEL_STYLE[th.level]),
            Text(gate_text(p), style="green" if p.gate and p.gate.passed else ("red" if p.gate else "")),
            best_text(p),
            eta(p, snap.now),
        )
    parts: list[RenderableType] = [head, phases]
    running = [t for t in snap.trials if t.status.state == TrialState.RUNNING]
    if running:
        table = Table(title="running", title_justify="left", box=None, header_style="bold")
        for col in ("Trial", "Phase", "Attempt", "Epoch", "Latest"):
            table.add_column(col)
        for t in running[:12]:
            table.add_row(
                t.name,
                t.spec.phase,
                str(t.status.attempt),
                f"{t.status.epoch}/{t.spec.epochs}",
                objective_value(t),
            )
        parts.append(table)
    failures = latest_failures(snap.trials)
    if failures:
        table = Table(title="latest failures", title_justify="left", box=None, header_style="bold red")
        for col in ("Trial", "Phase", "Reason", "Error"):
            table.add_column(col)
        for t in failures:
            table.add_row(t.name, t.spec.phase, t.status.reason or "", preview(t.status.message))
        parts.append(table)
    for p in s.phases:
        if p.state in (PhaseState.FAILED, PhaseState.SKIPPED) and p.message:
            parts.append(Text(f"{p.name}: {p.reason}: {p.message}", style=_STATE_STYLE[p.state.value]))
    if s.state in (CampaignState.SUCCEEDED, CampaignState.FAILED):
        parts.append(Text(f"{s.state.value}: {s.message}", style=_STATE_STYLE[s.state.value]))
    return Group(*parts)


# -- plain lines ----------------------------------------------------------------------------------
def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%H:%M:%S")


def plain_lines(before: Snapshot | None, after: Snapshot) -> list[str]:
    """What changed between two snapshots, one line per change (trial, phase, campaign)."""
    ts = _stamp(after.now)
    out: list[str] = []
    old_trials = {t.name: t for t in before.trials} if before else {}
    for t in after.trials:
        prev = old_trials.get(t.name)
        was = prev.status.state if prev else None
        now_state = t.status.state
        attempt_changed = prev is not None and prev.status.attempt != t.status.attempt
        if was == now_state and not attempt_changed:
            continue
        if now_state == TrialState.PENDING or (
            was is None and now_state == TrialState.SKIPPED and before is None
        ):
            continue
        if now_state == TrialState.RUNNING:
            out.append(f"{ts} [{t.spec.phase}] {t.name} started (attempt {t.status.attempt})")
        elif now_state == TrialState.SKIPPED:
            out.append(f"{ts} [{t.spec.phase}] {t.name} Skipped: {t.status.reason}")
        else:
            detail = (
                objective_value(t) if now_state == TrialState.SUCCEEDED else preview(t.status.message, 160)
            )
            out.append(
                f"{ts} [{t.spec.phase}] {t.name} {now_state.value} ({t.status.reason}) {detail}".rstrip()
            )
    old_phases = {p.name: p for p in before.status.phases} if before else {}
    for p in after.status.phases:
        prev_p = old_phases.get(p.name)
        if prev_p is not None and prev_p.state == p.state:
            continue
        if prev_p is None and p.state == PhaseState.PENDING:
            continue
        th = threshold(p)
        line = f"{ts} phase {p.name} {p.state.value}"
        if p.state.is_terminal:
            line += f": {p.message}" if p.message else ""
            if p.counts.total:
                line += f" (failure rate {th.rate:.1%} vs max {th.limit:.0%} {th.marker})"
            if p.gate is not None and p.gate.passed is not None:
                line += f" gate {gate_text(p)}"
            if p.best is not None:
                line += f" best {best_text(p)}"
        out.append(line)
    if before is None or before.status.state != after.status.state:
        out.append(f"{ts} {headline(after)}")
    return out


# -- sinks ----------------------------------------------------------------------------------------
class LiveDisplay:
    """A rich Live view, refreshed at most a few times a second."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def update(self, snap: Snapshot) -> None:
        self.live.update(render(snap))

    def message(self, text: str) -> None:
        self.live.console.print(text)

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()


class PlainDisplay:
    """Line output for pipes and logs: changes as they happen, a progress summary now and then."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 15.0):
        self.stream = stream or sys.stdout
        self.every_s = every_s
        self.before: Snapshot | None = None
        self.last_summary: datetime | None = None

    def update(self, snap: Snapshot) -> None:
        lines = plain_lines(self.before, snap)
        due = self.last_summary is None or (snap.now - self.last_summary).total_seconds() >= self.every_s
        if lines or due:
            if due:
                lines.append(f"{_stamp(snap.now)} progress: {summary_line(snap)}")
                self.last_summary = snap.now
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        self.before = snap

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.before is not None:
            self.stream.write(f"{_stamp(self.before.now)} progress: {summary_line(self.before)}\n")
            self.stream.flush()
            self.before = None


class NullDisplay:
    def update(self, snap: Snapshot) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def make_display(
    stream: TextIO | None = None, *, quiet: bool = False
) -> LiveDisplay | PlainDisplay | NullDisplay:
    if quiet:
        return NullDisplay()
    stream = stream or sys.stdout
    if stream.isatty():
        return LiveDisplay(Console(file=stream))
    return PlainDisplay(stream)
