"""The apiserver goes away under a running campaign: frozen (SIGSTOP) for longer than the client's
request timeout allows it to answer, then killed and restarted. The operator rides both out: the
final counts are exact, no Trial is created twice, no job submitted twice.

A control plane of its own (the session's must stay up for the other tests); the operator is the real
`campaign-operator` process; RayJob status is played by FakeKubeRay, which, like KubeRay, retries
while the apiserver is away.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.k8s.opkit import (
    GROUP_PATH,
    RAY_PATH,
    AddedRecorder,
    FakeKubeRay,
    Kube,
    OperatorProcess,
    operator_args,
    wait_for,
)
from rig.controlplane import ControlPlane, free_port

from ..conftest import crd_files

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.slow]

WATCH_READ_TIMEOUT_S = 10
"""The recorders' watches take this long without a byte as broken (40 s elsewhere)."""
FROZEN_S = 2 * WATCH_READ_TIMEOUT_S
"""Longer than a watch's inactivity timeout would tolerate silently (every recorder's watch breaks and
relists while frozen), and twice the operator's lease renew deadline (10 s of its 15 s lease): each
request in flight, Lease renewals included, hangs for all of it and is answered after."""


@pytest.fixture(scope="module")
def own_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane(controller_manager=False)
    cp.start()
    try:
        cp.install_crds(crd_files())
        yield cp
    finally:
        cp.stop()


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": "out"},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "maxParallelTrials": 3,
            "executor": {"kind": "kuberay"},
            "phases": [
                {"name": "a", "sweep": {"grid": {"x": list(range(9))}}},
                {"name": "b", "dependsOn": ["a"], "sweep": {"seeds": {"count": 3}}},
            ],
        },
    }


def where(kube: Kube, namespace: str) -> str:
    """What the campaign, its Trials and RayJobs say (for a failure message)."""
    lines = [f"campaign: {kube.campaign(namespace, 'out').get('status')}"]
    for t in kube.trials(namespace, "out"):
        s = t.get("status") or {}
        lines.append(f"trial {t['metadata']['name']}: {s.get('state')} {s.get('reason')} a{s.get('attempt')}")
    for j in kube.rayjobs(namespace, "out"):
        lines.append(f"rayjob {j['metadata']['name']}: {(j.get('status') or {}).get('jobDeploymentStatus')}")
    return "\n".join(lines)


def test_a_frozen_then_restarted_apiserver_changes_no_count(own_plane: ControlPlane, tmp_path: Path) -> None:
    kube = Kube(own_plane)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    own_plane.kubectl("create", "namespace", namespace)
    metrics_port, liveness_port = free_port(), free_port()
    op = OperatorProcess(
        args=operator_args(own_plane.kubeconfig_path, namespace, metrics_port, liveness_port),
        env={**os.environ, **own_plane.env(), "POD_NAME": "operator-0", "POD_NAMESPACE": namespace},
        log_path=tmp_path / "operator.log",
        metrics_port=metrics_port,
        liveness_port=liveness_port,
    ).start()
    trials = GROUP_PATH.format(ns=namespace, plural="campaigntrials")
    trials_seen = AddedRecorder(kube, trials, read_timeout=WATCH_READ_TIMEOUT_S)
    jobs_seen = AddedRecorder(kube, RAY_PATH.format(ns=namespace), read_timeout=WATCH_READ_TIMEOUT_S)
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=1.5, outages=True)
    try:
        kube.create_campaign(namespace, manifest())
        wait_for(lambda: jobs_seen.total() >= 3, 90, f"a's first jobs\n{op.log_tail()}")
        pid = own_plane.apiserver_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FROZEN_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: jobs_seen.total() >= 7, 120, f"a continues after the freeze\n{op.log_tail()}")
        own_plane.restart_apiserver()
        wait_for(
            lambda: kube.state(namespace, "out") in ("Succeeded", "Failed"), 240, f"the end\n{op.log_tail()}"
        )
        time.sleep(2)
        assert op.popen is not None and op.popen.poll() is None, "the operator stayed up throughout"
    finally:
        fake.close()
        trials_seen.close()
        jobs_seen.close()
        op.stop()

    broke = (len(trials_seen.disconnects), len(jobs_seen.disconnects))
    print(f"the recorders' watches (trials, jobs) broke {broke} times and relisted")
    status = kube.campaign(namespace, "out")["status"]
    assert status["state"] == "Succeeded", status
    a, b = status["phases"]
    assert (a["counts"]["succeeded"], a["counts"]["total"]) == (9, 9)
    assert (b["counts"]["succeeded"], b["counts"]["total"]) == (3, 3)
    assert trials_seen.duplicates() == {} and len(trials_seen.added) == 12, "no Trial created twice"
    assert jobs_seen.duplicates() == {} and jobs_seen.total() == 12, "one job per trial, none twice"
