"""The gbm task really boosts under the harness: rounds per epoch, metrics, stop rules, checkpoints
and resumption, the GPU fallback, file datasets, outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightgbm as lgb
import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
from lightning.pytorch.strategies import DDPStrategy

from campaign_operator.api.common import TASK_METRICS
from campaign_trainer.data import synthetic
from campaign_trainer.harness import train_fn
from campaign_trainer.tasks import TaskConfig
from campaign_trainer.tasks.gbm import MODEL_FILE, GbmModule, build

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

DATA = {"synthetic": {"samples": 1200, "seed": 0}}
TREES = {"num_leaves": 15, "learning_rate": 0.1, "min_child_samples": 10, "seed": 2}


def gbm_trial(name: str, epochs: int = 4, **spec: Any) -> dict[str, Any]:
    params = {**TREES, **spec.pop("parameters", {})}
    return trial(name, "gbm", epochs=epochs, batchSize=256, dataset=DATA, parameters=params, **spec)


def test_each_epoch_boosts_its_rounds_and_reports_the_regression_metrics(recorder: RecordingReporter) -> None:
    out = train_fn(gbm_trial("gbm-fit", parameters={"n_estimators": 40, "subsample": 0.8}), recorder)
    assert (out.state, out.reason, out.epoch) == ("Succeeded", "Completed", 4), out.message
    assert [m["trees"] for _, m in recorder.epochs] == [10, 20, 30, 40]
    losses = [m["loss"] for _, m in recorder.epochs]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] / 2
    last = recorder.epochs[-1][1]
    assert set(last) == set(TASK_METRICS["gbm"])
    assert last["r2"] > 0.5 and last["ic"] > 0.7 and last["lr"] == pytest.approx(0.1)
    assert last["val_loss"] == pytest.approx(last["rmse"] ** 2, rel=1e-5)


def test_stop_rules_see_every_epoch(recorder: RecordingReporter) -> None:
    rule = {"metric": "r2", "comparison": ">", "threshold": 0.3, "action": "Stop", "reason": "GoodEnough"}
    out = train_fn(
        gbm_trial("gbm-stop", epochs=10, parameters={"rounds_per_epoch": 5}, stopRules=[rule]), recorder
    )
    assert (out.state, out.reason) == ("Stopped", "GoodEnough")
    assert 1 <= out.epoch < 10 and recorder.epochs[-1][1]["trees"] == 5 * out.epoch


def test_a_resumed_trial_continues_boosting_from_its_checkpoint(tmp_path: Path) -> None:
    # No row/column sampling: LightGBM does not save its samplers' random state, so with sampling a
    # resumed booster continues from the same trees but draws other samples than an uninterrupted one.
    params = {"rounds_per_epoch": 8}
    straight = RecordingReporter()
    train_fn(gbm_trial("gbm-straight", parameters=params), straight)
    ck = {"uri": str(tmp_path / "ck"), "everyEpochs": 1}
    first, second = RecordingReporter(), RecordingReporter()
    train_fn(gbm_trial("gbm-resume", epochs=2, parameters=params, checkpoint=ck), first)
    out = train_fn(gbm_trial("gbm-resume", epochs=4, parameters=params, checkpoint=ck), second)
    assert (out.state, out.resumed_from_epoch) == ("Succeeded", 2), out.message
    assert [e for e, _ in second.epochs] == [3, 4]
    assert [m["trees"] for _, m in second.epochs] == [24, 32]  # 16 trees came from the checkpoint
    assert [h["epoch"] for h in out.history] == [1, 2, 3, 4]
    # Same trees as the uninterrupted run: the checkpoint holds the whole booster.
    assert second.epochs[-1][1]["val_loss"] == pytest.approx(straight.epochs[-1][1]["val_loss"], rel=1e-9)


def _opencl_device_usable() -> bool:
    x = np.random.default_rng(0).standard_normal((64, 2))
    params = {"device_type": "gpu", "verbosity": -1}
    try:
        lgb.train(params, lgb.Dataset(x, x[:, 0], params=params), 1)
    except lgb.basic.LightGBMError:
        return False
    return True


def test_device_type_gpu_without_a_device_falls_back_to_cpu_with_one_warning(
    recorder: RecordingReporter, caplog: pytest.LogCaptureFixture
) -> None:
    if _opencl_device_usable():
        pytest.skip("LightGBM finds an OpenCL device here: nothing to fall back from")
    params = {"device_type": "gpu", "gpu_use_dp": False, "n_estimators": 20}
    with caplog.at_level(logging.WARNING, logger="campaign_trainer"):
        out = train_fn(gbm_trial("gbm-gpu", epochs=2, parameters=params), recorder)
    assert out.state == "Succeeded", out.message
    warned = [r.getMessage() for r in caplog.records if "LightGBM trains on the CPU" in r.getMessage()]
    assert len(warned) == 1 and "device_type gpu is not usable here" in warned[0]


def test_unknown_lightgbm_names_fail_the_trial_naming_them(recorder: RecordingReporter) -> None:
    out = train_fn(gbm_trial("gbm-typo", parameters={"num_leave": 31}), recorder)
    assert (out.state, out.reason) == ("Failed", "TaskError")
    assert "'num_leave' (did you mean 'num_leaves'?)" in out.message and recorder.epochs == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_dataset(fmt: str, tmp_path: Path, recorder: RecordingReporter) -> None:
    arrays = synthetic.regression(600, 3, {"days": 20})
    df = pd.DataFrame(arrays["x"], columns=[f"f{i}" for i in range(arrays["x"].shape[1])])
    df["ret"], df["date"], df["ticker"] = arrays["y"], arrays["day"], "AAPL"
    path = tmp_path / f"data.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    dataset = {"path": str(path), "target": "ret"}
    params = {**TREES, "n_estimators": 20, "group_column": "date"}
    out = train_fn(trial("gbm-file", "gbm", epochs=2, dataset=dataset, parameters=params), recorder)
    assert out.state == "Succeeded", out.message
    assert np.isfinite(out.metrics["r2"])
    module, _ = build(TaskConfig(params, dataset, epochs=2))
    assert isinstance(module, GbmModule) and module.train_x.shape[1] == 8  # the date column is no feature


def test_outputs_are_the_model_file_and_predictions(tmp_path: Path, recorder: RecordingReporter) -> None:
    out = train_fn(
        gbm_trial("gbm-out", epochs=2, parameters={"n_estimators": 6}),
        recorder,
        checkpoint_root=str(tmp_path),
    )
    assert out.state == "Succeeded" and out.outputs is not None, out.message
    booster = lgb.Booster(model_file=str(Path(out.outputs) / MODEL_FILE))
    assert booster.current_iteration() == 6
    rows = synthetic.regression(1200, 0)
    frame = pd.read_parquet(Path(out.outputs) / "predictions.parquet")
    assert list(frame["row"]) == list(range(1200))
    assert frame["prediction"].to_numpy() == pytest.approx(booster.predict(rows["x"]), rel=1e-5)
    assert frame["target"].to_numpy() == pytest.approx(rows["y"])


def test_data_parallel_workers_are_refused_with_the_fix() -> None:
    # The strategy Ray Train's workers use (RayDDPStrategy is a DDPStrategy), here on one CPU process.
    module, datamodule = build(TaskConfig({**TREES, "n_estimators": 4}, DATA, epochs=1))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, strategy=DDPStrategy(), logger=False)
    with pytest.raises(ValueError, match=r"set resources\.workers to 0"):
        trainer.fit(module, datamodule=datamodule)
