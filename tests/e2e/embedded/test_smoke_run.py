"""`campaign run --smoke`: the demo campaign as a smoke test, in a state dir of its own, marked smoke."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import pytest

from campaign_operator.api.campaign import PhaseState, RunKind
from campaign_operator.embedded.store import Store

from .conftest import DEMO, campaign_cmd, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _campaign(cwd: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    # From a directory of its own: the default state dir (.campaign/<name>-smoke) lands there.
    return subprocess.run(campaign_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_smoke_run_of_the_demo_samples_every_phase_with_two_epochs(tmp_path: Path) -> None:
    proc = _campaign(tmp_path, "run", "--smoke", str(DEMO))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    first = out.splitlines()[0]
    assert "smoke run" in first and ".campaign/demo-smoke" in first, out
    assert "campaign demo Succeeded: smoke run: 3 phase(s) succeeded" in proc.stdout, out
    state = tmp_path / ".campaign" / "demo-smoke"
    assert not (tmp_path / ".campaign" / "demo").exists()  # the full run's state is never touched

    docs = trial_docs(state)
    by_phase: dict[str, list[str]] = {}
    for d in docs.values():
        by_phase.setdefault(d["spec"]["phase"], []).append(d["status"]["state"])
        assert d["spec"]["epochs"] == 2
        if d["status"]["state"] == "Succeeded":
            assert d["status"]["epoch"] == 2
    # The sample: the smoke trial, one explore point that runs beside its one skipped point, and two
    # of the ensemble's four seeds (trained on the promoted explore configuration).
    assert {p: sorted(s) for p, s in by_phase.items()} == {
        "smoke": ["Succeeded"],
        "explore": ["Skipped", "Succeeded"],
        "ensemble": ["Succeeded", "Succeeded"],
    }

    with Store(state, readonly=True) as store:
        status = store.status()
    assert status is not None and status.run == RunKind.SMOKE
    assert status.trials.total == 5
    explore = next(p for p in status.phases if p.name == "explore")
    assert explore.state == PhaseState.SUCCEEDED and explore.gate is not None
    assert explore.gate.passed is not None and "r2" in explore.gate.values["best"]["metrics"]
    if not explore.gate.passed:
        assert explore.reason == "GateNotEnforced" and "not enforced" in (explore.message or "")

    results = _campaign(tmp_path, "results", "--state", str(state), "-o", "csv", timeout=120)
    assert results.returncode == 0, results.stderr
    rows = list(csv.DictReader(io.StringIO(results.stdout)))
    assert len(rows) == 5 and {r["run"] for r in rows} == {"smoke"}
