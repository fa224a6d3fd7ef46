"""What `campaign validate` warns about for a run here: missing local files, S3 without credentials,
requests larger than this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaign_operator.embedded.fit import Machine
from campaign_operator.embedded.preflight import local_warnings, s3_credentials_found
from campaign_operator.planner.admission import load_campaign

pytestmark = pytest.mark.unit

LAPTOP = Machine(cpu=2, gpu=0, memory_bytes=16 * 2**30)


def campaign(dataset: dict[str, Any], *, storage: dict[str, Any] | None = None, **template: Any) -> Any:
    spec: dict[str, Any] = {
        "template": {"task": "regression", "epochs": 1, "dataset": dataset, **template},
        "phases": [{"name": "p", "sweep": {"grid": {"symbol": ["AAA", "BBB", "CCC"]}}}],
    }
    if storage is not None:
        spec["storage"] = storage
    return load_campaign(
        {
            "apiVersion": "training.campaign-operator.io/v1alpha1",
            "kind": "TrainingCampaign",
            "metadata": {"name": "c"},
            "spec": spec,
        }
    )


def test_local_files_are_looked_for_where_a_run_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest_dir, cwd = tmp_path / "examples", tmp_path / "cwd"
    (manifest_dir / "data").mkdir(parents=True)
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (manifest_dir / "data" / "prices.csv").write_text("x,y\n1,2\n")
    beside = campaign({"path": "data/prices.csv", "target": "y"})
    assert local_warnings(beside, manifest_dir, LAPTOP, env={}, home=tmp_path) == []
    # From stdin there is no manifest directory: a run would read it relative to the working directory.
    [warning] = local_warnings(beside, None, LAPTOP, env={}, home=tmp_path)
    assert warning.startswith(f"spec.template.dataset.path: data/prices.csv not found in {cwd};")

    (manifest_dir / "data" / "AAA.csv").write_text("x,y\n1,2\n")
    per_symbol = campaign({"path": "data/{symbol}.csv", "target": "y"})
    [warning] = local_warnings(per_symbol, manifest_dir, LAPTOP, env={}, home=tmp_path)
    assert warning == (
        f"spec.template.dataset.path: {manifest_dir}/data/BBB.csv and 1 more of its trials' files not "
        "found; ship the file there, or point path at it (absolute, or relative to the manifest)"
    )


def test_s3_without_credentials_here_is_named_per_field(tmp_path: Path) -> None:
    c = campaign(
        {"path": "s3://bucket/data.parquet", "target": "y"},
        storage={"s3": {"uri": "s3://ckpt/runs", "credentialsSecret": "s3-creds"}},
    )
    warnings = local_warnings(c, None, LAPTOP, env={}, home=tmp_path)
    assert [w.split(":")[0] for w in warnings] == ["spec.template.dataset.path", "spec.storage.s3.uri"]
    assert "s3-creds is a cluster Secret" in warnings[1] and "AWS_ACCESS_KEY_ID" in warnings[1]
    assert local_warnings(c, None, LAPTOP, env={"AWS_ACCESS_KEY_ID": "k"}, home=tmp_path) == []


def test_credentials_are_found_where_boto3_looks_without_a_metadata_service(tmp_path: Path) -> None:
    assert not s3_credentials_found({}, tmp_path)
    assert s3_credentials_found({"AWS_PROFILE": "dev"}, tmp_path)
    assert s3_credentials_found({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://x"}, tmp_path)
    shared = tmp_path / "creds"
    shared.write_text("[default]\n")
    assert s3_credentials_found({"AWS_SHARED_CREDENTIALS_FILE": str(shared)}, tmp_path / "nohome")
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\n")
    assert s3_credentials_found({}, tmp_path)


def test_requests_larger_than_the_machine_say_what_a_run_here_makes_of_them(tmp_path: Path) -> None:
    c = campaign({"synthetic": {"samples": 64}}, resources={"cpu": 8, "gpu": 1})
    [warning] = local_warnings(c, None, LAPTOP, env={}, home=tmp_path)
    assert warning == (
        "spec.template.resources: phase p asks cpu 8, gpu 1 per trial, more than this machine (2 CPUs, "
        "no GPU, 16 GiB memory); `campaign run` here scales it to cpu 8 -> 2, gpu 1 -> 0 (runs on CPU) "
        "(--strict-resources refuses it)"
    )


PROMOTED = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: promoted}
spec:
  template: {task: regression, epochs: 1, dataset: {path: "data/{width}.csv", target: y}}
  phases:
    - name: a
      sweep: {grid: {width: [1, 2]}}
    - name: b
      dependsOn: [a]
      fromPhase: {phase: a}
      sweep: {seeds: {start: 0, count: 2}}
      skipWhen: [{expression: "params.width > 1", reason: Wide}]
"""


def test_a_phase_judged_only_after_promotion_is_checked_where_it_can_be(tmp_path: Path) -> None:
    import yaml

    c = load_campaign(yaml.safe_load(PROMOTED))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1.csv").write_text("x,y\n1,2\n")
    # Phase a's files are known (2.csv is missing); b's skipWhen and path need the promoted width.
    [warning] = local_warnings(c, tmp_path, LAPTOP, env={}, home=tmp_path)
    assert warning.startswith(f"spec.template.dataset.path: {tmp_path}/data/2.csv not found;")
