"""The list of commands `campaign` offers (one module each)."""

from __future__ import annotations

import click

ALL: list[click.Command] = []
