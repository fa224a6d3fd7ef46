"""SIGKILL the runner mid-campaign, run it again: nothing lost, nothing run twice, exact counts."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import (
    REPO,
    campaign_cmd,
    descendants,
    kill_all,
    progress_lines,
    query,
    run_cli,
    running,
    trial_docs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EPOCHS = 6
MANIFEST = f"""
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata:
  name: killtest
spec:
  template:
    task: regression
    dataset:
      synthetic: {{samples: 8000, seed: 1}}
    hyperparameters: {{lr: 0.01, hidden_dims: [64, 64]}}
    epochs: {EPOCHS}
    batchSize: 32
  phases:
    - name: grid
      sweep:
        grid:
          lr: [0.01, 0.02, 0.03]
          seed: [0, 1]
"""
TRIALS = 6


def _states(state: Path) -> dict[str, tuple[str, int]]:
    return {
        name: (doc["status"]["state"], int(doc["status"].get("epoch", 0)))
        for name, doc in trial_docs(state).items()
    }


def test_sigkill_mid_campaign_then_resume(tmp_path: Path) -> None:
    manifest = tmp_path / "killtest.yaml"
    manifest.write_text(MANIFEST)
    state = tmp_path / "state"
    args = ["run", str(manifest), "--state", str(state), "--max-parallel", "2"]
    runner = subprocess.Popen(campaign_cmd(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    leftovers: set[tuple[int, str]] = set()
    try:
        # Wait until at least one trial finished and another is Running past its first epochs.
        deadline = time.monotonic() + 240
        snapshot: dict[str, tuple[str, int]] = {}
        while time.monotonic() < deadline:
            assert runner.poll() is None, "the runner ended before it could be killed"
            if (state / "state.db").exists():
                snapshot = _states(state)
                done = [n for n, (s, _) in snapshot.items() if s == "Succeeded"]
                busy = [n for n, (s, e) in snapshot.items() if s == "Running" and e >= 2]
                if done and busy:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"never saw a finished and a running trial together: {snapshot}")
        leftovers = descendants(runner.pid)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        # Everything the runner started shares its fate: the trial workers (nothing keeps training or
        # writing progress behind the next runner's back), and Ray's raylet, GCS and agents.
        deadline = time.monotonic() + 30
        while (alive := running(leftovers)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive, f"these outlived the killed runner: {alive}"

        # What the killed runner had recorded, and the progress files it had seen written.
        killed = _states(state)
        finished_before = {n for n, (s, _) in killed.items() if s == "Succeeded"}
        running_before = {n for n, (s, _) in killed.items() if s == "Running"}
        assert finished_before and running_before
        files_before = {n: progress_lines(state, n) for n in finished_before | running_before}

        # Resume; a second runner on the same state dir must refuse while this one holds it.
        resumed = subprocess.Popen(
            campaign_cmd(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.0)
        second = run_cli(*args, check=False, timeout=60)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "in use" in second.stderr
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out + err
        assert "campaign killtest Succeeded" in out
    finally:
        if runner.poll() is None:
            runner.kill()
        kill_all(leftovers)

    # Exact final counts.
    final = trial_docs(state)
    assert len(final) == TRIALS
    assert {d["status"]["state"] for d in final.values()} == {"Succeeded"}
    assert all(d["status"]["attempt"] == 1 for d in final.values())  # a runner crash is not a failure
    counts = query(state, "SELECT value FROM meta WHERE key = 'status'")[0][0]
    assert '"succeeded":6' in counts.replace(" ", "") and '"total":6' in counts.replace(" ", "")

    # Nobody started twice: exactly one launch per trial, resumes only for interrupted ones.
    starts = query(state, "SELECT trial, count(*) FROM attempts WHERE kind = 'start' GROUP BY trial")
    assert dict(starts) == {name: 1 for name in final}
    resumes = dict(query(state, "SELECT trial, count(*) FROM attempts WHERE kind = 'resume' GROUP BY trial"))
    assert set(resumes) <= running_before and all(n == 1 for n in resumes.values())

    for name in final:
        lines = progress_lines(state, name)
        begun = [x for x in lines if x["type"] == "start"]
        epochs = [x["epoch"] for x in lines if x["type"] == "epoch"]
        outcomes = [x for x in lines if x["type"] == "outcome"]
        assert len(outcomes) == 1, name
        assert sorted(set(epochs)) == list(range(1, EPOCHS + 1)), (name, epochs)
        # The first process writes resume=false; a trial launched just before the kill whose process
        # had not written its start line yet is begun by the resumed runner (resume=true) alone.
        unstarted = name in running_before and not any(x["type"] == "start" for x in files_before[name])
        first = [] if unstarted else [False]
        assert first or name in resumes, (name, files_before[name])
        assert [x["resume"] for x in begun] == first + [True] * resumes.get(name, 0), (name, begun)
        if name in finished_before:
            # Finished trials were not touched again: their progress file is exactly as it was.
            assert lines == files_before[name]
        if name in resumes:
            # Resumed from its checkpoint (one per epoch): training continued after the last epoch
            # reported before the kill instead of starting over, and at most the epoch in flight at
            # the kill was trained twice. (A trial launched just before the kill has none yet.)
            cut = lines.index(begun[len(first)])  # the resumed runner's start line
            before = [x["epoch"] for x in lines[:cut] if x["type"] == "epoch"]
            after = [x["epoch"] for x in lines[cut:] if x["type"] == "epoch"]
            assert after and after[0] >= (before[-1] if before else 1), (name, epochs)
            assert len(epochs) <= EPOCHS + 1, (name, epochs)
        else:
            assert epochs == list(range(1, EPOCHS + 1)), (name, epochs)
