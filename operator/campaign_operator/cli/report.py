"""`campaign report --state DIR -o report.html`: one self-contained HTML report."""

from __future__ import annotations

import click

from .loading import CAMPAIGN_HELP, campaign_state, resolve_state, store_failure


@click.command("report", epilog=CAMPAIGN_HELP)
@campaign_state
@click.option(
    "-o", "--output", "path", type=click.Path(dir_okay=False), default="report.html", show_default=True
)
def report(campaign: str | None, state_dir: str | None, path: str) -> None:
    """Write the campaign's HTML report: curves, distributions, best trials, failures, timeline."""
    from campaign_operator.embedded.snapshot import read_campaign
    from campaign_operator.embedded.store import Store, StoreError

    from .output import write_report

    state = resolve_state(campaign, state_dir)
    try:
        with Store(state, readonly=True) as store:
            data = read_campaign(store)
    except StoreError as e:
        raise store_failure(e) from None
    write_report(data, path)
