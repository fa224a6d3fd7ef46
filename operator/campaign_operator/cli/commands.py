"""The list of commands `campaign` offers (one module each)."""

from __future__ import annotations

import click

from .report import report
from .results import results
from .run import run
from .status import status

ALL: list[click.Command] = [run, status, results, report]
