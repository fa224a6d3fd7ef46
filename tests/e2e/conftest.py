"""e2e fixtures: a real local Ray head (`ray start --head`, token auth on, dashboard for the Jobs
API) on loopback with free ports, stopped at teardown."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.rayhead import NOT_INHERITED, RayHead, RayHeadError, start_ray_head

__all__ = ["NOT_INHERITED", "RayHead", "ray_head"]

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """Retried when Ray dies while starting on a loaded machine (rig/rayhead.py); loud after the last
    attempt."""
    ray = VENV_BIN / "ray"
    if not ray.exists():
        pytest.fail(f"no `ray` next to {sys.executable}: install the locked environment (ray[default])")
    try:
        head = start_ray_head(ray)
    except RayHeadError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield head
    finally:
        head.stop()
