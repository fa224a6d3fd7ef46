"""The `helm test` pod's script (charts/campaign-operator/files/helm_test.py), run here as the pod runs
it: against the real operator (its own process, scoped to one namespace) and the real apiserver, as
the chart's test ServiceAccount with exactly the chart's test RBAC. It passes, and it fails naming
what is wrong: an operator that does not answer, a CRD it may not read or that is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.controlplane import ControlPlane, free_port
from tests.integration.k8s.opkit import OperatorProcess

from .conftest import CHART, apply_object, render

pytestmark = pytest.mark.integration

SCRIPT = CHART / "files" / "helm_test.py"


@pytest.fixture
def operator(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    metrics, liveness = free_port(), free_port()
    args = [sys.executable, "-m", "campaign_operator.k8s.main", "--namespace", namespace, "--no-leader-elect"]
    args += ["--kubeconfig", str(control_plane.kubeconfig_path), "--metrics-port", str(metrics)]
    args += ["--metrics-addr", "127.0.0.1", "--liveness", f"http://127.0.0.1:{liveness}/healthz"]
    proc = OperatorProcess(
        args=args,
        env=control_plane.env(),
        log_path=tmp_path / "operator.log",
        metrics_port=metrics,
        liveness_port=liveness,
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def test_pod_env(control_plane: ControlPlane, helm, namespace: str, tmp_path: Path) -> dict[str, str]:
    """The test pod's environment from the rendered chart, with its ServiceAccount's token as the
    kubelet would mount it; the apiserver's address is this control plane's."""
    docs = [
        d
        for d in render(helm, namespace)
        if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    for doc in docs:
        if doc["kind"] != "Pod":
            r = apply_object(control_plane, doc, namespace)
            assert r.status_code in (200, 201), r.text[:400]
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    account = pod["spec"]["serviceAccountName"]
    token = tmp_path / "token"
    token.write_text(control_plane.kubectl("create", "token", account, "-n", namespace).stdout.strip())
    (container,) = pod["spec"]["containers"]
    assert container["args"] == [SCRIPT.read_text()]  # the pod runs exactly this file
    env = {e["name"]: e["value"] for e in container["env"]}
    return env | {
        "CO_API": control_plane.server,
        "CO_TOKEN_FILE": str(token),
        "CO_CA_FILE": str(control_plane.ca_path),
        "CO_SERVICE": "127.0.0.1",
        "CO_TIMEOUT_SECONDS": "10",
    }


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.read_text()],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_script_passes_against_a_running_operator(operator: OperatorProcess, test_pod_env):
    env = test_pod_env | {
        "CO_METRICS_PORT": str(operator.metrics_port),
        "CO_HEALTHZ_PORT": str(operator.liveness_port),
    }
    r = run_script(env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == [
        f"ok: /healthz on 127.0.0.1:{operator.liveness_port}",
        f"ok: /metrics on 127.0.0.1:{operator.metrics_port}",
    ]
    assert sorted(lines[2:]) == sorted(f"ok: CRD {c} Established" for c in env["CO_CRDS"].split(","))


def test_the_script_fails_naming_what_is_wrong(operator: OperatorProcess, test_pod_env):
    ports = {"CO_METRICS_PORT": str(operator.metrics_port), "CO_HEALTHZ_PORT": str(operator.liveness_port)}
    # Nothing listens on the metrics port: /metrics fails, the rest passes.
    r = run_script(test_pod_env | ports | {"CO_METRICS_PORT": str(free_port())})
    assert r.returncode == 1
    assert f"FAILED: /metrics on 127.0.0.1:{ports['CO_METRICS_PORT']}" not in r.stdout
    assert "FAILED: /metrics on 127.0.0.1:" in r.stdout and "Connection refused" in r.stdout, r.stdout
    assert "ok: /healthz" in r.stdout
    # A CRD the test account may not read (least privilege: only the chart's own, by name).
    r = run_script(test_pod_env | ports | {"CO_CRDS": "rayjobs.ray.io"})
    assert (
        r.returncode == 1 and "FAILED: CRD rayjobs.ray.io Established: HTTPError: HTTP Error 403" in r.stdout
    ), r.stdout
