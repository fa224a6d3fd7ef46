"""e2e fixtures: a real local Ray head (`ray start --head`, token auth on, dashboard for the Jobs
API) on loopback with free ports, stopped at teardown; per module a namespace holding the head's
token and the operator as its own process watching it; Debian's real Prometheus scraping what a
test names."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from integration.k8s.opkit import Kube, OperatorProcess, operator_args, wait_for
from rig.controlplane import ControlPlane, free_port
from rig.rayhead import NOT_INHERITED, RayHead, RayHeadError, start_ray_head

__all__ = [
    "NOT_INHERITED",
    "TEMPLATE",
    "Prometheus",
    "RayHead",
    "kube",
    "ns",
    "operator",
    "prometheus",
    "ray_head",
    "ray_namespace",
    "run_to_end",
    "start_operator",
]

VENV_BIN = Path(sys.executable).parent
# A trial that trains for real in seconds: the e2e campaigns' template.
TEMPLATE = {
    "task": "regression",
    "epochs": 2,
    "batchSize": 64,
    "dataset": {"synthetic": {"samples": 256, "seed": 1}},
    "hyperparameters": {"hidden_dims": [16], "lr": 0.01},
    "resources": {"cpu": 1},
}


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


def campaign(name: str, ray_head: RayHead, phases: list[dict[str, Any]]) -> dict[str, Any]:
    """A campaign of TEMPLATE trials on the Ray head (the rayjobs executor, its token by reference)."""
    return {
        "metadata": {"name": name},
        "spec": {
            "template": TEMPLATE,
            "objective": {"metric": "val_loss", "mode": "min"},
            "executor": {
                "kind": "rayjobs",
                "address": ray_head.address,
                "tokenSecretRef": {"name": "ray-token", "key": "token"},
            },
            "phases": phases,
        },
    }


def run_to_end(
    kube: Kube, ns: str, body: dict[str, Any], operator: OperatorProcess, ray_head: RayHead, timeout: float
) -> str:
    """Creates the campaign and waits until it Succeeded or Failed (the operator's log and the Ray
    head's diagnostics when it does not); returns the final state."""
    name = body["metadata"]["name"]
    kube.create_campaign(ns, body)
    wait_for(
        lambda: kube.state(ns, name) in ("Succeeded", "Failed"),
        timeout,
        f"campaign {name} to finish\n{operator.log_tail()}\n{ray_head.diagnostics()}",
        interval=1,
    )
    return str(kube.state(ns, name))


def ray_namespace(kube: Kube, ray_head: RayHead, prefix: str = "e2e") -> str:
    """A fresh namespace with the Ray head's token as Secret `ray-token` (key `token`)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    token = base64.b64encode(ray_head.token.encode()).decode()
    kube.ok(
        "POST",
        f"/api/v1/namespaces/{name}/secrets",
        {"metadata": {"name": "ray-token"}, "data": {"token": token}},
    )
    return name


def start_operator(
    control_plane: ControlPlane, namespaces: Sequence[str], log_dir: Path, *extra: str
) -> OperatorProcess:
    """The operator as its own process watching `namespaces`. The Ray head runs on this machine:
    trainers use this venv and reach the apiserver through the test kubeconfig (in a cluster: the
    image's python, the ServiceAccount)."""
    metrics_port, liveness_port = free_port(), free_port()
    kubeconfig = str(control_plane.kubeconfig_path)
    more = [arg for n in namespaces[1:] for arg in ("-n", n)]
    proc = OperatorProcess(
        args=[
            *operator_args(kubeconfig, namespaces[0], metrics_port, liveness_port),
            *more,
            *extra,
            *("--trainer-python", sys.executable, "--trainer-env", f"KUBECONFIG={kubeconfig}"),
        ],
        env={k: v for k, v in control_plane.env().items() if k not in NOT_INHERITED},
        log_path=log_dir / "operator.log",
        metrics_port=metrics_port,
        liveness_port=liveness_port,
    )
    proc.start()
    return proc


@pytest.fixture(scope="module")
def kube(control_plane: ControlPlane) -> Kube:
    return Kube(control_plane)


@pytest.fixture(scope="module")
def ns(kube: Kube, ray_head: RayHead) -> Iterator[str]:
    """The module's namespace (its own, so modules never see each other's campaigns)."""
    name = ray_namespace(kube, ray_head)
    yield name
    kube.call("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = start_operator(control_plane, [ns], tmp_path_factory.mktemp("operator"))
    yield proc
    proc.stop()


class Prometheus:
    """Debian's `prometheus` on a free loopback port, scraping `targets` every second (job
    `campaign-operator`) with `rule_files` loaded; its HTTP API, with a bad query an error."""

    def __init__(self, workdir: Path, targets: Sequence[str], rule_files: Sequence[Path] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in rule_files],
            "scrape_configs": [
                {"job_name": "campaign-operator", "static_configs": [{"targets": list(targets)}]}
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Prometheus did not get ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).ok
        except requests.ConnectionError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        assert r.ok, f"Prometheus /api/v1/{path} {params}: HTTP {r.status_code} {r.text[:1000]}"
        return r.json()["data"]

    def query(self, q: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's series (`value` each)."""
        return list(self.api("query", query=q, **({"time": at} if at is not None else {}))["result"])

    def query_range(self, q: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's series (`values` each)."""
        return list(self.api("query_range", query=q, start=start, end=end, step=step)["result"])

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        """What Grafana's `label_values(match, label)` lists (it asks this endpoint)."""
        return list(self.api(f"label/{label}/values", **{"match[]": match, "start": start, "end": end}))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Starts a real Prometheus (see `Prometheus`); every one started is stopped at teardown."""
    started: list[Prometheus] = []

    def start(targets: Sequence[str], rule_files: Sequence[Path] = ()) -> Prometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        started.append(Prometheus(workdir, targets, rule_files))
        return started[-1]

    yield start
    for p in started:
        p.stop()
