"""How the operator's client and the trainer's reporter retry the apiserver: one policy."""

from __future__ import annotations

import random
from collections.abc import Mapping

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers a retry can change (throttling, an apiserver restarting or overloaded)."""


def backoff_delays(attempts: int, base: float = 0.2, cap: float = 8.0, jitter: float = 0.1) -> list[float]:
    """Waits between `attempts` tries: exponential, capped, with a little jitter so many writers
    don't retry in lockstep."""
    return [min(cap, base * 2**i) * (1.0 + random.uniform(0.0, jitter)) for i in range(max(0, attempts - 1))]


def retry_after(headers: Mapping[str, str] | None, default: float) -> float:
    """The server's Retry-After (whole seconds) when it sent one, else `default`."""
    value = (headers or {}).get("Retry-After")
    return float(value) if value and value.isdigit() else default
