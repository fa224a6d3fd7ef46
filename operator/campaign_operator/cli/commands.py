"""The list of commands `campaign` offers (one module each)."""

from __future__ import annotations

import click

ALL: list[click.Command] = []

# Offline commands: judge and preview a manifest (no cluster, no Ray).
from .plan import plan  # noqa: E402
from .validate import validate  # noqa: E402

ALL += [validate, plan]

# Embedded mode: run a campaign on a local Ray, watch it, read its results.
from .list import list_campaigns  # noqa: E402
from .report import report  # noqa: E402
from .results import results  # noqa: E402
from .run import run  # noqa: E402
from .status import status  # noqa: E402

ALL += [run, list_campaigns, status, results, report]
