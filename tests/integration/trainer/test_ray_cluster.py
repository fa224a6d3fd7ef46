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


def test_ddp_worker_via_ray_ddp_strategy(ray_cluster: None, tmp_path: Path) -> None:
    progress = tmp_path / "p.jsonl"
    spec = {**SMALL, "resources": {"cpu": 1, "workers": 1}, "checkpoint": {"uri": str(tmp_path / "ck")}}
    before = actors_ever_created()
    out = run_trial(trial("ddp", "regression", **spec), JsonlReporter(str(progress), "ddp"))
    assert actors_ever_created() >= before + 2  # a controller and a worker, at least
    assert (out.state, out.reason, out.epoch) == ("Succeeded", "Completed", 2), out.message
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [(line["type"], line.get("epoch")) for line in lines] == [
        ("epoch", 1),
        ("epoch", 2),
        ("outcome", None),
    ]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["epoch-000001.ckpt", "epoch-000002.ckpt"]


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
