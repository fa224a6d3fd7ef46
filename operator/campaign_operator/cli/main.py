"""`campaign`: the command line. Each command lives in its own module; this file only wires them."""

from __future__ import annotations

import click

from .. import __version__
from .errors import EXIT_STATUS_HELP


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, prog_name="campaign")
def cli() -> None:
    """Training campaigns: phases and sweeps of trials, on Kubernetes or on an embedded local Ray."""


def _register() -> None:
    # Imported here so `campaign --help` stays fast: heavy imports (ray, torch) happen inside commands.
    from . import commands

    for command in commands.ALL:
        cli.add_command(command)


def main() -> None:
    _register()
    cli()
