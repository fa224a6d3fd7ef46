"""`campaign report --state DIR -o report.html`: one self-contained HTML report."""

from __future__ import annotations

import click


@click.command("report")
@click.option("--state", "state_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o", "--output", "path", type=click.Path(dir_okay=False), default="report.html", show_default=True
)
def report(state_dir: str, path: str) -> None:
    """Write the campaign's HTML report: curves, distributions, best trials, failures, timeline."""
    from pathlib import Path

    from campaign_operator.embedded.snapshot import read_campaign
    from campaign_operator.embedded.store import Store, StoreError

    from .output import write_report

    try:
        with Store(Path(state_dir), readonly=True) as store:
            data = read_campaign(store)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    write_report(data, path)
