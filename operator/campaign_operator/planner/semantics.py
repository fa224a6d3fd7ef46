"""Checks a schema cannot express: they need CEL compilation or sweep arithmetic."""

from __future__ import annotations

from campaign_operator.api.campaign import TrainingCampaign

from .expressions import ExpressionError, compile_expression
from .sweeps import count_points


def semantic_problems(campaign: TrainingCampaign) -> list[str]:
    spec = campaign.spec
    problems: list[str] = []
    sizes = {p.name: count_points(p.sweep) for p in spec.phases}
    total = sum(sizes.values())
    if total > spec.max_trials:
        detail = ", ".join(f"{n}: {s}" for n, s in sizes.items())
        problems.append(
            f"spec.maxTrials: the sweeps expand to {total} trials ({detail}),"
            f" more than maxTrials={spec.max_trials};"
            " raise spec.maxTrials (at most 100000) or shrink the sweeps"
        )
    for i, phase in enumerate(spec.phases):
        sources = [(f"spec.phases[{i}].when", phase.when)]
        if phase.gate is not None:
            sources.append((f"spec.phases[{i}].gate.expression", phase.gate.expression))
        sources += [
            (f"spec.phases[{i}].skipWhen[{j}].expression", r.expression)
            for j, r in enumerate(phase.skip_when)
        ]
        for field, source in sources:
            if source is None:
                continue
            try:
                compile_expression(field, source)
            except ExpressionError as e:
                problems.append(str(e))
        sweep = phase.sweep
        if sweep is not None and sweep.matrix is not None:
            axes = set(sweep.matrix.axes)
            for j, entry in enumerate(sweep.matrix.exclude):
                unknown = sorted(set(entry) - axes)
                if unknown:
                    problems.append(
                        f"spec.phases[{i}].sweep.matrix.exclude[{j}]: unknown axis {unknown};"
                        f" axes are {sorted(axes)}"
                    )
    return problems
