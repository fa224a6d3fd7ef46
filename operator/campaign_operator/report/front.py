"""The report's Pareto-front chart of a multi-objective phase (Phase.objectives): every comparable
trial by the first two objectives, the front (over all of the phase's objectives) highlighted and
joined in its order, so the trade-off the phase found reads at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from campaign_operator.api.campaign import Phase
from campaign_operator.api.common import Objective
from campaign_operator.api.trial import Trial
from campaign_operator.planner.pareto import FrontPoint, objective_values, pareto_front

from .results import point_label

FRONT_COLOR = "#d62728"
OTHERS_COLOR = "#9e9e9e"


def _hover(point: FrontPoint, objectives: Sequence[Objective]) -> str:
    values = "<br>".join(f"{o.metric}: {v:.4g}" for o, v in zip(objectives, point.values, strict=True))
    params = point_label(point.trial)
    return f"{point.name}<br>{params}<br>{values}" if params else f"{point.name}<br>{values}"


def _trace(points: Sequence[FrontPoint], objectives: Sequence[Objective], **style: Any) -> Any:
    return go.Scatter(
        x=[p.values[0] for p in points],
        y=[p.values[1] for p in points],
        text=[_hover(p, objectives) for p in points],
        hovertemplate="%{text}<extra></extra>",
        **style,
    )


def front_figure(phase: Phase, trials: Sequence[Trial]) -> Any | None:
    """None for a single-objective phase, or while no trial has every objective's value."""
    objectives = phase.objectives or []
    if len(objectives) < 2:
        return None
    comparable = [
        FrontPoint(t, values) for t in trials if (values := objective_values(t, objectives)) is not None
    ]
    if not comparable:
        return None
    front = pareto_front(trials, objectives)
    on_front = {p.name for p in front}
    others = [p for p in comparable if p.name not in on_front]
    fig = go.Figure()
    fig.add_trace(
        _trace(others, objectives, mode="markers", name="dominated", marker={"color": OTHERS_COLOR})
    )
    fig.add_trace(
        _trace(
            front,
            objectives,
            mode="markers+lines" if len(objectives) == 2 else "markers",
            name=f"Pareto front ({len(front)})",
            marker={"color": FRONT_COLOR, "size": 10},
            line={"color": FRONT_COLOR},
        )
    )
    x, y = objectives[0], objectives[1]
    over = "" if len(objectives) == 2 else f"; front over all {len(objectives)} objectives"
    fig.update_layout(
        title={"text": f"{phase.name}: {x.metric} vs {y.metric} ({len(comparable)} trials{over})", "x": 0},
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 30, "t": 50, "b": 50},
        xaxis_title=f"{x.metric} ({x.mode.value})",
        yaxis_title=f"{y.metric} ({y.mode.value})",
        hoverlabel={"align": "left"},
    )
    return fig
