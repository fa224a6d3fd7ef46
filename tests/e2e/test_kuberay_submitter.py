"""The RayJob we build, submitted the way KubeRay v1.5.0's submitter does it, to a real Ray head.

KubeRay's K8sJobMode submitter (`BuildJobSubmitCommand` in ray-operator/controllers/ray/common/
job.go, run as `/bin/bash -ce -- <script>` by `configureSubmitterContainer`) joins words into one
shell script: `spec.entrypoint` is pasted in unquoted after `ray job submit ... --`, and the runtime
env goes in as `--runtime-env-json "<Go-quoted JSON>"`. The submitter pod has no CAMPAIGN_TRIAL of
its own, so anything in the entrypoint that the script's shell can evaluate (expansions, pipes) is
evaluated there, not in the Ray job. Here the same script runs in bash with the real `ray` CLI; the
trainer, started by Ray from our entrypoint, must get the whole trial document from Ray's runtime env.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.trial import Trial
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import build_rayjob
from campaign_operator.lifecycle.wire import TRIAL_ENV

from .conftest import NOT_INHERITED, RayHead

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EPOCHS = 2


def go_quote(text: str) -> str:
    """Go's strconv.Quote for printable ASCII (all a JSON text with ensure_ascii holds)."""
    assert text.isascii() and text.isprintable(), "outside what this stand-in for strconv.Quote covers"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def submitter_script(rayjob: dict[str, Any], dashboard: str, submission_id: str) -> str:
    """The K8sJobMode script's shape: status check, submit --no-wait, then follow the logs."""
    spec = rayjob["spec"]
    address = dashboard if dashboard.startswith("http://") else f"http://{dashboard}"
    runtime_env = json.dumps(yaml.safe_load(spec["runtimeEnvYAML"]), separators=(",", ":"))
    words = [
        "if",
        "!",
        "ray",
        "job",
        "status",
        "--address",
        address,
        submission_id,
        ">/dev/null",
        "2>&1",
        ";",
    ]
    words += ["then", "ray", "job", "submit", "--address", address, "--no-wait"]
    words += ["--runtime-env-json", go_quote(runtime_env), "--submission-id", submission_id]
    if spec.get("entrypointNumCpus", 0) > 0:
        words += ["--entrypoint-num-cpus", f"{spec['entrypointNumCpus']:f}"]
    words += ["--", spec["entrypoint"].strip(), ";", "fi", ";"]
    words += ["ray", "job", "logs", "--address", address, "--follow", submission_id]
    return " ".join(words)


def rayjob_for(tmp_path: Path) -> tuple[dict[str, Any], str]:
    # A checkpoint path with what bash would expand inside double quotes: the outcome echoes it.
    checkpoints = tmp_path / "ckpt $HOME `id` \"q\" 'a'"
    trial = Trial.model_validate(
        {
            "metadata": {"name": "sub-t-1", "namespace": "team-a"},
            "spec": {
                "campaign": "sub",
                "phase": "p",
                "task": "regression",
                "epochs": EPOCHS,
                "batchSize": 64,
                "dataset": {"synthetic": {"samples": 256, "seed": 1}},
                "parameters": {"hidden_dims": [8], "lr": 1e-05},
                "resources": {"cpu": 1},
                "checkpoint": {"uri": str(checkpoints)},
            },
        }
    )
    campaign = TrainingCampaign.model_validate(
        {
            "metadata": {"name": "sub", "namespace": "team-a"},
            "spec": {
                "template": {"task": "regression"},
                "executor": {"kind": "kuberay"},
                "phases": [{"name": "p"}],
            },
        }
    )
    settings = TrainerSettings(python=sys.executable, reporter="stdout")
    return build_rayjob(trial, 1, campaign, settings), str(checkpoints)


def test_our_entrypoint_survives_kuberays_submitter_shell(ray_head: RayHead, tmp_path: Path) -> None:
    rayjob, checkpoints = rayjob_for(tmp_path)
    submission_id = f"sub-t-1-a1-{uuid.uuid4().hex[:6]}"
    script = submitter_script(rayjob, ray_head.address.removeprefix("http://"), submission_id)
    # The submitter pod's environment: Ray's CLI and token, no trial document.
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith("RAY_")}
    env |= {"PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}", "RAY_AUTH_TOKEN": ray_head.token}
    env |= {"RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1"}
    assert TRIAL_ENV not in env
    proc = subprocess.run(
        ["/bin/bash", "-ce", "--", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{ray_head.diagnostics()}"

    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"type"')]
    assert [line["type"] for line in lines] == ["epoch"] * EPOCHS + ["outcome"], proc.stdout[-3000:]
    outcome = lines[-1]
    assert outcome["trial"] == "sub-t-1"
    assert (outcome["status"]["state"], outcome["status"]["epoch"]) == ("Succeeded", EPOCHS)
    # Quotes, `$` and backquotes inside the document reached the trainer as written.
    assert outcome["status"]["checkpoint"] == f"{checkpoints}/epoch-{EPOCHS:06d}.ckpt"
    assert Path(outcome["status"]["checkpoint"]).exists()
    job = next(j for j in ray_head.jobs() if j.get("submission_id") == submission_id)
    assert job["status"] == "SUCCEEDED" and job["entrypoint"].split()[-4:] == [
        "--trial-env",
        TRIAL_ENV,
        "--reporter",
        "stdout",
    ]
