"""The campaign report: one self-contained HTML file (inline SVG and CSS, no scripts, no URLs).

Sections: summary, phases, per-phase metric curves and a "metrics at checkpoints" table (the
quick-test report's loss-progression table; seed-sweep phases show mean ± std across seeds),
metric distributions, best trials, failure breakdown, timeline.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from campaign_operator.api.campaign import Phase, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.common import Mode, TrialState
from campaign_operator.api.trial import Trial

from . import svg
from .results import CampaignData

# Metrics that describe the run, not the model: left out of curves and checkpoint tables.
HOUSEKEEPING = frozenset({"samples_per_sec", "epoch_time_s", "lr"})
PREFERRED = ("loss", "val_loss", "r2", "rmse", "accuracy", "action_loss", "price_loss", "ic", "sharpe")
MAX_TABLE_METRICS = 6
MAX_CHECKPOINT_ROWS = 5
TOP_TRIALS = 10


# -- pure helpers -----------------------------------------------------------------------------------
def is_ensemble(phase: Phase) -> bool:
    return phase.sweep is not None and phase.sweep.seeds is not None


def objective_of(campaign: TrainingCampaign, phase: Phase) -> tuple[str, Mode]:
    o = phase.objective or campaign.spec.objective
    return o.metric, o.mode


def curve(trial: Trial, metric: str) -> tuple[list[float], list[float]]:
    pts = [(p.epoch, p.metrics[metric]) for p in trial.status.history if metric in p.metrics]
    return [float(e) for e, _ in pts], [float(v) for _, v in pts]


def table_metrics(trials: Sequence[Trial], objective: str) -> list[str]:
    seen: set[str] = set()
    for t in trials:
        for p in t.status.history:
            seen.update(p.metrics)
    seen -= HOUSEKEEPING
    ordered = [m for m in PREFERRED if m in seen and m != objective]
    ordered += sorted(seen - set(ordered) - {objective})
    if objective in seen:
        ordered.insert(1 if ordered[:1] == ["loss"] else 0, objective)
    return ordered[:MAX_TABLE_METRICS]


def checkpoint_epochs(last: int, every: int, limit: int = MAX_CHECKPOINT_ROWS) -> list[int]:
    """The checkpointed epochs (every k-th and the last), thinned to `limit` evenly spaced rows."""
    if last <= 0:
        return []
    epochs = sorted({e for e in range(every, last + 1, every)} | {last})
    if len(epochs) <= limit:
        return epochs
    first = epochs[0]
    targets = [first + i * (last - first) / (limit - 1) for i in range(limit)]
    # The checkpoint at or just before each evenly spaced target (1, 500, 1000, ... not 501, 1001).
    return sorted({max(e for e in epochs if e <= t + 1e-9) for t in targets})


def value_at(trial: Trial, metric: str, epoch: int) -> float | None:
    """The metric at `epoch`, or at the nearest recorded epoch before it (history is thinned)."""
    best: tuple[int, float] | None = None
    for p in trial.status.history:
        if p.epoch <= epoch and metric in p.metrics and (best is None or p.epoch > best[0]):
            best = (p.epoch, p.metrics[metric])
    return None if best is None else best[1]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class CheckpointTable:
    subject: str
    metrics: list[str]
    rows: list[list[str]]
    """Checkpoint, Epoch, metric values..., Improvement."""


def _improvement(base: float | None, value: float | None, mode: Mode) -> str:
    if base is None or value is None or base == 0:
        return "—"
    gain = (base - value) / abs(base) if mode == Mode.MIN else (value - base) / abs(base)
    return f"{gain:+.1%}"


def checkpoint_table(
    trials: Sequence[Trial], objective: str, mode: Mode, every: int, subject: str
) -> CheckpointTable | None:
    """Metrics at checkpoints of one trial, or mean ± std over several (an ensemble)."""
    trials = [t for t in trials if t.status.history]
    if not trials:
        return None
    last = min(max(p.epoch for p in t.status.history) for t in trials)
    epochs = checkpoint_epochs(last, every)
    metrics = table_metrics(trials, objective)
    rows: list[list[str]] = []
    base: float | None = None
    for i, epoch in enumerate(epochs):
        label = "Initial" if i == 0 else ("Final" if i == len(epochs) - 1 else f"Mid-{i}")
        cells = [label, str(epoch)]
        for m in metrics:
            vals = [v for t in trials if (v := value_at(t, m, epoch)) is not None and math.isfinite(v)]
            if not vals:
                cells.append("—")
            elif len(trials) > 1:
                mu, sd = mean_std(vals)
                cells.append(f"{mu:.4g} ± {sd:.2g}")
            else:
                cells.append(f"{vals[0]:.4g}")
        objs = [v for t in trials if (v := value_at(t, objective, epoch)) is not None and math.isfinite(v)]
        current = statistics.fmean(objs) if objs else None
        if i == 0:
            base = current
            cells.append("Baseline")
        else:
            cells.append(_improvement(base, current, mode))
        rows.append(cells)
    return CheckpointTable(subject, metrics, rows)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- sections ---------------------------------------------------------------------------------------
def _summary(campaign: TrainingCampaign, status: TrainingCampaignStatus, trials: Sequence[Trial]) -> str:
    took = (
        (status.completion_time - status.start_time).total_seconds()
        if status.completion_time and status.start_time
        else None
    )
    counts = Counter(t.status.state.value for t in trials)
    items = [
        ("State", f"{status.state.value}: {status.message or ''}"),
        ("Trials", ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"),
        ("Started", status.start_time.isoformat(timespec="seconds") if status.start_time else "—"),
        ("Duration", duration(took)),
        ("Objective", f"{campaign.spec.objective.metric} ({campaign.spec.objective.mode.value})"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<section id="summary"><dl>{dl}</dl></section>'


def _phases(status: TrainingCampaignStatus) -> str:
    rows = []
    for p in status.phases:
        c = p.counts
        gate = "—"
        if p.gate is not None:
            verdict = "pending" if p.gate.passed is None else ("passed" if p.gate.passed else "not met")
            gate = f"{p.gate.expression} → {verdict}"
        marker = "✗" if p.failure_rate > p.max_failure_rate else "✓"
        rows.append(
            [
                p.name,
                p.state.value,
                f"{c.succeeded}/{c.failed}/{c.stopped}/{c.skipped}/{c.total}",
                f"{marker} {p.failure_rate:.1%} / {p.max_failure_rate:.0%}",
                gate,
                f"{p.best.trial} {p.best.metric}={p.best.value:.4g}" if p.best else "—",
                p.message or "",
            ]
        )
    headers = ["Phase", "State", "ok/fail/stop/skip/total", "Failure rate / max", "Gate", "Best", "Message"]
    return '<section id="phases"><h2>Phases</h2>' + _table(headers, rows, "phases") + "</section>"


def _phase_section(
    campaign: TrainingCampaign, phase: Phase, trials: Sequence[Trial], best: str | None
) -> str:
    objective, mode = objective_of(campaign, phase)
    ran = [t for t in trials if t.status.history]
    parts = [f'<section class="phase" id="phase-{escape(phase.name)}"><h2>Phase {escape(phase.name)}</h2>']
    if phase.description:
        parts.append(f"<p>{escape(phase.description)}</p>")
    if not ran:
        parts.append("<p>No trial of this phase reported metrics.</p></section>")
        return "".join(parts)
    ok_values = [
        v
        for t in ran
        if t.status.state != TrialState.FAILED
        for v in curve(t, objective)[1]
        if math.isfinite(v)
    ]
    metrics = [objective] + (
        ["loss"] if objective != "loss" and any(curve(t, "loss")[0] for t in ran) else []
    )
    charts = []
    for metric in metrics:
        series = [
            svg.Series(t.name, *curve(t, metric), svg.color(i), dashed=t.status.state == TrialState.FAILED)
            for i, t in enumerate(ran)
        ]
        bands: list[svg.Band] = []
        if is_ensemble(phase) and len(ran) > 1:
            epochs = sorted({e for t in ran for e in curve(t, metric)[0]})
            xs, lo, hi, mu = [], [], [], []
            for e in epochs:
                vals = [v for t in ran if (v := value_at(t, metric, int(e))) is not None]
                if len(vals) == len(ran):
                    m, s = mean_std(vals)
                    xs.append(e)
                    lo.append(m - s)
                    hi.append(m + s)
                    mu.append(m)
            bands = [svg.Band(xs, lo, hi, "#000")]
            series = [svg.Series(s.name, s.xs, s.ys, "#9ab", s.dashed) for s in series]
            series.append(svg.Series(f"mean over {len(ran)} seeds", xs, mu, "#000"))
        title = f"{phase.name}: {metric} per trial" + (" (mean ± std across seeds)" if bands else "")
        y_values = ok_values if metric == objective and ok_values else None
        charts.append(
            svg.line_chart(
                "curves",
                f"{phase.name}:{metric}",
                title,
                series,
                bands=bands,
                ylabel=metric,
                y_values=y_values,
            )
        )
    parts.append('<div class="charts">' + "".join(charts) + "</div>")
    if is_ensemble(phase):
        subject, pool = f"mean ± std across {len(ran)} seeds", ran
    else:
        chosen = next((t for t in ran if t.name == best), None) or ran[0]
        subject, pool = (
            f"best trial {chosen.name}" if chosen.name == best else f"trial {chosen.name}",
            [chosen],
        )
    table = checkpoint_table(pool, objective, mode, campaign.spec.template.checkpoint.every_epochs, subject)
    if table is not None:
        headers = ["Checkpoint", "Epoch", *table.metrics, "Improvement"]
        parts.append(
            f"<h3>Metrics at checkpoints — {escape(table.subject)}</h3>"
            + _table(headers, table.rows, f"checkpoints checkpoints-{escape(phase.name)}")
        )
    parts.append("</section>")
    return "".join(parts)


def _distributions(campaign: TrainingCampaign, by_phase: dict[str, list[Trial]]) -> str:
    metrics: list[str] = []
    for p in campaign.spec.phases:
        metric, _ = objective_of(campaign, p)
        if metric not in metrics:
            metrics.append(metric)
    extra = table_metrics([t for ts in by_phase.values() for t in ts], metrics[0])
    metrics += [m for m in extra if m not in metrics and m != "loss"][:2]
    charts = []
    for metric in metrics:
        groups = []
        for p in campaign.spec.phases:
            vals = [
                t.status.metrics[metric]
                for t in by_phase.get(p.name, [])
                if t.status.state == TrialState.SUCCEEDED and metric in t.status.metrics
            ]
            if vals:
                groups.append((p.name, vals))
        if groups:
            charts.append(
                svg.strip_chart(
                    "distribution",
                    metric,
                    f"final {metric} of succeeded trials (bar: mean, whisker: ± std)",
                    groups,
                    xlabel=metric,
                )
            )
    if not charts:
        return ""
    return (
        '<section id="distributions"><h2>Metric distributions</h2><div class="charts">'
        + "".join(charts)
        + "</div></section>"
    )


def _best(campaign: TrainingCampaign, trials: Sequence[Trial]) -> str:
    metric, mode = campaign.spec.objective.metric, campaign.spec.objective.mode
    scored = [
        (t.status.best.metrics[metric] if t.status.best and metric in t.status.best.metrics else None, t)
        for t in trials
        if t.status.state == TrialState.SUCCEEDED
    ]
    ranked = sorted(
        ((v, t) for v, t in scored if v is not None), key=lambda x: x[0] if mode == Mode.MIN else -x[0]
    )
    top = ranked[:TOP_TRIALS]
    if not top:
        return '<section id="best"><h2>Best trials</h2><p>No succeeded trial reported it.</p></section>'
    phase_idx = {p.name: i for i, p in enumerate(campaign.spec.phases)}
    bars = [(f"{t.spec.phase}/{t.name[-10:]}", v, svg.color(phase_idx.get(t.spec.phase, 0))) for v, t in top]
    chart = svg.bar_chart(
        "best", metric, f"top {len(top)} trials by best {metric} ({mode.value})", bars, xlabel=metric
    )
    rows = [
        [
            i + 1,
            t.spec.phase,
            t.name,
            v,
            t.status.best.epoch if t.status.best else "",
            _params(t.spec.sweep_point or t.spec.parameters),
        ]
        for i, (v, t) in enumerate(top)
    ]
    table = _table(["#", "Phase", "Trial", f"best {metric}", "at epoch", "Parameters"], rows, "best")
    return f'<section id="best"><h2>Best trials</h2>{chart}{table}</section>'


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _failures(trials: Sequence[Trial]) -> str:
    ended = [
        t for t in trials if t.status.state in (TrialState.FAILED, TrialState.STOPPED, TrialState.SKIPPED)
    ]
    counts = Counter((t.status.state.value, t.status.reason or "Unknown") for t in ended)
    parts = ['<section id="failures"><h2>Failure breakdown</h2>']
    if not counts:
        parts.append("<p>No trial failed, stopped or was skipped.</p></section>")
        return "".join(parts)
    bars = [
        (f"{state}: {reason}", float(n), svg.STATE_COLORS.get(state, "#888"))
        for (state, reason), n in counts.most_common()
    ]
    parts.append(
        svg.bar_chart("failures", "reasons", "trials by end state and reason", bars, xlabel="trials")
    )
    rows = [
        [
            t.spec.phase,
            t.name,
            t.status.state.value,
            t.status.reason or "",
            t.status.attempt,
            (t.status.message or "")[:300],
        ]
        for t in ended
    ]
    parts.append(_table(["Phase", "Trial", "State", "Reason", "Attempts", "Message"], rows, "failures"))
    parts.append("</section>")
    return "".join(parts)


def _timeline(status: TrainingCampaignStatus, trials: Sequence[Trial]) -> str:
    timed = [t for t in trials if t.status.start_time and t.status.completion_time]
    if not timed:
        return '<section id="timeline"><h2>Timeline</h2><p>No trial has run yet.</p></section>'
    origin = min(
        [t.status.start_time for t in timed if t.status.start_time]
        + ([status.start_time] if status.start_time else [])
    )
    rows = []
    for t in sorted(timed, key=lambda t: (t.status.start_time or origin, t.name)):
        assert t.status.start_time and t.status.completion_time
        s = (t.status.start_time - origin).total_seconds()
        e = (t.status.completion_time - origin).total_seconds()
        tip = f"{t.name} {t.status.state.value} ({t.status.reason}) {e - s:.1f}s, attempt {t.status.attempt}"
        rows.append(
            (f"{t.spec.phase}/{t.name[-10:]}", s, e, svg.STATE_COLORS.get(t.status.state.value, "#888"), tip)
        )
    chart = svg.timeline("timeline", "trials", "trials over time (colour: end state)", rows)
    return f'<section id="timeline"><h2>Timeline</h2>{chart}</section>'


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{font-weight:600}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{background:#fff;border:1px solid #eee}svg .tick{font-size:10px;fill:#555}
svg .title{font-weight:600}svg text{font-size:11px;font-family:system-ui,sans-serif}
"""


def build_report(data: CampaignData, generated: datetime | None = None) -> str:
    """The whole HTML document of a campaign, wherever its data was read from."""
    campaign, status, trials = data.campaign, data.status, list(data.trials)
    by_phase: dict[str, list[Trial]] = {}
    for t in trials:
        by_phase.setdefault(t.spec.phase, []).append(t)
    best = {p.name: p.best.trial if p.best else None for p in status.phases}
    when = (generated or datetime.now(UTC)).isoformat(timespec="seconds")
    name = escape(campaign.metadata.name)
    body = [
        f"<h1>Campaign {name}</h1><p>Report generated {escape(when)}.</p>",
        _summary(campaign, status, trials),
        _phases(status),
        *(
            _phase_section(campaign, p, by_phase.get(p.name, []), best.get(p.name))
            for p in campaign.spec.phases
        ),
        _distributions(campaign, by_phase),
        _best(campaign, trials),
        _failures(trials),
        _timeline(status, trials),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Campaign {name} report</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
