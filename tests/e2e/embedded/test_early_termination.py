"""`campaign run` of a phase with earlyTermination (asha): real training on a local Ray; the trials
whose learning rate is clearly too small are stopped Stopped/EarlyTerminated at a rung by the
planner (through the runner's FinishTrial path), the campaign still succeeds, and it spends fewer
epochs than its trials' full budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_manifest, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Long enough that the runner (polling every 0.25 s) sees a bad trial at some rung (1, 2, 4, 8, 16)
# before it ends: with 6 epochs of 1024 rows, a loaded CI machine once saw every trial run to its end.
EPOCHS = 20
LRS = [0.03, 0.01, 1e-6, 3e-6]  # the last two barely move from their start (each stop costs a worker start)

MANIFEST = f"""
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {{name: asha}}
spec:
  objective: {{metric: val_loss, mode: min}}
  template:
    task: regression
    dataset: {{synthetic: {{samples: 2048, seed: 3, options: {{features: 8, signal: 1.0, noise: 0.2}}}}}}
    hyperparameters: {{lr: 0.01, hidden_dims: [16], seed: 0}}
    epochs: {EPOCHS}
    batchSize: 32
    resources: {{cpu: 1}}
  phases:
    - name: explore
      maxParallelTrials: 2
      sweep: {{grid: {{lr: {LRS}}}}}
      earlyTermination: {{algorithm: asha, minEpochs: 1, reductionFactor: 2, minTrials: 2}}
"""


def test_asha_stops_bad_trials_early_and_the_campaign_succeeds(tmp_path: Path) -> None:
    state, proc = run_manifest(MANIFEST, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "campaign asha Succeeded" in proc.stdout, out

    docs = trial_docs(state)
    assert len(docs) == len(LRS)
    by_state: dict[str, list[dict]] = {}
    for d in docs.values():
        by_state.setdefault(d["status"]["state"], []).append(d)
    stopped = by_state.get("Stopped", [])
    assert stopped and all(d["status"]["reason"] == "EarlyTerminated" for d in stopped), out
    assert all("asha" in d["status"]["message"] for d in stopped)
    assert "Failed" not in by_state, out
    # The good learning rates run to the end; the stopped ones are small-lr trials.
    lrs_stopped = {d["spec"]["parameters"]["lr"] for d in stopped}
    assert lrs_stopped <= set(LRS[2:]), lrs_stopped
    assert {d["spec"]["parameters"]["lr"] for d in by_state["Succeeded"]} >= set(LRS[:2])
    # Fewer epochs than without early termination (every trial running all of its epochs).
    spent = sum(d["status"].get("epoch") or 0 for d in docs.values())
    assert spent < EPOCHS * len(LRS), spent
    for d in stopped:
        assert (d["status"].get("epoch") or 0) < EPOCHS
