"""What travels between the shells and the trainer: resource names, the trial's environment
variable and the progress lines (JSON, one per line) that embedded mode and pod logs carry."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from campaign_operator.api.base import CAMPAIGNS, GROUP, TRIALS, VERSION

__all__ = ["CAMPAIGNS", "GROUP", "TRIALS", "VERSION"]

TRIAL_ENV = "CAMPAIGN_TRIAL"
"""The trial document travels in this environment variable (Ray's runtime_env.env_vars), and the
trainer reads it from there itself (`--trial-env`): a RayJob entrypoint has no stdin of its own, an
env var needs no ConfigMap to create and clean up, and the entrypoint stays free of the quotes,
expansions and pipes that KubeRay's submitter shell would evaluate instead of passing on."""

JOB_TRIAL, JOB_NAMESPACE, JOB_ATTEMPT = "trial", "namespace", "attempt"
JOB_TRIAL_UID = f"{GROUP}/trial-uid"
"""The identity an attempt's job carries (a Ray job's `metadata`, a RayJob's labels): which Trial
(its uid: names repeat across namespaces and re-created campaigns) and which attempt. A job is only
adopted when it names this very Trial and attempt (`outcomes.identity_mismatch`)."""


def job_identity(trial: str, namespace: str | None, uid: str, attempt: int) -> dict[str, str]:
    identity = {JOB_TRIAL: trial, JOB_TRIAL_UID: uid, JOB_ATTEMPT: str(attempt)}
    if namespace:
        identity[JOB_NAMESPACE] = namespace
    return identity


START, EPOCH, OUTCOME = "start", "epoch", "outcome"
"""Progress line types: an attempt's process began / finished an epoch / gave its verdict."""
PROGRESS_DIR = "trials"


def finite_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Only finite numbers: the status schema holds numbers and JSON has no NaN/inf. A missing key
    is how a reporter says "undefined" (the outcome's reason says why)."""
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[str(k)] = float(v)
    return out


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def progress_path(trial: str, attempt: int) -> str:
    """Progress file of one attempt, relative to the state dir (one file per attempt: a resumed
    attempt appends to the same file, a retry starts a new one)."""
    return f"{PROGRESS_DIR}/{trial}/attempt-{attempt}.jsonl"


def halt_path(progress_file: str) -> str:
    """The file that asks an attempt to stop (campaign_trainer.halt), beside its progress file."""
    return f"{progress_file}.halt"


def start_line(trial: str, attempt: int, resume: bool) -> dict[str, Any]:
    """Written by the process that really began the attempt: tests count these to prove no trial
    ran twice."""
    return {
        "type": START,
        "trial": trial,
        "attempt": attempt,
        "resume": resume,
        "pid": os.getpid(),
        "time": now_rfc3339(),
    }


def epoch_line(
    trial: str, epoch: int, metrics: Mapping[str, Any], time_: str | None = None
) -> dict[str, Any]:
    # JSON has no NaN/inf: a metric that went bad keeps its key, with null.
    finite = finite_metrics(metrics)
    shown = {
        str(k): finite.get(str(k))
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {"type": EPOCH, "trial": trial, "time": time_ or now_rfc3339(), "epoch": epoch, "metrics": shown}


def outcome_line(trial: str, status: Mapping[str, Any], time_: str | None = None) -> dict[str, Any]:
    """`status`: the trainer's verdict in Trial status wire form."""
    return {"type": OUTCOME, "trial": trial, "time": time_ or now_rfc3339(), "status": dict(status)}


def replacing(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) that leaves exactly `after`: merge patches merge nested maps,
    so every key `before` had and `after` lacks is sent as null (a metric that went NaN must not
    keep its last value); lists and scalars are sent whole."""
    patch: dict[str, Any] = {k: None for k in before if k not in after}
    for k, v in after.items():
        old = before.get(k)
        patch[k] = replacing(old, v) if isinstance(old, Mapping) and isinstance(v, Mapping) else v
    return patch


def dumps(line: Mapping[str, Any]) -> str:
    return json.dumps(line, separators=(",", ":"), allow_nan=False)


def append_line(path: str | Path, line: Mapping[str, Any]) -> None:
    """One `write` on an O_APPEND file: concurrent writers never tear a line, a reader never sees half."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Complete lines in `data` and how many bytes they span; a torn last line waits for more."""
    end = data.rfind(b"\n") + 1
    lines = []
    for raw in data[:end].splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue  # not ours (a stray print); never fatal
        if isinstance(obj, dict):
            lines.append(obj)
    return lines, end
