"""campaign_trainer: the code every Campaign Operator trial runs (Lightning under Ray Train V2).

Heavy modules (torch, lightning, ray) are imported by ``campaign_trainer.harness`` and the tasks only,
so the pure parts (metrics, stop rules, reporters) stay cheap to import.
"""

import os as _os

# Ray's `uv run` hook (on by default) makes the workers of a cluster we start re-create the driver's
# environment with `uv run`; the trainer's environment (image or venv) is already complete, and
# re-resolving it per worker is slow or fails offline. Must be set before `ray` is first imported.
_os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
