"""A cluster-sized campaign on this machine, end to end: `campaign run` scales its per-trial
resources down with one warning and the trials run to their end here; the state dir it names is the
one `campaign list/status/results` find; the exit statuses of a run (bad input 2, a Ray that cannot
start 3) from the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import CAMPAIGN, query

pytestmark = pytest.mark.e2e

# The shape of examples/variance-collapse.yaml (4 CPUs and a GPU per trial, bf16-mixed), on a
# synthetic dataset so it runs without its S3 data.
CLUSTER_SIZED = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: cluster-sized}
spec:
  objective: {metric: val_loss, mode: min}
  template:
    task: regression
    dataset: {synthetic: {samples: 256, seed: 1, options: {features: 4}}}
    hyperparameters: {lr: 0.01, hidden_dims: [8]}
    epochs: 2
    batchSize: 64
    precision: bf16-mixed
    resources: {cpu: 4, gpu: 1}
  phases:
    - name: sweep
      sweep: {grid: {lr: [0.01, 0.02]}}
"""


def cli(*args: str, cwd: Path, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAMPAIGN, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """This test's own index of state dirs (never the user's)."""
    return {**os.environ, "CAMPAIGN_STATE_INDEX": str(tmp_path / "index")}


def test_a_cluster_sized_campaign_runs_here_scaled_down_with_one_warning(
    tmp_path: Path, env: dict[str, str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    manifest = work / "cluster-sized.yaml"
    manifest.write_text(CLUSTER_SIZED)
    cpus = len(os.sched_getaffinity(0))

    strict = cli("run", str(manifest), "--strict-resources", cwd=work, env=env)
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert "spec.template.resources: phase sweep asks cpu 4, gpu 1 per trial" in strict.stderr
    assert not (work / ".campaign").exists()  # refused before anything ran

    done = cli("run", str(manifest), cwd=work, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "campaign cluster-sized Succeeded" in done.stdout
    assert out.count("resources scaled down to fit this machine") == 1, out
    assert f"phase sweep: cpu 4 -> {min(cpus, 4)}, gpu 1 -> 0 (runs on CPU)" in out
    assert "precision bf16-mixed -> 32-true" in out
    assert "Unschedulable" not in out

    state = work / ".campaign" / "cluster-sized"
    docs = [json.loads(d) for (d,) in query(state, "SELECT doc FROM trials")]
    assert len(docs) == 2
    for doc in docs:
        assert doc["status"]["state"] == "Succeeded", doc["status"]
        assert doc["status"]["attempt"] == 1  # no retries: nothing was discovered trial by trial
        assert doc["spec"]["resources"]["gpu"] == 0 and doc["spec"]["resources"]["cpu"] == min(cpus, 4)
        assert doc["spec"]["precision"] == "32-true"

    # The state dir run named is what the reading commands find, by manifest, name or listing.
    listed = cli("list", cwd=work, env=env)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:6] == ["NAME", "RUN", "STATE", "PHASE", "PROGRESS", "FAILRATE"]
    assert row.split()[:3] == ["cluster-sized", "full", "Succeeded"] and row.endswith(
        ".campaign/cluster-sized"
    )
    for ref in (str(manifest), "cluster-sized", str(state)):
        results = cli("results", ref, "-o", "csv", cwd=work, env=env)
        assert results.returncode == 0, results.stderr
        assert len(results.stdout.strip().splitlines()) == 3  # header + 2 trials
    elsewhere = cli("status", "cluster-sized", cwd=tmp_path, env=env)  # found through the index
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_a_ray_that_cannot_start_is_retried_then_exit_3_with_each_cause(
    tmp_path: Path, env: dict[str, str]
) -> None:
    manifest = tmp_path / "c.yaml"
    manifest.write_text(CLUSTER_SIZED.replace("resources: {cpu: 4, gpu: 1}", "resources: {cpu: 1}"))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    # Ray's session directory would go under a regular file: a real start failure, every time.
    proc = cli(
        "run",
        str(manifest),
        "--state",
        str(tmp_path / "state"),
        cwd=tmp_path,
        env={**env, "RAY_TMPDIR": str(blocker / "ray")},
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert "local Ray did not start (3 tries); last: [Errno 20] Not a directory" in error, error
    assert "nothing was run" in error
    retries = [line for line in (proc.stdout + proc.stderr).splitlines() if "trying again in" in line]
    assert len(retries) == 2, proc.stdout + proc.stderr  # each earlier failure said with its cause
    assert all("Not a directory" in line for line in retries)
