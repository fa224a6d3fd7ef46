"""The campaign report: one self-contained HTML file that opens offline.

Charts are plotly figures, with plotly.js inlined once in the head (no CDN, no other file): a
well-kept library gives legends, hover with each line's parameters, integer ticks and labels that are
not clipped, and parallel coordinates, which the hand-written SVG this replaced got wrong or lacked.

Sections: summary (with the SMOKE/PARTIAL banner), phases (gates with the values they saw, promoted
configurations), per phase its learning curves, failure rate against maxFailureRate, a multi-objective
phase's Pareto front, parameters against the objective and a "metrics at checkpoints" table (the
quick-test report's; seed-sweep phases show mean ± std across seeds); metric distributions, best
trials, failures, timeline.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from campaign_operator.api.campaign import Phase, PhaseStatus, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.common import Mode, TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle import outcomes
from campaign_operator.planner.trials import phase_objective

from .front import front_figure
from .live import THRESHOLD_COLOR, scale_banner
from .results import CampaignData, flatten, point_label, value_label

# Metrics that describe the run, not the model: left out of curves and checkpoint tables.
HOUSEKEEPING = frozenset({"samples_per_sec", "epoch_time_s", "lr"})
PREFERRED = ("loss", "val_loss", "r2", "rmse", "accuracy", "action_loss", "price_loss", "ic", "sharpe")
MAX_TABLE_METRICS = 6
MAX_CHECKPOINT_ROWS = 5
TOP_TRIALS = 10
LINE_LABELS = 10
"""Curves with at most this many lines get their parameters written at each line's end too."""
THRESHOLD_DASH = "dash"
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79",
)  # fmt: skip
STATE_COLORS = {
    "Succeeded": "#2ca02c",
    "Failed": "#d62728",
    "Stopped": "#ff7f0e",
    "Skipped": "#9e9e9e",
    "Running": "#1f77b4",
    "Pending": "#cfcfcf",
}


# -- pure helpers -----------------------------------------------------------------------------------
def is_ensemble(phase: Phase) -> bool:
    return phase.sweep is not None and phase.sweep.seeds is not None


def objective_of(campaign: TrainingCampaign, phase: Phase) -> tuple[str, Mode]:
    o = phase_objective(campaign, phase)  # a multi-objective phase's first objective
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


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def params_text(trial: Trial) -> str:
    """Every sweep parameter of the trial, unabridged (tables)."""
    point = trial.spec.sweep_point or {}
    return ", ".join(outcomes.point_label({k: v}) for k, v in point.items()) or "(phase defaults)"


def row_labels(trials: Sequence[Trial], limit: int = 48) -> list[str]:
    """`phase: sweep point` per trial for a chart's category axis; the trial's hash is added where two
    cut labels would be the same (one category would merge their bars)."""
    labels = [f"{t.spec.phase}: {point_label(t, limit)}" for t in trials]
    seen = Counter(labels)
    return [f"{lab} ({t.name[-6:]})" if seen[lab] > 1 else lab for lab, t in zip(labels, trials, strict=True)]


def params_html(trial: Trial) -> str:
    """The same, one per line, for a chart's hover."""
    point = trial.spec.sweep_point or {}
    return "<br>".join(escape(outcomes.point_label({k: v})) for k, v in point.items()) or "(phase defaults)"


def epoch_step(last: float, ticks: int = 8) -> int:
    """An integer tick step giving at most `ticks` ticks: 1, 2, 5, 10, 20, 50, ..."""
    scale = 1
    while True:
        for m in (1, 2, 5):
            if last / (m * scale) <= ticks:
                return m * scale
        scale *= 10


# -- charts ---------------------------------------------------------------------------------------
def _layout(fig: Any, title: str, **extra: Any) -> Any:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=extra.pop("height", 420),
        margin={"l": 60, "r": extra.pop("right", 30), "t": 50, "b": 50},
        font={"size": 12},
        hoverlabel={"align": "left"},
        **extra,
    )
    return fig


def _epoch_axis(fig: Any, last: float, first: float = 1.0) -> None:
    """Integer epoch ticks over exactly the epochs run (plotly's own range overshoots to the next
    tick: a 4-epoch run showed an empty epoch 5)."""
    pad = max(0.2, (last - first) * 0.03)
    fig.update_xaxes(
        title_text="epoch",
        tickmode="linear",
        tick0=0,
        dtick=epoch_step(last),
        tickformat="d",
        range=[first - pad, last + pad],
    )


def _finite(values: Sequence[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def curves_figure(
    phase: Phase, trials: Sequence[Trial], metric: str, y_values: Sequence[float] | None
) -> Any:
    """One line per trial, named and hovered by its sweep point; failed trials dashed. A seed sweep
    adds the mean ± std band over its seeds."""
    fig = go.Figure()
    ensemble = is_ensemble(phase) and len(trials) > 1
    labelled = len(trials) <= LINE_LABELS
    last = 1.0
    ends: list[tuple[float, float, str, str]] = []
    for i, t in enumerate(trials):
        xs, ys = curve(t, metric)
        if not xs:
            continue
        last = max(last, xs[-1])
        label = point_label(t)
        failed = t.status.state == TrialState.FAILED
        line_color = "#9ab" if ensemble else color(i)
        ends.append((xs[-1], ys[-1], label, "#567" if ensemble else line_color))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=_finite(ys),
                name=label + (" (failed)" if failed else ""),
                mode="lines+markers",
                line={"color": line_color, "dash": "dot" if failed else "solid"},
                marker={"size": 5},
                hovertemplate=(
                    f"<b>{params_html(t)}</b><br>trial {t.name} ({t.status.state.value})"
                    f"<br>epoch %{{x}}<br>{metric} %{{y:.4g}}<extra></extra>"
                ),
            )
        )
    if ensemble:
        _add_band(fig, trials, metric)
    _layout(
        fig,
        f"{phase.name}: {metric} per trial" + (" (mean ± std across seeds)" if ensemble else ""),
        right=220 if labelled else 30,
        showlegend=True,
        # Below the plot: the right margin is for the labels at the lines' ends.
        legend={"title": {"text": "sweep point"}, "orientation": "h", "yanchor": "top", "y": -0.18},
    )
    _epoch_axis(fig, last)
    fig.update_yaxes(title_text=metric)
    plotted = [v for t in trials for v in curve(t, metric)[1] if math.isfinite(v)]
    shown = list(y_values) if y_values else plotted  # the y axis spans these: labels keep to it
    if y_values:
        lo, hi = min(y_values), max(y_values)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        fig.update_yaxes(range=[lo - pad, hi + pad])  # diverged trials leave the view, not flatten it
    if labelled and shown:
        _end_labels(fig, ends, min(shown), max(shown))
    return fig


def _end_labels(fig: Any, ends: list[tuple[float, float, str, str]], lo: float, hi: float) -> None:
    """Each line's sweep point beside its last point, moved apart where lines end close together
    (a thin leader points at the line), never outside the plotted range."""
    inside = [e for e in ends if math.isfinite(e[1]) and lo <= e[1] <= hi]
    placed = spread([y for _, y, _, _ in inside], (hi - lo) * 0.08 or 1.0, lo, hi)
    for (x, y, label, c), at in zip(inside, placed, strict=True):
        fig.add_annotation(
            x=x,
            y=y,
            ax=18,
            ay=at,
            ayref="y",
            text=label,
            xanchor="left",
            showarrow=True,
            arrowhead=0,
            arrowwidth=1,
            arrowcolor=c,
            font={"color": c, "size": 11},
        )


def spread(ys: Sequence[float], gap: float, lo: float = -math.inf, hi: float = math.inf) -> list[float]:
    """Label heights for line ends at `ys`: in the same order, at least `gap` apart, centred on the
    ends they label, and kept within [lo, hi] where the labels fit there."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = [0.0] * len(ys)
    prev = -math.inf
    for i in order:
        out[i] = max(ys[i], prev + gap)
        prev = out[i]
    if ys:
        shift = (sum(out) - sum(ys)) / len(ys)
        shift = max(shift, max(out) - hi)  # not above the plot
        shift = min(shift, min(out) - lo)  # nor below it (this wins: the x axis is below)
        out = [v - shift for v in out]
    return out


def _add_band(fig: Any, trials: Sequence[Trial], metric: str) -> None:
    epochs = sorted({e for t in trials for e in curve(t, metric)[0]})
    xs, lo, hi, mu = [], [], [], []
    for e in epochs:
        vals = [v for t in trials if (v := value_at(t, metric, int(e))) is not None and math.isfinite(v)]
        if len(vals) == len(trials):
            m, s = mean_std(vals)
            xs.append(e)
            lo.append(m - s)
            hi.append(m + s)
            mu.append(m)
    fig.add_trace(go.Scatter(x=xs, y=lo, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=hi,
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(0,0,0,0.12)",
            name="± std",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=mu,
            mode="lines",
            line={"color": "#000", "width": 3},
            name=f"mean over {len(trials)} seeds",
            hovertemplate=f"epoch %{{x}}<br>mean {metric} %{{y:.4g}}<extra></extra>",
        )
    )


def threshold_line(fig: Any, limit: float, **where: Any) -> None:
    """maxFailureRate as the report draws it everywhere: one colour, dashed, labelled."""
    fig.add_hline(
        y=limit,
        line={"color": THRESHOLD_COLOR, "dash": THRESHOLD_DASH, "width": 2},
        annotation={"text": f"maxFailureRate {limit:.0%}", "font": {"color": THRESHOLD_COLOR}},
        annotation_position="top left",
        **where,
    )


def failure_rate_figure(phase: PhaseStatus, trials: Sequence[Trial]) -> Any:
    """The phase's failure rate as its trials finished (failed so far over its counted trials, as
    the planner counts it) against maxFailureRate."""
    counted = max(1, phase.counts.total - phase.counts.skipped)
    ended = sorted(
        (t for t in trials if t.status.state.is_terminal and t.status.state != TrialState.SKIPPED),
        key=lambda t: (t.status.completion_time or datetime.min.replace(tzinfo=UTC), t.name),
    )
    xs, ys, hover, failed = [0], [0.0], ["start"], 0
    for n, t in enumerate(ended, 1):
        failed += t.status.state == TrialState.FAILED
        xs.append(n)
        ys.append(failed / counted)
        hover.append(f"{params_html(t)}<br>{t.status.state.value} ({t.status.reason or ''})")
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            line={"shape": "hv", "color": "#333"},
            name="failure rate",
            customdata=hover,
            hovertemplate="after %{x} trials: %{y:.1%}<br>%{customdata}<extra></extra>",
        )
    )
    # A legend entry for the threshold: the same dashed line in the same colour.
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            name=f"maxFailureRate {phase.max_failure_rate:.0%}",
            line={"color": THRESHOLD_COLOR, "dash": THRESHOLD_DASH, "width": 2},
        )
    )
    threshold_line(fig, phase.max_failure_rate)
    top = max([*ys, phase.max_failure_rate]) * 1.25 or 0.1
    _layout(
        fig,
        f"{phase.name}: failure rate {phase.failure_rate:.1%} vs maxFailureRate {phase.max_failure_rate:.0%}"
        f" ({phase.counts.failed} failed of {counted} counted, {phase.counts.skipped} skipped excluded)",
        height=300,
        showlegend=True,
    )
    fig.update_xaxes(
        title_text="trials finished",
        tickmode="linear",
        tick0=0,
        dtick=epoch_step(max(xs)),
        tickformat="d",
        range=[0, max(xs) + 0.5],
    )
    fig.update_yaxes(title_text="failure rate", tickformat=".0%", range=[0, min(1.0, top)])
    return fig


def _axis_values(values: list[Any]) -> dict[str, Any]:
    """A parallel-coordinates dimension: numbers as they are, anything else as labelled categories."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return {"values": [float(v) for v in values]}
    labels = sorted({value_label(v) for v in values})
    index = {lab: i for i, lab in enumerate(labels)}
    return {
        "values": [index[value_label(v)] for v in values],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
    }


def parallel_figure(phase: Phase, trials: Sequence[Trial], objective: str, mode: Mode) -> Any | None:
    """Each succeeded trial as a line through its sweep parameters to its objective (colour: the
    objective); None when fewer than two trials or no parameter varies."""
    scored = [
        t for t in trials if t.status.state == TrialState.SUCCEEDED and _objective(t, objective) is not None
    ]
    keys = sorted({k for t in scored for k in t.spec.sweep_point})
    keys = [k for k in keys if len({json.dumps(t.spec.sweep_point.get(k), default=str) for t in scored}) > 1]
    if len(scored) < 2 or not keys:
        return None
    objective_values = [_objective(t, objective) for t in scored]
    dimensions = [
        {"label": k, **_axis_values([t.spec.sweep_point.get(k, "—") for t in scored])} for k in keys
    ]
    dimensions.append({"label": f"{objective} ({mode.value})", "values": objective_values})
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": objective_values,
                "colorscale": "Viridis",
                "reversescale": mode == Mode.MIN,
                "showscale": True,
                "colorbar": {"title": {"text": objective}},
            },
            dimensions=dimensions,
            labelside="bottom",
        )
    )
    _layout(
        fig,
        f"{phase.name}: parameters vs {objective} (succeeded trials; colour: {objective})",
        height=380,
        right=80,
    )
    fig.update_layout(margin={"t": 60, "b": 60})
    return fig


def _objective(trial: Trial, metric: str) -> float | None:
    best = trial.status.best.metrics.get(metric) if trial.status.best else None
    value = best if best is not None else trial.status.metrics.get(metric)
    return value if value is not None and math.isfinite(value) else None


def chart(kind: str, key: str, fig: Any) -> str:
    """One figure as a div; plotly.js itself is in the page's head once."""
    body = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="chart" data-plot="{escape(kind)}" data-key="{escape(key)}">{body}</div>'


# -- sections ---------------------------------------------------------------------------------------
def _banner(campaign: TrainingCampaign) -> str:
    text = scale_banner(campaign.spec.scale_down)
    return f'<p class="banner" id="scale-down">{escape(text)}</p>' if text else ""


def _summary(
    campaign: TrainingCampaign, status: TrainingCampaignStatus, trials: Sequence[Trial], runner: str | None
) -> str:
    took = (
        (status.completion_time - status.start_time).total_seconds()
        if status.completion_time and status.start_time
        else None
    )
    counts = Counter(t.status.state.value for t in trials)
    items = [
        ("State", f"{status.state.value}: {status.message or ''}"),
        *([("Runner", runner)] if runner else []),
        ("Trials", ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none"),
        ("Started", status.start_time.isoformat(timespec="seconds") if status.start_time else "—"),
        ("Duration", duration(took)),
        ("Objective", f"{campaign.spec.objective.metric} ({campaign.spec.objective.mode.value})"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<section id="summary"><dl>{dl}</dl></section>'


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return '<span class="pending">pending</span>'
    return '<span class="pass">✓ passed</span>' if passed else '<span class="fail">✗ not met</span>'


def gate_terms(expression: str, values: dict[str, Any]) -> list[tuple[str, Any]]:
    """The `phase.…` paths the expression reads, with the values it was evaluated with."""
    out: list[tuple[str, Any]] = []
    for path in dict.fromkeys(re.findall(r"\bphase(?:\.[A-Za-z_]\w*)+", expression)):
        value: Any = values
        for part in path.split(".")[1:]:
            value = value.get(part) if isinstance(value, dict) else None
        out.append((path, value))
    return out


def _threshold_cell(p: PhaseStatus) -> str:
    level = "fail" if p.failure_rate > p.max_failure_rate else "pass"
    return (
        f'<span class="{level}">{p.failure_rate:.1%}</span> vs '
        f'<span class="threshold">max {p.max_failure_rate:.0%}</span>'
    )


def _phases(campaign: TrainingCampaign, status: TrainingCampaignStatus, trials: Sequence[Trial]) -> str:
    rows = []
    for p in status.phases:
        c = p.counts
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{x}</td>"
                for x in (
                    escape(p.name),
                    escape(p.state.value),
                    f"{c.succeeded}/{c.failed}/{c.stopped}/{c.skipped}/{c.total}",
                    _threshold_cell(p),
                    _verdict(p.gate.passed) if p.gate else "—",
                    escape(f"{p.best.metric}={p.best.value:.4g} ({p.best.trial})") if p.best else "—",
                    escape(p.message or ""),
                )
            )
            + "</tr>"
        )
    headers = ["Phase", "State", "ok/fail/stop/skip/total", "Failure rate vs max", "Gate", "Best", "Message"]
    head = "".join(f"<th>{h}</th>" for h in headers)
    parts = [
        f'<section id="phases"><h2>Phases</h2><table class="phases"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    ]
    parts += [_gate(p) for p in status.phases if p.gate is not None]
    by_name = {p.name: p for p in campaign.spec.phases}
    statuses = {p.name: p for p in status.phases}
    parts += [
        _promoted(by_name[p.name], p, statuses, trials)
        for p in status.phases
        if p.name in by_name and by_name[p.name].from_phase
    ]
    parts.append("</section>")
    return "".join(parts)


def _gate(p: PhaseStatus) -> str:
    assert p.gate is not None
    terms = gate_terms(p.gate.expression, p.gate.values)
    rows = "".join(
        f"<tr><td><code>{escape(path)}</code></td><td>{_cell(v) if v is not None else '—'}</td></tr>"
        for path, v in terms
    )
    seen = "".join(
        f"<tr><td><code>{escape(k)}</code></td><td>{_cell(v)}</td></tr>"
        for k, v in flatten("phase", p.gate.values).items()
    )
    message = f"<p>{escape(p.gate.message)}</p>" if p.gate.message else ""
    return (
        f'<div class="gate" id="gate-{escape(p.name)}"><h3>Gate of {escape(p.name)}: '
        f"<code>{escape(p.gate.expression)}</code> {_verdict(p.gate.passed)}</h3>{message}"
        f'<table class="gate-values"><thead><tr><th>Value read</th><th>Was</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        "<details><summary>every value the gate saw</summary>"
        f"<table><tbody>{seen}</tbody></table></details></div>"
    )


def _promoted(phase: Phase, p: PhaseStatus, statuses: dict[str, PhaseStatus], trials: Sequence[Trial]) -> str:
    assert phase.from_phase is not None
    source = phase.from_phase.phase
    best = statuses[source].best if source in statuses else None
    trial = next((t for t in trials if best is not None and t.name == best.trial), None)
    whose = "its best trial's parameters"
    if best is not None:
        params = f", {params_text(trial)}" if trial is not None else ""
        whose = f"its best trial {best.trial}: {best.metric}={best.value:.4g}{params}"
    if not p.promoted:
        body = "<p>nothing promoted yet</p>"
    else:
        body = _table(
            ["Parameter", "Value"], [[k, value_label(v)] for k, v in p.promoted.items()], "promoted"
        )
    return (
        f'<div class="promoted" id="promoted-{escape(phase.name)}"><h3>Promoted into {escape(phase.name)}'
        f" from {escape(source)} (fromPhase: {escape(whose)})</h3>{body}</div>"
    )


def _phase_section(
    campaign: TrainingCampaign,
    phase: Phase,
    status: PhaseStatus | None,
    trials: Sequence[Trial],
    best: str | None,
) -> str:
    objective, mode = objective_of(campaign, phase)
    ran = [t for t in trials if t.status.history]
    parts = [f'<section class="phase" id="phase-{escape(phase.name)}"><h2>Phase {escape(phase.name)}</h2>']
    if phase.description:
        parts.append(f"<p>{escape(phase.description)}</p>")
    rate = (
        [chart("failurerate", phase.name, failure_rate_figure(status, trials))]
        if status is not None and status.counts.total
        else []
    )
    if not ran:
        parts.append('<div class="charts">' + "".join(rate) + "</div>")
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
    charts = [
        chart(
            "curves",
            f"{phase.name}:{metric}",
            curves_figure(phase, ran, metric, ok_values if metric == objective and ok_values else None),
        )
        for metric in metrics
    ]
    charts += rate
    front = front_figure(phase, trials)
    if front is not None:
        charts.append(chart("front", phase.name, front))
    parallel = parallel_figure(phase, trials, objective, mode)
    if parallel is not None:
        charts.append(chart("parallel", phase.name, parallel))
    parts.append('<div class="charts">' + "".join(charts) + "</div>")
    if is_ensemble(phase):
        subject, pool = f"mean ± std across {len(ran)} seeds", ran
    else:
        chosen = next((t for t in ran if t.name == best), None) or ran[0]
        who = chosen.name + (f" ({params_text(chosen)})" if chosen.spec.sweep_point else "")
        subject, pool = (f"best trial {who}" if chosen.name == best else f"trial {who}", [chosen])
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
        fig = go.Figure()
        for i, p in enumerate(campaign.spec.phases):
            done = [
                t
                for t in by_phase.get(p.name, [])
                if t.status.state == TrialState.SUCCEEDED
                and metric in t.status.metrics
                and math.isfinite(t.status.metrics[metric])
            ]
            if done:
                fig.add_trace(
                    go.Box(
                        x=[t.status.metrics[metric] for t in done],
                        name=p.name,
                        boxpoints="all",
                        boxmean="sd",
                        jitter=0.4,
                        marker={"color": color(i)},
                        orientation="h",
                        customdata=[params_html(t) for t in done],
                        hovertemplate=f"%{{customdata}}<br>{metric} %{{x:.4g}}<extra></extra>",
                    )
                )
        if fig.data:
            _layout(
                fig,
                f"final {metric} of succeeded trials (box: quartiles, dashed: mean ± std)",
                height=120 + 60 * len(fig.data),
                showlegend=True,
            )
            fig.update_xaxes(title_text=metric)
            charts.append(chart("distribution", metric, fig))
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
    fig = go.Figure()
    label = dict(zip((t.name for _, t in top), row_labels([t for _, t in top]), strict=True))
    for i, p in enumerate(campaign.spec.phases):
        mine = [(v, t) for v, t in top if t.spec.phase == p.name]
        if mine:
            fig.add_trace(  # dots, not bars from 0: the differences between the best are what matter
                go.Scatter(
                    x=[v for v, _ in mine],
                    y=[label[t.name] for _, t in mine],
                    mode="markers",
                    name=p.name,
                    marker={"color": color(i), "size": 12},
                    customdata=[f"{t.name}<br>{params_html(t)}" for _, t in mine],
                    hovertemplate=f"%{{customdata}}<br>best {metric} %{{x:.4g}}<extra></extra>",
                )
            )
    order = [label[t.name] for _, t in top]
    _layout(
        fig,
        f"top {len(top)} trials by best {metric} ({mode.value}; best first)",
        height=140 + 28 * len(top),
        showlegend=True,
        legend={"title": {"text": "phase"}},
    )
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(order)), automargin=True)
    fig.update_xaxes(title_text=metric)
    rows = [
        [i + 1, t.spec.phase, t.name, v, t.status.best.epoch if t.status.best else "", params_text(t)]
        for i, (v, t) in enumerate(top)
    ]
    table = _table(["#", "Phase", "Trial", f"best {metric}", "at epoch", "Parameters"], rows, "best")
    return f'<section id="best"><h2>Best trials</h2>{chart("best", metric, fig)}{table}</section>'


def _failures(trials: Sequence[Trial]) -> str:
    ended = [
        t for t in trials if t.status.state in (TrialState.FAILED, TrialState.STOPPED, TrialState.SKIPPED)
    ]
    parts = ['<section id="failures"><h2>Failures, stops and skips</h2>']
    if not ended:
        parts.append("<p>No trial failed, stopped or was skipped.</p></section>")
        return "".join(parts)
    fig = go.Figure()
    for state in ("Failed", "Stopped", "Skipped"):
        counts = Counter(t.status.reason or "Unknown" for t in ended if t.status.state.value == state)
        if counts:
            reasons = counts.most_common()
            fig.add_trace(
                go.Bar(
                    x=[n for _, n in reasons],
                    y=[r for r, _ in reasons],
                    name=state,
                    orientation="h",
                    marker={"color": STATE_COLORS[state]},
                    hovertemplate=f"{state}: %{{y}}<br>%{{x}} trial(s)<extra></extra>",
                )
            )
    _layout(
        fig,
        "trials by end state and reason",
        height=160 + 30 * len({t.status.reason for t in ended}),
        showlegend=True,
        barmode="stack",
        legend={"title": {"text": "end state"}},
    )
    fig.update_xaxes(title_text="trials", tickformat="d", dtick=epoch_step(len(ended)))
    fig.update_yaxes(automargin=True)
    parts.append(chart("failures", "reasons", fig))
    rows = [
        [
            t.spec.phase,
            params_text(t),
            t.name,
            t.status.state.value,
            t.status.reason or "",
            t.status.attempt,
            (t.status.message or "")[:300],
        ]
        for t in ended
    ]
    parts.append(
        _table(["Phase", "Parameters", "Trial", "State", "Reason", "Attempts", "Message"], rows, "failures")
    )
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
    timed.sort(key=lambda t: (t.status.start_time or origin, t.name))
    labels = row_labels(timed)
    fig = go.Figure()
    for state, c in STATE_COLORS.items():
        mine = [(lab, t) for lab, t in zip(labels, timed, strict=True) if t.status.state.value == state]
        if not mine:
            continue
        starts = [((t.status.start_time or origin) - origin).total_seconds() for _, t in mine]
        ends = [((t.status.completion_time or origin) - origin).total_seconds() for _, t in mine]
        fig.add_trace(
            go.Bar(
                base=starts,
                x=[e - s for s, e in zip(starts, ends, strict=True)],
                y=[lab for lab, _ in mine],
                orientation="h",
                name=state,
                marker={"color": c},
                customdata=[
                    f"{t.name} ({t.status.reason}), attempt {t.status.attempt}<br>{params_html(t)}"
                    for _, t in mine
                ],
                hovertemplate="%{customdata}<br>%{base:.1f}s → +%{x:.1f}s<extra></extra>",
            )
        )
    _layout(
        fig,
        "trials over time (colour: end state)",
        height=120 + 22 * len(timed),
        showlegend=True,
        legend={"title": {"text": "end state"}},
    )
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(labels)), automargin=True)
    fig.update_xaxes(title_text="seconds since the campaign started")
    return f'<section id="timeline"><h2>Timeline</h2>{chart("timeline", "trials", fig)}</section>'


CSS = f"""
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}}
h1{{margin-bottom:4px}}h2{{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}}
dl{{display:grid;grid-template-columns:max-content auto;gap:2px 16px}}dt{{font-weight:600}}
table{{border-collapse:collapse;margin:8px 0;font-size:13px}}
th,td{{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}}th{{background:#f5f5f5}}
.chart{{border:1px solid #eee;margin:8px 0}}
.banner{{background:#ffeb3b;color:#000;font-weight:700;padding:8px 12px;border:2px solid #000}}
.pass{{color:#2ca02c;font-weight:600}}.fail{{color:#d62728;font-weight:600}}.pending{{color:#777}}
.threshold{{color:{THRESHOLD_COLOR};border-bottom:2px dashed {THRESHOLD_COLOR}}}
"""


def build_report(data: CampaignData, generated: datetime | None = None) -> str:
    """The whole HTML document of a campaign, wherever its data was read from."""
    campaign, status, trials = data.campaign, data.status, list(data.trials)
    by_phase: dict[str, list[Trial]] = {}
    for t in trials:
        by_phase.setdefault(t.spec.phase, []).append(t)
    statuses = {p.name: p for p in status.phases}
    best = {p.name: p.best.trial if p.best else None for p in status.phases}
    when = (generated or datetime.now(UTC)).isoformat(timespec="seconds")
    name = escape(campaign.metadata.name)
    body = [
        f"<h1>Campaign {name}</h1>",
        _banner(campaign),
        f"<p>Report generated {escape(when)}.</p>",
        _summary(campaign, status, trials, data.runner),
        _phases(campaign, status, trials),
        *(
            _phase_section(campaign, p, statuses.get(p.name), by_phase.get(p.name, []), best.get(p.name))
            for p in campaign.spec.phases
        ),
        _distributions(campaign, by_phase),
        _best(campaign, trials),
        _failures(trials),
        _timeline(status, trials),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Campaign {name} report</title><style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        + "".join(body)
        + "</body></html>\n"
    )
