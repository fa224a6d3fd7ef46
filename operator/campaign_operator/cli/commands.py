"""The list of commands `campaign` offers (one module each)."""

from __future__ import annotations

import click

from .run import run
from .status import status

ALL: list[click.Command] = [run, status]
