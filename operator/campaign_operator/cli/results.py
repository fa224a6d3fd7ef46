"""`campaign results --state DIR`: one row per trial as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import click

from .output import results_options


@click.command("results")
@click.option("--state", "state_dir", required=True, type=click.Path(exists=True, file_okay=False))
@results_options
def results(state_dir: str, phase: str | None, fmt: str, path: str | None) -> None:
    """One row per trial: phase, name, state, reason, parameters (param.*), final and best metrics,
    duration."""
    from pathlib import Path

    from campaign_operator.embedded.snapshot import read_campaign
    from campaign_operator.embedded.store import Store, StoreError

    from .output import write_results

    try:
        with Store(Path(state_dir), readonly=True) as store:
            data = read_campaign(store)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    write_results(data, phase, fmt, path)
