"""`campaign status --state DIR`: the runner's live view, from another terminal (read-only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from .loading import CAMPAIGN_HELP, campaign_state, resolve_state, store_failure

if TYPE_CHECKING:
    from campaign_operator.embedded.store import Store
    from campaign_operator.report.live import Snapshot


@click.command("status", epilog=CAMPAIGN_HELP)
@campaign_state
@click.option(
    "--watch", "-w", is_flag=True, help="Keep refreshing until the campaign ends (Ctrl-C to leave)."
)
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
def status(campaign: str | None, state_dir: str | None, watch: bool, interval: float) -> None:
    """Show a campaign's progress from its state directory (never writes to it). --watch follows it
    until it ends or its runner stops."""
    from campaign_operator.embedded.snapshot import read_snapshot
    from campaign_operator.embedded.store import Store, StoreError

    from .output import follow, show

    state = resolve_state(campaign, state_dir)
    try:
        with Store(state, readonly=True) as store:
            if not watch:
                show(read_snapshot(store))
                return
            last = follow(_polled(store, interval))
    except StoreError as e:  # no state yet, or a damaged one: one line, never a sqlite3 traceback
        raise store_failure(e) from None
    if last is not None and not last.finished and not last.runner_alive:
        click.echo(f"{last.name}: {last.runner}", err=True)


def _polled(store: Store, interval: float) -> Iterator[Snapshot]:
    """The store's snapshots every `interval` until the campaign ends or its runner stops (a state dir
    has no watch: SQLite is polled)."""
    from campaign_operator.embedded.snapshot import read_snapshot

    while True:
        snap = read_snapshot(store)
        yield snap
        if snap.finished or not snap.runner_alive:
            return
        time.sleep(interval)
