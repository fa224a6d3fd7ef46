"""Each task really trains on CPU (tiny data): loss falls, metrics appear, stop rules act."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from campaign_trainer.data import synthetic
from campaign_trainer.harness import run_trial, train_fn
from campaign_trainer.reporters import JsonlReporter

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

REGRESSION_KEYS = {
    "loss",
    "val_loss",
    "rmse",
    "r2",
    "variance_ratio",
    "pred_std",
    "pred_range",
    "ic",
    "rank_ic",
    "sharpe",
}
CQL_KEYS = {"loss", "val_loss", "q_mean", "q_std", "win_rate", "roi", "bet_rate"}
SEQUENCE_KEYS = {"loss", "val_loss", "action_loss", "price_loss", "accuracy", "param_count"}
EVERY_EPOCH = {"samples_per_sec", "lr", "epoch_time_s"}

TASKS = {
    "regression": (
        {
            "parameters": {"seed": 1, "lr": 3e-3, "hidden_dims": [32, 16]},
            "epochs": 4,
            "batchSize": 128,
            "dataset": {"synthetic": {"samples": 1024, "seed": 0}},
        },
        REGRESSION_KEYS,
    ),
    "cql": (
        {
            "parameters": {"seed": 1, "alpha": 0.3, "lr": 3e-3, "hidden_dims": [32, 16]},
            "epochs": 4,
            "batchSize": 128,
            "dataset": {"synthetic": {"samples": 2048, "seed": 0}},
        },
        CQL_KEYS,
    ),
    "sequence": (
        {
            "parameters": {"seed": 1, "d_model": 16, "layers": 1, "heads": 2, "seq_len": 16, "lr": 3e-3},
            "epochs": 4,
            "batchSize": 64,
            "dataset": {"synthetic": {"samples": 768, "seed": 0}},
        },
        SEQUENCE_KEYS,
    ),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_builtin_task_trains_and_loss_falls(task: str, recorder: RecordingReporter) -> None:
    spec, keys = TASKS[task]
    out = train_fn(trial(f"{task}-t", task, **spec), recorder)
    assert (out.state, out.reason) == ("Succeeded", "Completed"), out.message
    assert [e for e, _ in recorder.epochs] == [1, 2, 3, 4] and out.epoch == 4
    first, last = recorder.epochs[0][1], recorder.epochs[-1][1]
    assert last["loss"] < first["loss"]
    assert last["val_loss"] < first["val_loss"]
    for _, m in recorder.epochs:
        assert keys | EVERY_EPOCH <= set(m)
        assert m["samples_per_sec"] > 0
    assert (
        out.best is not None and out.best["epoch"] == min(recorder.epochs, key=lambda e: e[1]["val_loss"])[0]
    )
    assert recorder.outcomes == []  # train_fn returns the outcome; run_trial is the one that reports it


def test_sequence_lr_warms_up_then_decays(recorder: RecordingReporter) -> None:
    spec = dict(TASKS["sequence"][0])
    spec["parameters"] = {**spec["parameters"], "lr": 1e-2, "warmup_ratio": 0.3}
    train_fn(trial("seq-lr", "sequence", **spec), recorder)
    lrs = [m["lr"] for _, m in recorder.epochs]  # lr after each epoch's last step
    assert max(lrs) <= 1e-2 and lrs[-1] < lrs[1] and lrs[-1] == pytest.approx(0.0, abs=1e-6)
    assert recorder.epochs[0][1]["param_count"] > 1000


COLLAPSE_RULE = {
    "metric": "variance_ratio",
    "comparison": "<",
    "threshold": 0.1,
    "afterEpoch": 2,
    "patience": 1,
    "action": "Stop",
    "reason": "VarianceCollapse",
    "message": "predictions collapsed",
}
# Low signal-to-noise returns: the regime where MSE alone drifts to predicting the mean (seed 004).
WEAK_SIGNAL = {"synthetic": {"samples": 1024, "seed": 0, "options": {"signal": 0.3, "noise": 1.0}}}


def regression_trial(name: str, **params: Any) -> dict[str, Any]:
    return trial(
        name,
        "regression",
        epochs=6,
        batchSize=128,
        dataset=WEAK_SIGNAL,
        stopRules=[COLLAPSE_RULE],
        parameters={"seed": 7, "hidden_dims": [32, 16], **params},
    )


def test_collapsing_config_is_stopped_by_variance_rule(recorder: RecordingReporter) -> None:
    out = train_fn(
        regression_trial(
            "collapse", output_init_std=1e-4, dropout=0.7, variance_lambda=0.0, weight_decay=0.5, lr=1e-3
        ),
        recorder,
    )
    assert (out.state, out.reason) == ("Stopped", "VarianceCollapse")
    assert out.message.startswith("predictions collapsed")
    assert out.epoch == 3  # first epoch after afterEpoch=2
    assert len(recorder.epochs) == 3 and out.metrics["variance_ratio"] < 0.1


def test_healthy_config_is_not_stopped(recorder: RecordingReporter) -> None:
    out = train_fn(regression_trial("healthy", output_init_std=0.5, variance_lambda=0.5, lr=3e-3), recorder)
    assert (out.state, out.reason) == ("Succeeded", "Completed")
    assert out.epoch == 6
    assert min(m["variance_ratio"] for e, m in recorder.epochs if e > 2) > 0.2


def test_deterministic_by_seed() -> None:
    runs = []
    for _ in range(2):
        rec = RecordingReporter()
        train_fn(trial("det", "cql", **{**TASKS["cql"][0], "epochs": 2}), rec)
        runs.append([{k: v for k, v in m.items() if k not in EVERY_EPOCH} for _, m in rec.epochs])
    assert runs[0] == runs[1]


def test_early_stopping_succeeds_with_reason(recorder: RecordingReporter) -> None:
    spec = {
        **TASKS["regression"][0],
        "epochs": 8,
        "earlyStopping": {"metric": "r2", "mode": "max", "patience": 2},
    }
    spec["parameters"] = {**spec["parameters"], "lr": 0.0}  # nothing can improve
    out = train_fn(trial("early", "regression", **spec), recorder)
    assert (out.state, out.reason, out.epoch) == ("Succeeded", "EarlyStopped", 3)


def test_user_task_gets_the_same_harness(
    recorder: RecordingReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    rules = [
        {"metric": "my_val", "comparison": "<", "threshold": 0.05, "action": "Stop", "reason": "GoodEnough"}
    ]
    out = train_fn(
        trial(
            "user",
            "user_tasks:build",
            epochs=30,
            batchSize=32,
            stopRules=rules,
            objective={"metric": "my_val", "mode": "min"},
        ),
        recorder,
    )
    assert (out.state, out.reason) == ("Stopped", "GoodEnough")
    assert out.epoch < 30 and out.metrics["my_val"] < 0.05 and "lr" in out.metrics
    assert out.best is not None and out.best["epoch"] == out.epoch


def test_non_finite_loss_fails_the_trial(
    recorder: RecordingReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = train_fn(trial("nan", "user_tasks:diverging", epochs=5, batchSize=64), recorder)
    assert (out.state, out.reason, out.epoch) == ("Failed", "NonFiniteLoss", 2)
    assert "loss is nan" in out.message


@pytest.mark.parametrize(
    "task,match",
    [
        ("user_tasks:crash", "RuntimeError: dataset shard 7 is missing"),
        ("user_tasks:not_a_pair", "TypeError"),
        ("no_such_module_xyz:build", "ModuleNotFoundError"),
    ],
)
def test_task_errors_become_a_reported_failed_outcome(
    task: str, match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    path = tmp_path / "progress.jsonl"
    out = run_trial(trial("boom", task, epochs=2), JsonlReporter(str(path), "boom"))
    assert (out.state, out.reason) == ("Failed", "TaskError")
    assert out.message.startswith(match) and len(out.message) < 500  # a preview, not the whole error
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["outcome"]
    assert lines[0]["status"]["state"] == "Failed" and lines[0]["status"]["message"] == out.message


def test_invalid_trial_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    out = run_trial(trial("bad", "teleport", epochs=2), JsonlReporter(str(path), "bad"))
    assert (out.trial, out.state, out.reason) == ("bad", "Failed", "InvalidTrial")
    assert out.message.startswith("ValidationError") and "task" in out.message
    assert json.loads(path.read_text())["status"]["reason"] == "InvalidTrial"


def test_run_trial_local_mode_reports_epochs_then_one_outcome(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    spec = {**TASKS["regression"][0], "epochs": 2, "checkpoint": {"uri": str(tmp_path / "ck"), "keep": 1}}
    out = run_trial(trial("local", "regression", **spec), JsonlReporter(str(path), "local"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["type"], line.get("epoch")) for line in lines] == [
        ("epoch", 1),
        ("epoch", 2),
        ("outcome", None),
    ]
    assert lines[-1]["status"]["state"] == "Succeeded" and lines[-1]["status"]["epoch"] == 2
    assert out.checkpoint == str(tmp_path / "ck" / "epoch-000002.ckpt")
    # the trial's outputs (its model and predictions) beside its checkpoints
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["epoch-000002.ckpt", "outputs"]
    assert lines[-1]["status"]["outputs"] == str(tmp_path / "ck" / "outputs")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_dataset(fmt: str, tmp_path: Path, recorder: RecordingReporter) -> None:
    arrays = synthetic.regression(600, 3)
    df = pd.DataFrame(arrays["x"], columns=[f"f{i}" for i in range(arrays["x"].shape[1])])
    df["ret"] = arrays["y"]
    df["ticker"] = "AAPL"  # non-numeric columns are not features
    path = tmp_path / f"data.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    out = train_fn(
        trial(
            "file",
            "regression",
            epochs=2,
            batchSize=64,
            dataset={"path": str(path), "target": "ret", "features": ["f0", "f1", "f2"]},
            parameters={"hidden_dims": [8]},
        ),
        recorder,
    )
    assert out.state == "Succeeded", out.message
    assert np.isfinite(out.metrics["r2"])


def test_restart_after_a_stop_reports_the_same_outcome_without_training(tmp_path: Path) -> None:
    doc = regression_trial("stop-once", output_init_std=1e-4, dropout=0.7, weight_decay=0.5, lr=1e-3)
    doc["spec"]["checkpoint"] = {"uri": str(tmp_path / "ck"), "everyEpochs": 5}
    first, again = RecordingReporter(), RecordingReporter()
    out1 = run_trial(doc, first)
    out2 = run_trial(doc, again)
    assert (out1.state, out1.reason, out1.epoch) == ("Stopped", "VarianceCollapse", 3)
    saved = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert saved == ["epoch-000003.ckpt", "outputs"]  # saved at the stop; a stopped model is usable
    assert again.epochs == []  # no epoch trained past the stop decision
    assert (out2.state, out2.reason, out2.epoch, out2.resumed_from_epoch) == (
        "Stopped",
        "VarianceCollapse",
        3,
        3,
    )
    assert out2.history == out1.history and again.outcomes[0].message == out1.message
    assert out2.outputs == out1.outputs == str(tmp_path / "ck" / "outputs")
