"""`campaign plan FILE [-o text|json]`: what a manifest will run, phase by phase, before it runs."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from campaign_operator.api.campaign import SearchSweep
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.scaledown import describe
from campaign_operator.planner.sweeps import search_of

from .errors import BadInput
from .loading import judge_file, report_problems
from .preview import FIRST_TRIALS, CampaignPreview, PhasePreview, preview
from .scaledown import scale_down_options, scaled


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return " ".join(f"{k}={_value(x)}" for k, x in v.items())
    return json.dumps(v)


_MISSING = object()


def _weights(weights: dict[str, float]) -> str:
    """fromPhase.weights as the sum it ranks the source's front by (objectives rescaled over it)."""
    return " + ".join(f"{w:g}*{m}" for m, w in weights.items()) + " (each rescaled over the front)"


def _split(p: PhasePreview) -> tuple[dict[str, Any], list[str]]:
    """(parameters every trial of the phase shares, the keys whose values differ between trials)."""
    keys = list(dict.fromkeys(k for t in p.trials for k in t.parameters))
    first = p.trials[0].parameters if p.trials else {}
    common = {
        k: first[k]
        for k in keys
        if k in first and all(t.parameters.get(k, _MISSING) == first[k] for t in p.trials)
    }
    return common, [k for k in keys if k not in common]


def _print_phase(p: PhasePreview, console: Console) -> None:
    phase = p.phase
    console.print()
    console.print(
        Text(f"phase {phase.name}", style="bold"),
        f" priority {phase.priority}"
        f"  dependsOn {', '.join(phase.depends_on) or '-'}"
        f"  trials {p.planned} ({p.skipped} skipped)"
        f"  epochs {p.epochs}  maxFailureRate {phase.failure_policy.max_failure_rate:.0%}",
    )
    common, varying = _split(p)
    facts: list[tuple[str, str]] = []
    if common:
        facts.append(("every trial", " ".join(f"{k}={_value(v)}" for k, v in common.items())))
    if p.promoted_from:
        src = p.promoted_from
        facts.append(
            (
                "promoted",
                (
                    f"from the {src['phase']} front trial of highest {_weights(src['weights'])};"
                    if "weights" in src
                    else f"from the best {src['phase']} trial by {src['metric']} ({src['mode']});"
                )
                + f" unknown until it has run: {', '.join(src['keys']) or 'nothing'}",
            )
        )
    if (search := search_of(phase)) is not None:
        facts.append(("search", _search_fact(search, p.searched)))
    if phase.when:
        facts.append(("when", phase.when))
    if phase.gate:
        facts.append(("gate", phase.gate.expression))
    reasons = Counter(t.skip[0] for t in p.trials if t.skip is not None)
    if reasons:
        facts.append(("skipped", ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))))
    for label, text in facts:
        console.print(f"  {label}: {text}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("trial", no_wrap=True)
    for key in varying:
        table.add_column(key)
    if phase.skip_when:
        table.add_column("skipped")
    for t in p.trials[:FIRST_TRIALS]:
        cells = [_value(t.parameters[k]) if k in t.parameters else "-" for k in varying]
        if phase.skip_when:
            cells.append(t.skip[0] if t.skip else "")
        table.add_row(t.name, *cells)
    rest = len(p.trials) - FIRST_TRIALS
    if rest > 0:
        table.add_row(f"... and {rest} more", *[""] * (len(table.columns) - 1))
    if p.trials:
        console.print(table)


def _search_fact(search: SearchSweep, trials: int) -> str:
    return (
        f"{search.algorithm.value}, {trials} trials over {', '.join(sorted(search.space))} (seed"
        f" {search.seed}); each suggested from the trials finished when a slot frees, so none is"
        " known before the phase runs"
    )


def _print_text(preview: CampaignPreview, console: Console) -> None:
    console.print(Text(f"TrainingCampaign {preview.campaign.metadata.name}", style="bold"))
    if preview.campaign.spec.scale_down is not None:
        console.print(f"{describe(preview.campaign.spec.scale_down)}: the sample below, not the whole plan")
    for p in preview.phases:
        _print_phase(p, console)
    console.print(
        f"total: {preview.total} trials ({preview.skipped} skipped) in {len(preview.phases)} phases"
    )


def _rescaled(
    judged: CampaignPreview, smoke: bool, epochs_scale: float | None, max_trials_per_phase: int | None
) -> CampaignPreview:
    campaign = scaled(judged.campaign, smoke, epochs_scale, max_trials_per_phase)
    if campaign is judged.campaign:
        return judged
    try:
        return preview(campaign)
    except SpecError as e:  # skipWhen over the sample's promoted values (not the full plan's)
        raise BadInput("; ".join(e.problems)) from None


@click.command("plan")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Format."
)
@scale_down_options
def plan(
    file: str, output: str, smoke: bool, epochs_scale: float | None, max_trials_per_phase: int | None
) -> None:
    """Show the trials every TrainingCampaign in FILE will run ("-" for stdin), per phase.

    JSON: {"campaign", "phases": [{"name", "priority", "dependsOn", "trials", "skipped", "epochs",
    "maxFailureRate", "firstTrials": [{"name", "parameters"}], ...}], "total", "skipped"}; a list of
    those when FILE holds several campaigns. `trials` counts a phase's distinct trials, `skipped`
    those its skipWhen rules skip. Parameters promoted with fromPhase that differ between the source
    phase's trials are unknown until it has run: they show as "<best of SOURCE>" and are listed in
    the phase's promotedFrom.keys.

    With spec.scaleDown (or --smoke, --epochs-scale, --max-trials-per-phase) it shows the sample a
    scaled-down run runs, and "run" says which: full, smoke or partial.
    """
    judged = judge_file(file)
    bad = [j for j in judged if j.problems or j.preview is None]
    for j in bad:
        report_problems(j)
    if bad:
        raise SystemExit(2)  # bad input, as `campaign validate` and `run` say it
    previews = [
        _rescaled(j.preview, smoke, epochs_scale, max_trials_per_phase)
        for j in judged
        if j.preview is not None
    ]
    if output == "json":
        docs = [p.to_json() for p in previews]
        click.echo(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
        return
    console = Console(highlight=False, markup=False)  # user values may contain [brackets]
    for p in previews:
        _print_text(p, console)
