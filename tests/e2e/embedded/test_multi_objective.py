"""`campaign run` of a multi-objective phase: real training on a local Ray (the regression task, a
growing Sharpe weight in its loss), the phase's Pareto front in the stored status checked against
the non-dominated set of the trials as they finished, a gate over the front, a weighted promotion
into the next phase computed again here, and the report's front chart."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from campaign_operator.api.campaign import CampaignState, TrainingCampaignStatus
from campaign_operator.embedded.store import Store

from .conftest import CAMPAIGN, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHARPE_WEIGHTS = [0.0, 0.1, 0.5, 2.0]
WEIGHTS = {"sharpe": 2.0, "rmse": 1.0}

MANIFEST = f"""
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {{name: pareto}}
spec:
  template:
    task: regression
    dataset:
      synthetic: {{samples: 768, seed: 5, options: {{features: 8, signal: 0.5, noise: 1.0, days: 16}}}}
    hyperparameters: {{hidden_dims: [16], lr: 0.01, group_column: day, loss: {{huber: 1.0}}, seed: 0}}
    epochs: 2
    batchSize: 192
    resources: {{cpu: 1}}
  phases:
    - name: frontier
      maxParallelTrials: 2
      objectives: [{{metric: sharpe, mode: max}}, {{metric: rmse, mode: min}}]
      sweep: {{grid: {{loss: {[{"huber": 1.0, "sharpe": w} for w in SHARPE_WEIGHTS]}}}}}
      gate: {{expression: "phase.front.exists(t, t.rmse < 100.0) && size(phase.front) >= 1"}}
    - name: final
      dependsOn: [frontier]
      fromPhase: {{phase: frontier, weights: {WEIGHTS}}}
"""


def costs(metrics: dict[str, float]) -> tuple[float, float] | None:
    sharpe, rmse = metrics.get("sharpe", math.nan), metrics.get("rmse", math.nan)
    return (-sharpe, rmse) if math.isfinite(sharpe) and math.isfinite(rmse) else None


def best_metrics(doc: dict[str, Any]) -> dict[str, float]:
    status = doc["status"]
    return (status.get("best") or {}).get("metrics") or status.get("metrics") or {}


def weighted_pick(front: dict[str, tuple[float, float]]) -> str:
    """The reference scalarisation: each objective rescaled over the front to 0 (worst) .. 1 (best)."""
    columns = list(zip(*front.values(), strict=True))  # costs: lower is better on both
    lo, hi = [min(c) for c in columns], [max(c) for c in columns]
    weights = (WEIGHTS["sharpe"], WEIGHTS["rmse"])

    def score(c: tuple[float, float]) -> float:
        return sum(
            w * (1.0 if h == low else (h - v) / (h - low))
            for w, v, low, h in zip(weights, c, lo, hi, strict=True)
        )

    return min(front, key=lambda name: (-score(front[name]), name))


def test_a_multi_objective_phase_runs_end_to_end(tmp_path: Path) -> None:
    manifest = tmp_path / "pareto.yaml"
    manifest.write_text(MANIFEST)
    state = tmp_path / "state"
    env = {**os.environ, "CAMPAIGN_STATE_INDEX": str(tmp_path / "index")}
    proc = subprocess.run(
        [CAMPAIGN, "run", "-q", "--state", str(state), "--max-parallel", "2", str(manifest)],
        capture_output=True,
        text=True,
        timeout=560,
        cwd=tmp_path,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    with Store(state, readonly=True) as store:
        status: TrainingCampaignStatus | None = store.status()
    assert status is not None and status.state == CampaignState.SUCCEEDED, out

    docs = trial_docs(state)
    frontier = {n: d for n, d in docs.items() if d["spec"]["phase"] == "frontier"}
    assert len(frontier) == len(SHARPE_WEIGHTS)
    assert {d["spec"]["objective"]["metric"] for d in frontier.values()} == {"sharpe"}
    comparable = {
        n: c
        for n, d in frontier.items()
        if d["status"]["state"] == "Succeeded" and (c := costs(best_metrics(d)))
    }
    expected = {
        a
        for a, ca in comparable.items()
        if not any(
            cb != ca and all(x <= y for x, y in zip(cb, ca, strict=True)) for cb in comparable.values()
        )
    }
    phase, final = status.phases
    assert phase.front is not None and {t.trial for t in phase.front} == expected, (phase.front, comparable)
    assert phase.front_size == len(expected)
    assert [t.values["sharpe"] for t in phase.front] == sorted(
        (t.values["sharpe"] for t in phase.front), reverse=True
    )
    for t in phase.front:
        assert t.values == {"sharpe": -comparable[t.trial][0], "rmse": comparable[t.trial][1]}
    assert phase.best is not None and phase.best.trial == phase.front[0].trial
    assert phase.gate is not None and phase.gate.passed is True, phase.gate

    pick = weighted_pick({n: comparable[n] for n in expected})
    expected_params = {k: v for k, v in frontier[pick]["spec"]["parameters"].items() if k != "seed"}
    assert final.promoted == expected_params
    (final_doc,) = [d for d in docs.values() if d["spec"]["phase"] == "final"]
    assert final_doc["spec"]["parameters"]["loss"] == frontier[pick]["spec"]["parameters"]["loss"]

    report = tmp_path / "report.html"
    subprocess.run(
        [CAMPAIGN, "report", "--state", str(state), "-o", str(report)], check=True, timeout=300, env=env
    )
    page = report.read_text()
    assert 'data-plot="front" data-key="frontier"' in page
    assert f"Pareto front ({len(expected)})" in page
