"""`campaign list`: the campaigns with embedded state on this machine, one row each."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from campaign_operator.api.campaign import CampaignState, TrainingCampaignStatus

if TYPE_CHECKING:
    from campaign_operator.embedded.locate import Entry

COLUMNS = ("NAME", "RUN", "STATE", "PHASE", "PROGRESS", "FAILRATE", "UPDATED", "STATE DIR")


@click.command("list")
def list_campaigns() -> None:
    """The campaigns with embedded state on this machine: those under ./.campaign and every state
    directory `campaign run` has used here (--state included), most recently updated first. RUN marks
    smoke tests and partial runs (their results are not the full plan's); "(stopped)" an unfinished
    campaign no runner holds (`campaign run` again resumes it); pass NAME, the manifest or STATE DIR
    to status, results or report."""
    from campaign_operator.embedded.locate import list_entries

    entries = list_entries()
    if not entries:
        click.echo("no campaigns on this machine yet (`campaign run FILE` starts one)")
        return
    now = datetime.now(UTC)
    rows = [COLUMNS, *(_row(e, now) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())


def _row(e: Entry, now: datetime) -> tuple[str, ...]:
    rel = os.path.relpath(e.dir)
    where = str(e.dir) if rel.startswith("..") else rel  # ./.campaign/... short, elsewhere absolute
    if e.problem is not None:
        return (e.name, e.run.value, "unreadable", "-", "-", "-", _ago(e.updated, now), where)
    s = e.status or TrainingCampaignStatus()
    state = s.state.value
    if s.state not in (CampaignState.SUCCEEDED, CampaignState.FAILED) and not e.runner_alive:
        state += " (stopped)"  # `campaign run` again resumes it
    return (
        e.name,
        e.run.value,
        state,
        s.current_phase or "-",
        s.progress or "-",
        s.fail_rate or "-",
        _ago(e.updated, now),
        where,
    )


def _ago(when: datetime, now: datetime) -> str:
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
