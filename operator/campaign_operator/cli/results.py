"""`campaign results --state DIR`: one row per trial as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import click

from .loading import CAMPAIGN_HELP, campaign_state, resolve_state, store_failure
from .output import results_options


@click.command("results", epilog=CAMPAIGN_HELP)
@campaign_state
@results_options
def results(
    campaign: str | None, state_dir: str | None, phase: str | None, fmt: str, path: str | None
) -> None:
    """One row per trial: phase, name, state, reason, parameters (param.*), final and best metrics,
    duration."""
    from campaign_operator.embedded.snapshot import read_campaign
    from campaign_operator.embedded.store import Store, StoreError

    from .output import write_results

    state = resolve_state(campaign, state_dir)
    try:
        with Store(state, readonly=True) as store:
            data = read_campaign(store)
    except StoreError as e:
        raise store_failure(e) from None
    write_results(data, phase, fmt, path)
