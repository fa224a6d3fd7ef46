"""`campaign results --state DIR`: one row per trial as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import sys

import click


@click.command("results")
@click.option("--state", "state_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--phase", default=None, help="Only this phase's trials.")
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write here instead of stdout (required for parquet unless stdout is a pipe).",
)
def results(state_dir: str, phase: str | None, fmt: str, path: str | None) -> None:
    """One row per trial: phase, name, state, reason, parameters (param.*), final and best metrics,
    duration."""
    from pathlib import Path

    from campaign_operator.embedded.snapshot import read_campaign
    from campaign_operator.embedded.store import Store, StoreError
    from campaign_operator.report import results as r

    try:
        with Store(Path(state_dir), readonly=True) as store:
            data = read_campaign(store)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    phases = [p.name for p in data.campaign.spec.phases]
    if phase is not None and phase not in phases:
        raise click.ClickException(f"no phase {phase!r}; phases: {', '.join(phases)}")
    rows = r.rows(data.trials, phase)
    if fmt == "parquet":
        if path is None:
            if sys.stdout.isatty():
                raise click.ClickException("parquet is binary: give --file PATH or pipe stdout")
            import io

            buf = io.BytesIO()
            r.to_parquet(rows, buf)
            sys.stdout.buffer.write(buf.getvalue())
            return
        r.to_parquet(rows, path)
        click.echo(f"wrote {len(rows)} rows to {path}", err=True)
        return
    if fmt == "csv":
        text = r.to_csv(rows)
    elif fmt == "json":
        text = r.to_json(rows)
    else:
        text = _table(rows, data.campaign.spec.objective.metric, path is None and sys.stdout.isatty())
    if path is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        Path(path).write_text(text)
        click.echo(f"wrote {len(rows)} rows to {path}", err=True)


def _table(rows: list[dict[str, object]], objective: str, to_terminal: bool) -> str:
    from rich.console import Console
    from rich.table import Table

    from campaign_operator.report import results as r

    cols = r.columns(rows)
    params = [c for c in cols if c.startswith("param.")]
    shown = [
        "phase",
        "name",
        "state",
        "reason",
        *params,
        f"final.{objective}",
        f"best.{objective}",
        "duration_s",
    ]
    table = Table(header_style="bold")
    for c in shown:
        table.add_column(c.removeprefix("param."), overflow="fold")
    for row in rows:
        table.add_row(*(r.fmt(row.get(c)) for c in shown))
    console = Console(width=None if to_terminal else 240, force_terminal=False)
    with console.capture() as cap:
        console.print(table)
    return cap.get()
