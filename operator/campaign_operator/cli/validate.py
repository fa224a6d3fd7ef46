"""`campaign validate FILE`: judge a manifest as the apiserver and the operator would, offline."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import BAD_INPUT
from .loading import Judged, judge_file, report_problems, report_warnings


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--strict", is_flag=True, help="Exit 2 on warnings too, not only on problems.")
@click.option(
    "--cluster-only",
    is_flag=True,
    help="Leave out the warnings about running here (local files, S3 credentials, this machine's size).",
)
def validate(file: str, strict: bool, cluster_only: bool) -> None:
    """Check every TrainingCampaign in FILE ("-" for stdin).

    Everything the apiserver and the operator would check before any training: the CRD's schema
    and CEL rules, duplicated keys (kubectl silently keeps the last one), the phases' CEL (when,
    gate, skipWhen) against the variables each has, the sweeps (trial cap, matrix axes, empty
    expansions), skipWhen over every trial, stop-rule thresholds, and metric names against what
    the built-in tasks report. Prints one OK line per campaign (and any warnings), or every problem
    on its own line (field path first) and exits 2.

    Warnings (exit 0 unless --strict) include what would go wrong running it on this machine with
    `campaign run`: local dataset files that do not exist (relative to FILE's directory or the
    working directory), S3 storage or datasets without S3 credentials here, and per-trial
    resources larger than this machine (which `campaign run` scales down).
    """
    ok, warned = True, False
    for judged in judge_file(file):
        if not cluster_only:
            judged = _with_local_warnings(judged, None if file == "-" else Path(file).resolve().parent)
        warned = warned or bool(judged.warnings)
        if judged.problems or judged.preview is None:
            report_problems(judged)
            ok = False
            continue
        p = judged.preview
        phases = len(p.phases)
        click.echo(
            f"OK {judged.label}: TrainingCampaign {p.campaign.metadata.name}:"
            f" {phases} phase{'s' if phases != 1 else ''}, {p.total} trial{'s' if p.total != 1 else ''}"
            f" ({p.skipped} skipped{f', {p.searched} by search' if p.searched else ''})"
        )
        report_warnings(judged)
    if not ok or (strict and warned):
        raise SystemExit(BAD_INPUT)


def _with_local_warnings(judged: Judged, manifest_dir: Path | None) -> Judged:
    from dataclasses import replace

    from campaign_operator.embedded.fit import this_machine
    from campaign_operator.embedded.preflight import local_warnings

    if judged.preview is None:
        return judged
    local = local_warnings(judged.preview.campaign, manifest_dir, this_machine())
    return replace(judged, warnings=[*judged.warnings, *local])
