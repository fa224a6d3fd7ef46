"""The entry point as a process: what a RayJob / the embedded executor actually runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaign_trainer", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_invalid_trial_on_stdin_still_reports_an_outcome() -> None:
    proc = run_cli("run", "--trial", "-", stdin="metadata: {name: x}\nspec: {task: regression}\n")
    assert proc.returncode == 3
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (line["type"], line["trial"], line["status"]["state"]) == ("outcome", "x", "Failed")
    assert line["status"]["reason"] == "InvalidTrial" and "ValidationError" in line["status"]["message"]


def test_an_empty_trial_variable_is_an_invalid_trial_not_a_success() -> None:
    # What KubeRay's submitter did to the old `printf "$CAMPAIGN_TRIAL" | ...` entrypoint: no document.
    proc = run_cli("run", "--trial-env", "CAMPAIGN_TRIAL_NOT_SET_HERE", "--reporter", "kubernetes")
    assert proc.returncode == 3
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (line["type"], line["status"]["state"], line["status"]["reason"]) == (
        "outcome",
        "Failed",
        "InvalidTrial",
    )
    assert "CAMPAIGN_TRIAL_NOT_SET_HERE is unset or empty" in line["status"]["message"]


def test_run_to_jsonl_and_stdout(tmp_path: Path) -> None:
    trial = tmp_path / "t.json"
    trial.write_text(
        json.dumps(
            {
                "metadata": {"name": "cli-t"},
                "spec": {
                    "campaign": "c",
                    "phase": "p",
                    "task": "cql",
                    "epochs": 2,
                    "batchSize": 256,
                    "dataset": {"synthetic": {"samples": 512}},
                },
            }
        )
    )
    progress = tmp_path / "progress.jsonl"
    proc = run_cli(
        "run",
        "--trial",
        str(trial),
        "--reporter",
        f"jsonl:{progress}",
        "--reporter",
        "stdout",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from_file = [json.loads(line) for line in progress.read_text().splitlines()]
    from_stdout = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [x["type"] for x in from_file] == [x["type"] for x in from_stdout] == ["epoch", "epoch", "outcome"]
    assert from_file[-1]["status"]["checkpoint"] == str(tmp_path / "ckpt" / "cli-t" / "epoch-000002.ckpt")
