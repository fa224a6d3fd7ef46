"""Fixtures for operator tests (helpers live in opkit.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.controlplane import ControlPlane, free_port

from .opkit import Kube, OperatorProcess, operator_args


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    return Kube(control_plane)


@pytest.fixture
def operator_factory(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def make(
        namespace: str, *extra: str, start: bool = True, env: dict[str, str] | None = None
    ) -> OperatorProcess:
        metrics_port, liveness_port = free_port(), free_port()
        args = [
            *operator_args(control_plane.kubeconfig_path, namespace, metrics_port, liveness_port),
            *extra,
        ]
        # Each process is a pod of its own: a stable name (a restarted one takes its Lease back at
        # once, as a restarted container does) and the test namespace's own Lease.
        pod = {"POD_NAME": f"operator-{len(started)}", "POD_NAMESPACE": namespace}
        proc = OperatorProcess(
            args=args,
            env={**os.environ, **control_plane.env(), **pod, **(env or {})},
            log_path=tmp_path / f"operator-{len(started)}.log",
            metrics_port=metrics_port,
            liveness_port=liveness_port,
        )
        started.append(proc)
        return proc.start() if start else proc

    yield make
    for proc in started:
        proc.stop_in_background()
