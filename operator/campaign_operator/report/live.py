"""What a person watching a campaign sees: a rich live view on a terminal, plain lines otherwise.
The same view whatever feeds it: the embedded runner, its state dir, or the apiserver (kubectl
campaign).

`render(snapshot)` and `plain_lines(before, after)` are pure (data in, text/renderables out); the
`LiveDisplay` / `PlainDisplay` classes only push them to a terminal or stream.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from campaign_operator.api.campaign import (
    CampaignState,
    PhaseState,
    PhaseStatus,
    ScaleDown,
    TrainingCampaign,
    TrainingCampaignStatus,
)
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.planner import accounting
from campaign_operator.planner.scaledown import describe, search_budget, trials_per_phase
from campaign_operator.planner.sweeps import expand, search_of
from campaign_operator.planner.trials import phase_trials

from .results import point_label

LATEST_FAILURES = 5
PREVIEW = 110
RUNNING_ROWS = 12
WIDE = 150
"""Columns from which the phase table shows every count and the best trial on its row."""
THRESHOLD_MARK = "┆"
"""maxFailureRate's mark in the live view; the report draws it in THRESHOLD_COLOR, dashed."""
THRESHOLD_COLOR = "#c2185b"


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
    campaign: TrainingCampaign | None = None
    """The manifest, when the source has it: planned totals of phases not started yet, the
    SMOKE/PARTIAL banner, parallelism for the campaign ETA."""

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


def running_remaining(trial: Trial, now: datetime, typical: float | None = None) -> float | None:
    """Seconds a running trial still needs at its pace so far; before its first epoch, what is left
    of a `typical` trial's duration. None when neither is known."""
    start, done = trial.status.start_time, trial.status.epoch
    if start is None:
        return None
    elapsed = (now - start).total_seconds()
    if done <= 0:
        return typical - elapsed if typical is not None and typical > elapsed else None
    return elapsed / done * max(0, trial.spec.epochs - done)


def phase_remaining(phase: PhaseStatus, now: datetime, trials: Sequence[Trial] = ()) -> float | None:
    """Seconds until the phase ends: the planner's estimate, never less than what its running trials
    still need; None when unknown (never 0 while something still runs)."""
    if phase.state.is_terminal:
        return 0.0
    typical = _mean_trial_seconds([t for t in trials if t.status.state.is_terminal])
    known = [
        x
        for x in (
            (phase.estimated_completion_time - now).total_seconds()
            if phase.estimated_completion_time
            else None,
            *(running_remaining(t, now, typical) for t in trials if t.status.state == TrialState.RUNNING),
        )
        if x is not None
    ]
    value = max(known, default=None)
    return value if value is not None and value >= 1 else None


def eta(phase: PhaseStatus, now: datetime, trials: Sequence[Trial] = ()) -> str:
    if phase.state.is_terminal:
        return "done"
    return duration(phase_remaining(phase, now, [t for t in trials if t.spec.phase == phase.name]))


_PLANNED: dict[str, dict[str, int]] = {}


def planned_trials(campaign: TrainingCampaign) -> dict[str, int]:
    """Each phase's trial count as the plan will create it (cached per spec: a sweep of hundreds of
    points is expanded once, not on every refresh)."""
    key = hashlib.sha256(campaign.spec.model_dump_json().encode()).hexdigest()
    if key not in _PLANNED:
        out = {}
        for i, phase in enumerate(campaign.spec.phases):
            search = search_of(phase)
            try:
                scale = campaign.spec.scale_down
                out[phase.name] = search_budget(search, scale) if search else len(phase_trials(campaign, i))
            except ValueError:  # a skipWhen that needs promoted parameters: the count is the same
                limit = trials_per_phase(campaign.spec.scale_down)
                out[phase.name] = min(len(expand(phase)), limit or len(expand(phase)))
        _PLANNED[key] = out
    return _PLANNED[key]


def phase_total(snap: Snapshot, phase: PhaseStatus) -> int:
    """Created trials once the phase started, else its planned count."""
    if phase.counts.total or snap.campaign is None or phase.state.is_terminal:
        return phase.counts.total
    return planned_trials(snap.campaign).get(phase.name, 0)


def campaign_totals(snap: Snapshot) -> tuple[int, int]:
    """(finished, planned) trials of the whole campaign."""
    return (
        sum(finished(p) for p in snap.status.phases),
        sum(phase_total(snap, p) for p in snap.status.phases),
    )


def _mean_trial_seconds(trials: Sequence[Trial]) -> float | None:
    took = [
        (t.status.completion_time - t.status.start_time).total_seconds()
        for t in trials
        if t.status.start_time and t.status.completion_time and t.status.state != TrialState.SKIPPED
    ]
    return sum(took) / len(took) if took else None


def campaign_remaining(snap: Snapshot) -> float | None:
    """Seconds until the campaign ends: running phases by their ETA, phases not started by their
    planned trials times the mean trial duration so far, in waves of the parallelism. None while
    any of that is unknown."""
    if snap.finished:
        return 0.0
    mean = _mean_trial_seconds(snap.trials)
    spec_parallel = snap.campaign.spec.max_parallel_trials if snap.campaign else None
    running = sum(p.counts.running for p in snap.status.phases)
    parallel = max(1, spec_parallel or running)
    total = 0.0
    for p in snap.status.phases:
        if p.state.is_terminal:
            continue
        if p.counts.total:
            left = phase_remaining(p, snap.now, [t for t in snap.trials if t.spec.phase == p.name])
        else:
            left = None if mean is None else -(-phase_total(snap, p) // parallel) * mean
        if left is None:
            return None
        total += left
    return total if total >= 1 else None


def scale_banner(scale: ScaleDown | None) -> str | None:
    """SMOKE RUN / PARTIAL RUN and what was scaled (the planner's own words), for spec.scaleDown."""
    if scale is None:
        return None
    kind, _, what = describe(scale).partition(" (")
    return f"{kind.upper()}: {what.removesuffix(')')}"


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
    done, planned = campaign_totals(snap)
    parts = [f"campaign {snap.name}", s.state.value, f"{done}/{planned} trials finished"]
    if s.current_phase:
        parts.append(f"phase {s.current_phase}")
    parts.append(f"elapsed {duration(elapsed)}")
    if not snap.finished and snap.runner_alive:
        parts.append(f"ETA {duration(campaign_remaining(snap))}")
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
            f"{p.name} {p.state.value} {finished(p)}/{phase_total(snap, p)}"
            f" run={c.running} ok={c.succeeded} fail={c.failed} stop={c.stopped} skip={c.skipped}"
            f" failrate={th.rate:.1%}/{th.limit:.0%}{th.marker} eta={eta(p, snap.now, snap.trials)}"
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
    return View(snap)


class View:
    """The live view laid out for the console's width: from WIDE columns every count, the failure-rate
    gauge and the best trial sit on each phase's row; narrower, a compact table with the best trials
    below it. Rows name trials by their sweep point, cut to fit."""

    def __init__(self, snap: Snapshot):
        self.snap = snap

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from parts(self.snap, options.max_width)


def parts(snap: Snapshot, width: int) -> list[RenderableType]:
    s = snap.status
    wide = width >= WIDE
    out: list[RenderableType] = []
    banner = scale_banner(snap.campaign.spec.scale_down if snap.campaign else None)
    if banner:
        out.append(Text(f" {banner} ", style="bold black on yellow"))
    out.append(Text(headline(snap), style="bold"))
    out.append(_phase_table(snap, wide, width))
    if not wide:
        out.extend(_best_lines(snap, width))
    running = [t for t in snap.trials if t.status.state == TrialState.RUNNING]
    if running:
        out.append(_running_table(snap, running, wide, width))
    failures = latest_failures(snap.trials)
    if failures:
        out.append(_failure_table(failures, wide, width))
    for p in s.phases:
        if p.state in (PhaseState.FAILED, PhaseState.SKIPPED) and p.message:
            out.append(Text(f"{p.name}: {p.reason}: {p.message}", style=_STATE_STYLE[p.state.value]))
    if s.state in (CampaignState.SUCCEEDED, CampaignState.FAILED):
        out.append(Text(f"{s.state.value}: {s.message}", style=_STATE_STYLE[s.state.value]))
    return out


def gauge(th: Threshold, cells: int) -> Text:
    """The failure rate as a bar with maxFailureRate marked (THRESHOLD_MARK in THRESHOLD_COLOR, as
    the report's dashed threshold line)."""
    scale = min(1.0, max(2 * th.limit, th.rate * 1.25, 0.1))
    mark = min(cells - 1, int(th.limit / scale * cells))
    text = Text()
    for i in range(cells):
        if i == mark:
            text.append(THRESHOLD_MARK, style=f"bold {THRESHOLD_COLOR}")
        elif (i + 0.5) / cells * scale < th.rate:
            text.append("■", style=_LEVEL_STYLE[th.level])
        else:
            text.append("·", style="dim")
    text.append(f" {th.marker} {th.rate:.1%}/{th.limit:.0%}", style=_LEVEL_STYLE[th.level])
    return text


def _gate_cell(snap: Snapshot, p: PhaseStatus) -> Text:
    spec = next((x for x in snap.campaign.spec.phases if x.name == p.name), None) if snap.campaign else None
    if p.gate is None and spec is not None and spec.gate is not None and not p.state.is_terminal:
        return Text("pending", style="dim")
    return Text(gate_text(p), style="green" if p.gate and p.gate.passed else ("red" if p.gate else ""))


def _best_trial(snap: Snapshot, p: PhaseStatus) -> Trial | None:
    name = p.best.trial if p.best else None
    return next((t for t in snap.trials if t.name == name), None)


def best_label(snap: Snapshot, p: PhaseStatus, limit: int) -> str:
    if p.best is None:
        return "—"
    trial = _best_trial(snap, p)
    who = point_label(trial, max(10, limit - 16)) if trial else p.best.trial
    return f"{p.best.metric}={p.best.value:.4g} {who}"


def _phase_table(snap: Snapshot, wide: bool, width: int) -> Table:
    counts = ("Run", "OK", "Fail", "Stop", "Skip") if wide else ("Run", "Fail")
    rate = "Failures vs max" if wide else "Fail rate"
    headers = ["Phase", "State", "Progress" if wide else "", "Done", *counts, rate, "Gate"]
    headers += ["Best", "ETA"] if wide else ["ETA"]
    bar_width = 20 if wide else 6
    rows: list[list[RenderableType]] = []
    for p in snap.status.phases:
        c, th, total = p.counts, threshold(p), phase_total(snap, p)
        numbers: dict[str, RenderableType] = {
            "Run": str(c.running),
            "OK": str(c.succeeded),
            "Fail": Text(str(c.failed), style="red" if c.failed else ""),
            "Stop": str(c.stopped),
            "Skip": str(c.skipped),
        }
        rows.append(
            [
                p.name,
                Text(p.state.value, style=_STATE_STYLE.get(p.state.value, "")),
                ProgressBar(total=max(total, 1), completed=finished(p), width=bar_width),
                f"{finished(p)}/{total}",
                *(numbers[col] for col in counts),
                gauge(th, 10 if wide else 5),
                _gate_cell(snap, p),
                *([best_label(snap, p, 64)] if wide else []),
                eta(p, snap.now, snap.trials) if snap.runner_alive else "—",
            ]
        )
    done, planned = campaign_totals(snap)
    left = "" if snap.finished else duration(campaign_remaining(snap) if snap.runner_alive else None)
    rows.append(
        [
            Text("campaign", style="bold"),
            "",
            ProgressBar(total=max(planned, 1), completed=done, width=bar_width),
            f"{done}/{planned}",
            *([""] * (len(headers) - 5)),
            left or "done",
        ]
    )
    # Narrow: one space between columns, not two.
    table = Table(box=None, pad_edge=False, header_style="bold", collapse_padding=not wide)
    widths = _fit_widths(headers, rows, width, gap=2 if wide else 1, flexible=("Best", "Phase"))
    for header, w in zip(headers, widths, strict=True):
        right = header in ("Done", "ETA", *counts)
        table.add_column(
            header, width=w, no_wrap=True, overflow="ellipsis", justify="right" if right else "left"
        )
    for i, row in enumerate(rows):
        table.add_row(*row, style="bold" if i == len(rows) - 1 else None)
    return table


def _cell_width(cell: RenderableType) -> int:
    if isinstance(cell, ProgressBar):
        return cell.width or 0
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def _fit_widths(
    headers: Sequence[str],
    rows: Sequence[Sequence[RenderableType]],
    width: int,
    gap: int,
    flexible: Sequence[str],
) -> list[int]:
    """Each column as wide as its widest cell; where that exceeds `width`, the `flexible` columns (in
    that order) give up the difference down to 5 characters, cut with … (rich would cut any column,
    the ETA and the numbers included, or the whole line)."""
    widths = [max(_cell_width(h), *(_cell_width(r[i]) for r in rows)) for i, h in enumerate(headers)]
    excess = sum(widths) + gap * (len(widths) - 1) - width
    for name in flexible:
        if excess <= 0 or name not in headers:
            continue
        i = headers.index(name)
        give = min(excess, max(0, widths[i] - 5))
        widths[i] -= give
        excess -= give
    return widths


def _best_lines(snap: Snapshot, width: int) -> list[RenderableType]:
    return [
        Text(preview(f"best {p.name}: {best_label(snap, p, width - len(p.name) - 7)}", width), style="dim")
        for p in snap.status.phases
        if p.best is not None
    ]


def _short(name: str) -> str:
    """The trial's hash: what `campaign results` and kubectl list it by."""
    return name.rsplit("-", 1)[-1]


def _running_table(snap: Snapshot, running: Sequence[Trial], wide: bool, width: int) -> Table:
    # Without a runner the trials still marked Running are saved mid-attempt: the next run resumes them.
    title = "running" if snap.runner_alive else "interrupted (resumed by the next run)"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    cols = (
        ("Phase", "Parameters", "Trial", "Try", "Epoch", "Left", "Latest")
        if wide
        else (
            "Phase",
            "Parameters",
            "Epoch",
            "Latest",
        )
    )
    for col in cols:
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    limit = 60 if wide else max(16, width - 34)
    typical = {
        p: _mean_trial_seconds([t for t in snap.trials if t.spec.phase == p and t.status.state.is_terminal])
        for p in {t.spec.phase for t in running}
    }
    for t in running[:RUNNING_ROWS]:
        cells = {
            "Phase": t.spec.phase,
            "Parameters": point_label(t, limit),
            "Trial": _short(t.name),
            "Try": str(t.status.attempt),
            "Epoch": f"{t.status.epoch}/{t.spec.epochs}",
            "Left": duration(running_remaining(t, snap.now, typical.get(t.spec.phase))),
            "Latest": objective_value(t),
        }
        table.add_row(*(cells[c] for c in cols))
    if len(running) > RUNNING_ROWS:
        table.caption = f"… and {len(running) - RUNNING_ROWS} more"
    return table


def _failure_table(failures: Sequence[Trial], wide: bool, width: int) -> RenderableType:
    table = Table(
        title="latest failures", title_justify="left", box=None, pad_edge=False, header_style="bold red"
    )
    cols = ("Phase", "Parameters", "Trial", "Reason", "Error") if wide else ("Phase", "Parameters", "Reason")
    for col in cols:
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    limit = 50 if wide else max(16, width - 36)
    for t in failures:
        cells = {
            "Phase": t.spec.phase,
            "Parameters": point_label(t, limit),
            "Trial": _short(t.name),
            "Reason": t.status.reason or "",
            "Error": preview(t.status.message, max(20, width - limit - 50)),
        }
        table.add_row(*(cells[c] for c in cols))
    if wide:
        return table
    # Narrow: each error on a line of its own, cut to the width.
    lines = [
        Text(preview(f"  {point_label(t, 40)}: {t.status.message}", width), style="dim") for t in failures
    ]
    return Group(table, *lines)


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
        who = f"{t.name} [{point_label(t)}]" if t.spec.sweep_point else t.name
        if now_state == TrialState.RUNNING:
            out.append(f"{ts} [{t.spec.phase}] {who} started (attempt {t.status.attempt})")
        elif now_state == TrialState.SKIPPED:
            out.append(f"{ts} [{t.spec.phase}] {who} Skipped: {t.status.reason}")
        else:
            detail = (
                objective_value(t) if now_state == TrialState.SUCCEEDED else preview(t.status.message, 160)
            )
            out.append(f"{ts} [{t.spec.phase}] {who} {now_state.value} ({t.status.reason}) {detail}".rstrip())
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
            if p.front_size is not None:  # a multi-objective phase: its result is the whole front
                line += f" Pareto front of {p.front_size} trial(s)"
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
        self.spinning = False

    def update(self, snap: Snapshot) -> None:
        self.spinning = False
        self.live.update(render(snap))

    def waiting(self, text: str) -> None:
        """A spinner with `text` until the next update (e.g. while Ray starts)."""
        self.spinning = True
        self.live.update(Spinner("dots", text=text))

    def message(self, text: str) -> None:
        self.live.console.print(text)

    def close(self) -> None:
        """Stops refreshing and leaves the last screen (after Ctrl-C too), but not a spinner that no
        longer spins."""
        if self.live.is_started:
            if self.spinning:
                self.live.update(Text(""), refresh=True)
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

    def waiting(self, text: str) -> None:
        """No spinner in a pipe or log: the caller's own message line says what it waits for."""

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

    def waiting(self, text: str) -> None:
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
