"""The krew manifest (plugins/krew/campaign.yaml) is one krew accepts and installs: krew's own
validator passes it, its sha256 is that of the archive hack/krew.sh builds now, and a real
`kubectl krew install --manifest --archive` gives a `kubectl campaign` that kubectl's plugin lookup
finds and that runs the plugin. krew v0.4.3 (krew and validate-krew-manifest) is built from its Go
module by hack/build-go-tool.sh once and cached; the release asset the manifest points at is not
fetched (the tests run offline), the archive stands in for it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rig.controlplane import find_binaries

# A cold build of the two krew tools is minutes of Go on a loaded machine; the cached one is instant.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "plugins" / "krew" / "campaign.yaml"
KREW_SH = REPO / "hack" / "krew.sh"
KREW_MODULE, KREW_VERSION = "sigs.k8s.io/krew", "v0.4.3"
REGENERATE = "make krew  (runs hack/krew.sh; commit plugins/krew/campaign.yaml)"
COMMANDS = ("list", "status", "watch", "results", "report", "logs", "suspend", "resume")


def go_tool(name: str) -> Path:
    """sigs.k8s.io/krew/cmd/NAME, cached by hack/build-go-tool.sh (its progress goes to our stderr)."""
    package = f"{KREW_MODULE}/cmd/{name}"
    out = subprocess.run(
        [str(REPO / "hack" / "build-go-tool.sh"), name, package, KREW_VERSION],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        pytest.fail(f"building {package}@{KREW_VERSION} failed (exit {out.returncode})", pytrace=False)
    return Path(out.stdout.strip().splitlines()[-1])


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(c) for c in cmd]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"{' '.join(map(str, r.args))} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin archive as `make krew` builds it now (not dist/, which may be stale or absent)."""
    return Path(ok(run(KREW_SH, "archive", tmp_path_factory.mktemp("dist"))).strip())


def test_krew_validates_the_manifest() -> None:
    validate = go_tool("validate-krew-manifest")
    # -skip-install: its install step downloads the release asset; the next tests install the archive.
    out = run(validate, "-manifest", MANIFEST, "-skip-install")
    ok(out)
    for step in ("structural validation OK", "all spec.platform[] items are used", "no overlapping"):
        assert step in out.stderr, out.stderr


def test_manifest_matches_the_archive_built_now(archive: Path, tmp_path: Path) -> None:
    again = Path(ok(run(KREW_SH, "archive", tmp_path)).strip())
    assert sha256(again) == sha256(archive), "hack/krew.sh built two different archives from the same inputs"
    plugin = yaml.safe_load(MANIFEST.read_text())
    (platform,) = plugin["spec"]["platforms"]
    assert platform["sha256"] == sha256(archive), (
        f"{MANIFEST.relative_to(REPO)} is stale: its sha256 is not that of {archive.name} built now; "
        f"regenerate it with: {REGENERATE}"
    )
    # Everything else the script derives (version, uri from pyproject.toml) is current too.
    assert MANIFEST.read_text() == ok(run(KREW_SH, "manifest", archive)), (
        f"{MANIFEST.relative_to(REPO)} differs from what hack/krew.sh generates; regenerate: {REGENERATE}"
    )
    version = plugin["spec"]["version"]
    assert platform["uri"].endswith(f"/releases/download/{version}/{archive.name}")


def test_krew_installs_it_and_kubectl_finds_kubectl_campaign(archive: Path, tmp_path: Path) -> None:
    kubectl = find_binaries().kubectl
    assert kubectl is not None, "no kubectl among the control-plane binaries nor on PATH"
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(kubectl)
    (tools / "kubectl-krew").symlink_to(go_tool("krew"))  # what krew's own install leaves on PATH
    krew_root = tmp_path / "krew"
    env = {
        "PATH": f"{krew_root / 'bin'}:{tools}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KREW_ROOT": str(krew_root),
        "KREW_NO_UPGRADE_CHECK": "1",
        "CAMPAIGN_PYTHON": sys.executable,  # this venv's python, which has campaign-operator[kubectl]
    }
    installed = run("kubectl", "krew", "install", f"--manifest={MANIFEST}", f"--archive={archive}", env=env)
    ok(installed)
    assert "Installed plugin: campaign" in installed.stderr + installed.stdout
    version = yaml.safe_load(MANIFEST.read_text())["spec"]["version"]
    # krew's record of the install (`krew list` wants an index, which an offline KREW_ROOT lacks).
    receipt = yaml.safe_load((krew_root / "receipts" / "campaign.yaml").read_text())
    assert (receipt["metadata"]["name"], receipt["spec"]["version"]) == ("campaign", version)

    shim = krew_root / "bin" / "kubectl-campaign"
    assert shim.is_symlink() and os.access(shim, os.X_OK)
    store = shim.resolve().parent
    assert store == krew_root / "store" / "campaign" / version
    # validate-krew-manifest's install step (skipped above) requires a LICENSE among the installed files.
    assert sorted(p.name for p in store.iterdir()) == ["LICENSE", "kubectl-campaign"]

    for cmd in ((shim, "--help"), ("kubectl", "campaign", "--help")):
        help_text = ok(run(*cmd, env=env))
        assert "Usage: kubectl-campaign" in help_text
        listed = {line.split()[0] for line in help_text.split("Commands:")[1].splitlines() if line.strip()}
        assert set(COMMANDS) <= listed, help_text
    assert ok(run("kubectl", "campaign", "--version", env=env)).strip().endswith(version.removeprefix("v"))

    # A python without the package: one line saying what to install, and no traceback.
    bare = tmp_path / "python-bare"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')  # -S: no site-packages
    bare.chmod(0o755)
    missing = run("kubectl", "campaign", "list", env={**env, "CAMPAIGN_PYTHON": str(bare)})
    assert missing.returncode != 0
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "pip install 'campaign-operator[kubectl]'" in missing.stderr
