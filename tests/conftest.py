"""Shared fixtures. The Kubernetes ones start one real control plane per test session (lazily: only
tests that use them pay for it). Missing binaries are an error, never a skip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from rig.controlplane import ControlPlane
from rig.versions import kuberay_crds, kuberay_version

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CRDS = REPO_ROOT.parent / "shared" / "crds"
OUR_CRDS = REPO_ROOT / "crds"

# No property here is about speed, and hypothesis's default 200 ms deadline per example fails on a
# loaded 2-core machine (seen: a naming property at 340 ms while CI and benches ran).
settings.register_profile("campaign", deadline=None)
settings.load_profile("campaign")


@pytest.fixture(scope="session", autouse=True)
def _own_state_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runners record their state dirs in an index for `campaign list`; the tests' runners (and the
    CLIs they start) write a session index of their own, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CAMPAIGN_STATE_INDEX", str(tmp_path_factory.mktemp("index") / "state-dirs"))
    yield
    mp.undo()


def crd_files() -> list[Path]:
    """The KubeRay release's own CRDs (the one the rig runs: the newest supported), prometheus-operator's
    from ../shared/crds, then ours from crds/."""
    monitoring = sorted(SHARED_CRDS.glob("monitoring.coreos.com_*.yaml"))
    if not monitoring:
        pytest.fail(
            f"no prometheus-operator CRDs in {SHARED_CRDS}: ../shared must sit beside the repo", pytrace=False
        )
    return kuberay_crds(kuberay_version()) + monitoring + sorted(OUR_CRDS.glob("*.yaml"))


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager with all CRDs installed and Established."""
    cp = ControlPlane()
    cp.start()  # raises ControlPlaneError (with component logs) if binaries are missing or it fails
    try:
        cp.install_crds(crd_files())
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    """Path of an admin (system:masters) kubeconfig for the session's control plane."""
    return control_plane.kubeconfig_path


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
