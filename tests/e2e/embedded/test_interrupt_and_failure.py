"""Ctrl-C stops cleanly and the same command resumes; a campaign over its failure threshold exits
non-zero with a one-line reason."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import REPO, campaign_cmd, progress_lines, query, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MANIFEST = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata:
  name: ctrlc
spec:
  template:
    task: regression
    dataset:
      synthetic: {samples: 6000, seed: 1}
    hyperparameters: {hidden_dims: [64, 64], optimizer: sgd}
    epochs: 5
    batchSize: 32
  phases:
    - name: grid
      sweep:
        trials:
          - {lr: 0.01}
          - {lr: 0.02}
          - {lr: 100.0}
          - {lr: 200.0}
      failurePolicy:
        maxFailureRate: 0.25
        failFast: false
"""


def test_ctrl_c_then_resume_then_failed_with_reason(tmp_path: Path) -> None:
    manifest = tmp_path / "ctrlc.yaml"
    manifest.write_text(MANIFEST)
    state = tmp_path / "state"
    args = campaign_cmd("run", str(manifest), "--state", str(state), "--max-parallel", "2")
    # Its own process group, like a shell job: Ctrl-C reaches every process of the group.
    first = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            if (state / "state.db").exists():
                docs = trial_docs(state)
                if any(
                    d["status"]["state"] == "Running" and d["status"].get("epoch", 0) >= 1
                    for d in docs.values()
                ):
                    break
            time.sleep(0.1)
        else:
            pytest.fail("no trial got going")
        os.killpg(first.pid, signal.SIGINT)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 130, out + err
    assert "run the same command to resume" in err
    interrupted = {n for n, d in trial_docs(state).items() if d["status"]["state"] == "Running"}
    assert interrupted  # saved as Running (attempt 1): an interruption is not a trial failure
    assert query(state, "SELECT reason FROM events WHERE reason = 'RunnerInterrupted'")
    assert not query(state, "SELECT pid FROM lease")  # the lease was released
    # A trial launched just before Ctrl-C may not have begun in its worker yet (no start line).
    begun_before = {n: starts(state, n) for n in interrupted}
    ended_before = {n for n in interrupted if outcomes(state, n)}
    assert all(b in ([], [False]) for b in begun_before.values()), begun_before

    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1, second.stdout + second.stderr
    reason = second.stderr.strip().splitlines()[-1]
    assert reason == (
        "campaign ctrlc Failed: phase grid: failure rate 50.0% (2 failed of 4 trials, 0 skipped excluded)"
        " exceeds maxFailureRate 25.0%"
    )
    final = trial_docs(state)
    assert sorted(d["status"]["state"] for d in final.values()) == [
        "Failed",
        "Failed",
        "Succeeded",
        "Succeeded",
    ]
    assert {d["status"]["reason"] for d in final.values() if d["status"]["state"] == "Failed"} == {
        "NonFiniteLoss"
    }
    for name in interrupted:
        # Resumed once (resume=True) unless its outcome had landed before the runner stopped;
        # either way trained to one outcome in attempt 1.
        resumed = [] if name in ended_before else [True]
        assert starts(state, name) == begun_before[name] + resumed, (name, begun_before[name])
        assert len(outcomes(state, name)) == 1, name
        assert final[name]["status"]["attempt"] == 1


def starts(state: Path, trial: str) -> list[bool]:
    return [x["resume"] for x in progress_lines(state, trial) if x["type"] == "start"]


def outcomes(state: Path, trial: str) -> list[dict[str, object]]:
    return [x for x in progress_lines(state, trial) if x["type"] == "outcome"]
