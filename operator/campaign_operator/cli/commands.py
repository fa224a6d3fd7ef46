"""The list of commands `campaign` offers (one module each)."""

from __future__ import annotations

import click

ALL: list[click.Command] = []

# Offline commands: judge and preview a manifest (no cluster, no Ray).
from .plan import plan  # noqa: E402
from .validate import validate  # noqa: E402

ALL += [validate, plan]
