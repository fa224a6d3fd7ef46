"""The rig's pinned versions (hack/versions.env) and the supported KubeRay releases' own CRDs."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"
KUBERAY_CRDS_SCRIPT = REPO_ROOT / "hack" / "kuberay-crds.sh"


def versions() -> dict[str, str]:
    """KEY=VALUE lines of hack/versions.env, quotes stripped."""
    out = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip().strip('"')
    return out


def kuberay_versions() -> list[str]:
    """Every supported KubeRay release, newest first."""
    return versions()["KUBERAY_VERSIONS"].split()


def kuberay_version() -> str:
    """The release the rig runs: KUBERAY_VERSION, else the newest supported."""
    return os.environ.get("KUBERAY_VERSION") or kuberay_versions()[0]


@cache
def kuberay_crd_dir(version: str) -> Path:
    """The release's config/crd/bases in the Go module cache (hack/kuberay-crds.sh downloads it)."""
    out = subprocess.run(
        ["bash", str(KUBERAY_CRDS_SCRIPT), version], capture_output=True, text=True, timeout=600, check=False
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"{KUBERAY_CRDS_SCRIPT.name} {version} failed (exit {out.returncode}):\n{out.stderr}"
        )
    return Path(lines[-1])


def kuberay_crds(version: str) -> list[Path]:
    """RayCluster, RayJob and RayService of that release (KubeRay's operator needs all three)."""
    return sorted(kuberay_crd_dir(version).glob("ray.io_*.yaml"))
