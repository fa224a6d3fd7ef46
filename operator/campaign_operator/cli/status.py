"""`campaign status --state DIR`: the runner's live view, from another terminal (read-only)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from campaign_operator.embedded.store import Store


@click.command("status")
@click.option("--state", "state_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--watch", "-w", is_flag=True, help="Keep refreshing until the campaign ends (Ctrl-C to leave)."
)
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
def status(state_dir: str, watch: bool, interval: float) -> None:
    """Show a campaign's progress from its state directory (never writes to it). --watch follows it
    until it ends or its runner stops."""
    from pathlib import Path

    from campaign_operator.embedded.store import Store, StoreError

    try:
        with Store(Path(state_dir), readonly=True) as store:
            _show(store, watch, interval)
    except StoreError as e:  # no state yet, or a damaged one: one line, never a sqlite3 traceback
        raise click.ClickException(str(e)) from None


def _show(store: Store, watch: bool, interval: float) -> None:
    from rich.console import Console
    from rich.live import Live

    from campaign_operator.embedded.display import plain_lines, render, summary_line
    from campaign_operator.embedded.snapshot import read_snapshot

    snap = read_snapshot(store)
    tty = sys.stdout.isatty()
    if not watch:
        if tty:
            Console().print(render(snap))
        else:
            click.echo("\n".join(plain_lines(None, snap)))
            click.echo(f"progress: {summary_line(snap)}")
        return
    try:
        if tty:
            with Live(render(snap), refresh_per_second=4) as live:
                while not snap.finished and snap.runner_alive:
                    time.sleep(interval)
                    snap = read_snapshot(store)
                    live.update(render(snap))
        else:
            before = None
            while True:
                for line in plain_lines(before, snap):
                    click.echo(line)
                if snap.finished or not snap.runner_alive:
                    break
                before = snap
                time.sleep(interval)
                snap = read_snapshot(store)
            click.echo(f"progress: {summary_line(snap)}")
        if not snap.finished and not snap.runner_alive:
            click.echo(f"{snap.name}: {snap.runner}", err=True)
    except KeyboardInterrupt:
        pass
