"""`campaign run FILE` reads a relative dataset path beside FILE, from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_operator.embedded.manifest import load_campaign_file
from campaign_operator.planner.trials import build_trial, phase_trials

pytestmark = pytest.mark.unit

MANIFEST = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: c}
spec:
  template:
    task: regression
    epochs: 1
    dataset: {path: "data/{symbol}.csv", target: y}
  phases:
    - name: p
      sweep: {grid: {symbol: [AAA]}}
    - name: q
      dataset: {path: ./q.csv, target: y}
    - name: r
      dataset: {path: s3://bucket/r.csv, target: y}
    - name: s
      dataset: {path: /abs/s.csv, target: y}
"""


def trial_path(path: Path, index: int) -> str | None:
    c = load_campaign_file(path)
    planned = phase_trials(c, index)[0]
    dataset = build_trial(c, c.spec.phases[index], planned.point, None).spec.dataset
    assert dataset is not None
    return dataset.path


def test_relative_paths_are_anchored_at_the_manifest_templates_and_braces_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "a {b}"  # braces in the directory are not a template
    here.mkdir()
    (here / "c.yaml").write_text(MANIFEST)
    monkeypatch.chdir(tmp_path)
    manifest = Path("a {b}") / "c.yaml"
    assert trial_path(manifest, 0) == f"{here}/data/AAA.csv"
    assert trial_path(manifest, 1) == f"{here}/q.csv"
    assert trial_path(manifest, 2) == "s3://bucket/r.csv"
    assert trial_path(manifest, 3) == "/abs/s.csv"
