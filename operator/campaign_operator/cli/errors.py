"""The exit statuses of `campaign` and the one-line errors that carry them.

A script around `campaign run` must tell apart a campaign that ran and failed (look at its results),
input to fix (the manifest, a flag, a campaign name), and the machine (Ray did not start, the state
directory cannot be used: try again, or fix the environment).
"""

from __future__ import annotations

import click

SUCCEEDED = 0
"""The campaign Succeeded (or the command did what it was asked)."""
FAILED = 1
"""The campaign ran and Failed."""
BAD_INPUT = 2
"""The manifest, a flag or a campaign name is wrong; nothing was run."""
INFRASTRUCTURE = 3
"""This machine could not run it: Ray did not start, the state directory is unwritable, damaged or
in use by another runner."""
INTERRUPTED = 130
"""Stopped by Ctrl-C/SIGTERM; the same command resumes."""

EXIT_STATUS_HELP = (
    "Exit status: 0 the campaign Succeeded, 1 it Failed, 2 bad input (manifest, flags, campaign "
    "name), 3 infrastructure (Ray did not start, the state directory is unwritable, damaged or in use), "
    "130 interrupted (run the same command again to resume)."
)


class BadInput(click.ClickException):
    """`Error: ...` on stderr, exit 2."""

    exit_code = BAD_INPUT


class Infrastructure(click.ClickException):
    """`Error: ...` on stderr, exit 3."""

    exit_code = INFRASTRUCTURE
