"""What the view, results and report commands print, whatever they read from: a state dir
(`campaign status/results/report`) or the apiserver (`kubectl campaign`). One code path for both;
only the source of the Snapshot / CampaignData differs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from campaign_operator.report import results as r
from campaign_operator.report.live import Snapshot

FORMATS = ("table", "csv", "json", "parquet")
F = TypeVar("F", bound=Callable[..., Any])


def show(snap: Snapshot) -> None:
    """One screen: the live view on a terminal, its plain lines and a progress line otherwise."""
    from rich.console import Console

    from campaign_operator.report.live import plain_lines, render, summary_line

    if sys.stdout.isatty():
        Console().print(render(snap))
        return
    click.echo("\n".join(plain_lines(None, snap)))
    click.echo(f"progress: {summary_line(snap)}")


def follow(snapshots: Iterator[Snapshot]) -> Snapshot | None:
    """The live view (a terminal) or its change lines (a pipe) until `snapshots` ends; Ctrl-C leaves
    with the last screen kept. Returns the last snapshot shown."""
    from rich.live import Live

    from campaign_operator.report.live import plain_lines, render, summary_line

    snap = None
    try:
        if sys.stdout.isatty():
            with Live(refresh_per_second=4) as live:
                for snap in snapshots:
                    live.update(render(snap))
        else:
            before = None
            for snap in snapshots:
                for line in plain_lines(before, snap):
                    click.echo(line)
                before = snap
    except KeyboardInterrupt:
        pass
    if snap is not None and not sys.stdout.isatty():
        click.echo(f"progress: {summary_line(snap)}")
    return snap


def check_phase(data: r.CampaignData, phase: str | None) -> None:
    phases = [p.name for p in data.campaign.spec.phases]
    if phase is not None and phase not in phases:
        raise click.ClickException(f"no phase {phase!r}; phases: {', '.join(phases)}")


def write_results(data: r.CampaignData, phase: str | None, fmt: str, path: str | None) -> None:
    """One row per trial as a table, CSV, JSON or Parquet, to `path` or stdout."""
    check_phase(data, phase)
    rows = r.rows(data.trials, phase, data.run)
    if fmt == "parquet":
        _write_parquet(rows, path)
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


def _write_parquet(rows: list[dict[str, object]], path: str | None) -> None:
    if path is not None:
        r.to_parquet(rows, path)
        click.echo(f"wrote {len(rows)} rows to {path}", err=True)
        return
    if sys.stdout.isatty():
        raise click.ClickException("parquet is binary: give --file PATH or pipe stdout")
    import io

    buf = io.BytesIO()
    r.to_parquet(rows, buf)
    sys.stdout.buffer.write(buf.getvalue())


def _table(rows: list[dict[str, object]], objective: str, to_terminal: bool) -> str:
    from rich.console import Console
    from rich.table import Table

    cols = r.columns(rows)
    params = [c for c in cols if c.startswith("param.")]
    scaled = any(row.get("run") != "full" for row in rows)  # a smoke or partial run's rows say so
    shown = [
        *(["run"] if scaled else []),
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


def write_report(data: r.CampaignData, path: str) -> None:
    from campaign_operator.report.html import build_report

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(data), encoding="utf-8")
    click.echo(f"report: {out.resolve()}")


def results_options(f: F) -> F:
    """--phase, -o/--output and -f/--file, the same for both `results` commands."""
    f = click.option(
        "-f",
        "--file",
        "path",
        type=click.Path(dir_okay=False, writable=True),
        default=None,
        help="Write here instead of stdout (required for parquet unless stdout is a pipe).",
    )(f)
    f = click.option("-o", "--output", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)(
        f
    )
    return click.option("--phase", default=None, help="Only this phase's trials.")(f)
