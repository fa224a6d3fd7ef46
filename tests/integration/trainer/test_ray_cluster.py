"""The paths that need a Ray cluster: DDP workers (RayDDPStrategy), a Ray Tune trainable, and
run_trial from inside a Ray task (how the embedded executor calls it). One local cluster for all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign_trainer.harness import run_trial
from campaign_trainer.outcome import Outcome
from campaign_trainer.reporters import JsonlReporter, NullReporter

from .conftest import trial

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL = {
    "epochs": 2,
    "batchSize": 128,
    "dataset": {"synthetic": {"samples": 512}},
    "parameters": {"seed": 1, "hidden_dims": [16]},
}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}},
    )
    yield
    ray.shutdown()


def actors_ever_created() -> int:
    import ray

    return len(ray._private.state.actors())  # from the GCS (dead ones included): no dashboard needed


def test_two_ddp_workers_agree_on_a_stop_rule(ray_cluster: None, tmp_path: Path) -> None:
    """Two RayDDPStrategy workers (gloo): rank 0 reports, its stop decision is broadcast so both ranks
    stop at the same epoch, and the checkpoint at the stop is written once."""
    progress = tmp_path / "p.jsonl"
    spec = {
        "epochs": 6,
        "batchSize": 128,
        "dataset": {"synthetic": {"samples": 1024, "seed": 0, "options": {"signal": 0.3, "noise": 1.0}}},
        "parameters": {"seed": 1, "output_init_std": 1e-4, "dropout": 0.7, "weight_decay": 0.5},
        "resources": {"cpu": 0.5, "workers": 2},
        "checkpoint": {"uri": str(tmp_path / "ck"), "everyEpochs": 2},
        "stopRules": [
            {
                "metric": "variance_ratio",
                "comparison": "<",
                "threshold": 0.1,
                "afterEpoch": 2,
                "action": "Stop",
                "reason": "VarianceCollapse",
            }
        ],
    }
    before = actors_ever_created()
    out = run_trial(trial("ddp", "regression", **spec), JsonlReporter(str(progress), "ddp"))
    assert actors_ever_created() >= before + 3  # a controller and two workers, at least
    assert (out.state, out.reason, out.epoch) == ("Stopped", "VarianceCollapse", 3), out.message
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [(line["type"], line.get("epoch")) for line in lines] == [
        ("epoch", 1),
        ("epoch", 2),
        ("epoch", 3),
        ("outcome", None),
    ]
    saved = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert saved == ["epoch-000002.ckpt", "epoch-000003.ckpt", "outputs"]  # rank 0 published the outputs
    assert lines[-1]["status"]["outputs"] == str(tmp_path / "ck" / "outputs")
    assert sorted(p.name for p in (tmp_path / "ck" / "outputs").iterdir()) == [
        "model.pt",
        "outputs.json",
        "predictions.parquet",
    ]


def test_same_training_function_under_ray_tune(ray_cluster: None, tmp_path: Path) -> None:
    from ray import tune

    from campaign_trainer.tune import trainable

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"trial": trial("tuned", "cql", **SMALL)["spec"]},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="bench"),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0
    result = grid[0]
    assert result.metrics["trial_state"] == "Succeeded" and result.metrics["epoch"] == 2
    assert result.metrics["training_iteration"] == 3  # two epochs plus the outcome report
    assert "win_rate" in result.metrics


def test_run_trial_inside_a_ray_task_uses_local_mode(ray_cluster: None) -> None:
    import ray

    @ray.remote(num_cpus=1)
    def embedded(doc: dict[str, Any]) -> Outcome:
        return run_trial(doc, NullReporter())

    before = actors_ever_created()
    params = {"d_model": 8, "layers": 1, "heads": 2, "seq_len": 8}
    out = ray.get(embedded.remote(trial("embedded", "sequence", **{**SMALL, "parameters": params})))
    assert (out.state, out.epoch) == ("Succeeded", 2), out.message
    assert actors_ever_created() == before  # local mode: no controller or worker actors for this trial
