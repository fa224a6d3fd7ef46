"""`campaign validate FILE`: judge a manifest as the apiserver and the operator would, offline."""

from __future__ import annotations

import click

from .loading import judge_file, report_problems


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def validate(file: str) -> None:
    """Check every TrainingCampaign in FILE ("-" for stdin).

    Applies the CRD's schema and CEL rules, compiles the phases' CEL (when, gate, skipWhen),
    expands the sweeps and evaluates skipWhen over every trial. Prints one OK line per campaign,
    or every problem on its own line (field path first) and exits 1.
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
    if not ok:
        raise SystemExit(1)
