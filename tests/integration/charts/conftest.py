from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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
