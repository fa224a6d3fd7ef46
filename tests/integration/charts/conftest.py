from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from rig.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "campaign-operator"


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    """helm and promtool, installed by hack/install-tools.sh (fails loudly, never skips)."""
    out = subprocess.run([str(REPO / "hack" / "install-tools.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"hack/install-tools.sh failed:\n{out.stderr}", pytrace=False)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def helm(tools_bin: Path):
    def run(*args: str) -> str:
        r = subprocess.run([str(tools_bin / "helm"), *args], capture_output=True, text=True)
        assert r.returncode == 0, f"helm {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    return run


# What a cluster with prometheus-operator's CRDs serves: the monitoring objects' `auto` renders them.
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")


def render(
    helm, namespace: str, *values: str, release: str = "co", api_versions: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`helm template` of the chart as `release` in `namespace`, with `--set` values and the extra
    API versions `.Capabilities` should show."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for v in values:
        args += ["--set", v]
    for api in api_versions:
        args += ["--api-versions", api]
    return [d for d in yaml.safe_load_all(helm(*args)) if d]


class Helm:
    """helm against the session's control plane, with its own config, cache and data dirs."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 0, f"helm {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture
def cluster_helm(control_plane: ControlPlane, tools_bin: Path, tmp_path: Path) -> Helm:
    return Helm(tools_bin / "helm", control_plane.kubeconfig_path, tmp_path / "helm-home")


def apply_object(
    cp: ControlPlane, doc: dict[str, Any], namespace: str, dry_run: bool = False
) -> requests.Response:
    """Server-side apply of one object, as `kubectl apply --server-side` would."""
    api = doc["apiVersion"]
    group_path = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    plural = _plural(cp, api, doc["kind"])
    ns = doc.get("metadata", {}).get("namespace") or (None if _cluster_scoped(doc["kind"]) else namespace)
    scope = f"/namespaces/{ns}" if ns else ""
    query = "fieldManager=test&force=true" + ("&dryRun=All" if dry_run else "")
    with cp.session() as s:
        return s.patch(
            f"{cp.server}{group_path}{scope}/{plural}/{doc['metadata']['name']}?{query}",
            data=json.dumps(doc),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )


def _cluster_scoped(kind: str) -> bool:
    return kind in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace")


def _plural(cp: ControlPlane, api: str, kind: str) -> str:
    path = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    for res in cp.request("GET", path).json()["resources"]:
        if res["kind"] == kind and "/" not in res["name"]:
            return str(res["name"])
    raise AssertionError(f"{kind} not served at {path}")
