"""`campaign run` of a search phase: real trials of the `objective` task on a local Ray, each
suggested by TPE when a slot frees; trials named by index, parameters distinct, the phase's best the
lowest value seen; a second `campaign run` of the finished campaign creates and trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_operator.embedded.store import Store
from campaign_operator.planner.naming import canonical_json, search_trial_name

from .conftest import run_manifest, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRIALS = 6
MANIFEST = f"""
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {{name: tpe}}
spec:
  objective: {{metric: val_loss, mode: min}}
  template:
    task: objective
    hyperparameters: {{function: branin}}
    epochs: 3
    resources: {{cpu: 1}}
  phases:
    - name: explore
      maxParallelTrials: 2
      sweep:
        search:
          algorithm: tpe
          trials: {TRIALS}
          seed: 4
          startupTrials: 3
          space:
            x1: {{uniform: [-5, 10]}}
            x2: {{uniform: [0, 15]}}
"""


def test_a_tpe_search_runs_its_budget_and_a_rerun_trains_nothing(tmp_path: Path) -> None:
    state, proc = run_manifest(MANIFEST, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "campaign tpe Succeeded" in proc.stdout, out

    docs = trial_docs(state)
    assert sorted(docs) == sorted(search_trial_name("tpe", "explore", i) for i in range(TRIALS)), out
    assert all(d["status"]["state"] == "Succeeded" for d in docs.values()), out
    points = [d["spec"]["sweepPoint"] for d in docs.values()]
    assert len({canonical_json(p) for p in points}) == TRIALS
    assert all(-5 <= p["x1"] < 10 and 0 <= p["x2"] < 15 for p in points)
    finals = {  # what ranks a trial: its metrics at its best epoch
        name: ((d["status"].get("best") or {}).get("metrics") or d["status"]["metrics"])["val_loss"]
        for name, d in docs.items()
    }

    _, again = run_manifest(MANIFEST, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    redo = trial_docs(state)
    assert sorted(redo) == sorted(docs)
    for name, d in redo.items():
        assert d["spec"] == docs[name]["spec"], name  # a created trial never changes
        assert d["status"]["attempt"] == docs[name]["status"]["attempt"] == 1, name  # trained once
    with Store(state, readonly=True) as store:
        status = store.status()
    assert status is not None
    best = status.phases[0].best
    assert best is not None and best.value == min(finals.values()) and best.trial in docs
