"""`campaign validate FILE`: judge a manifest as the apiserver and the operator would, offline."""

from __future__ import annotations

import click

from .loading import judge_file, report_problems, report_warnings


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def validate(file: str) -> None:
    """Check every TrainingCampaign in FILE ("-" for stdin).

    Everything the apiserver and the operator would check before any training: the CRD's schema
    and CEL rules, duplicated keys (kubectl silently keeps the last one), the phases' CEL (when,
    gate, skipWhen) against the variables each has, the sweeps (trial cap, matrix axes, empty
    expansions), skipWhen over every trial, stop-rule thresholds, and metric names against what
    the built-in tasks report. Prints one OK line per campaign (and any warnings), or every problem
    on its own line (field path first) and exits 1.
    """
    ok = True
    for judged in judge_file(file):
        if judged.problems or judged.preview is None:
            report_problems(judged)
            ok = False
            continue
        p = judged.preview
        phases = len(p.phases)
        click.echo(
            f"OK {judged.label}: TrainingCampaign {p.campaign.metadata.name}:"
            f" {phases} phase{'s' if phases != 1 else ''}, {p.total} trial{'s' if p.total != 1 else ''}"
            f" ({p.skipped} skipped)"
        )
        report_warnings(judged)
    if not ok:
        raise SystemExit(1)
