"""`campaign status/results/report/run` on a damaged state dir: one `Error:` line that says what to
do, exit 3 (infrastructure), no traceback; `run` refuses before starting Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign_operator.cli.main import _register, cli

pytestmark = pytest.mark.unit

_register()

MANIFEST = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: c}
spec:
  template: {task: regression, epochs: 1}
  phases: [{name: p, sweep: {trials: [{lr: 0.01}]}}]
"""
DAMAGE = {"empty": b"", "garbage": os.urandom(4096), "text": b"SQLite format 3\0" + b"not really" * 50}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["status", "results", "report", "run"])
def test_a_damaged_state_file_is_one_line_that_says_what_to_do(
    tmp_path: Path, command: str, damage: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.db").write_bytes(DAMAGE[damage])
    manifest = tmp_path / "c.yaml"
    manifest.write_text(MANIFEST)
    args = {
        "status": ["status", "--state", str(state)],
        "results": ["results", "--state", str(state)],
        "report": ["report", "--state", str(state), "-o", str(tmp_path / "r.html")],
        "run": ["run", str(manifest), "--state", str(state)],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output  # the state dir is damaged: infrastructure
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert str(state / "state.db") in lines[0] and "--restart" in lines[0]
    assert (state / "state.db").read_bytes() == DAMAGE[damage]
    assert not (tmp_path / "r.html").exists()
