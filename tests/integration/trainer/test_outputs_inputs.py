"""Phase artifacts in the real harness: every built-in task publishes its model and predictions next
to its checkpoints (a local directory, or S3 over moto's server), a later trial receives them as a
local directory, and a regression student trains on its teacher's predictions blended into its target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from campaign_trainer.artifacts import MANIFEST, publish
from campaign_trainer.harness import train_fn
from campaign_trainer.tasks.base import MODEL_FILE, PREDICTIONS_FILE, ArrayDataModule, TaskConfig
from campaign_trainer.tasks.regression import RegressionModule, build

from .conftest import RecordingReporter, trial
from .test_s3_resume import s3, s3_env  # noqa: F401  (the moto server fixture)

pytestmark = pytest.mark.integration

ROWS = 200
SYNTHETIC: dict[str, tuple[dict[str, Any], int, list[str]]] = {
    "regression": ({"hidden_dims": [16]}, 256, ["row", "prediction", "target"]),
    "cql": ({"hidden_dims": [16]}, 256, ["row", "prediction", "q_no_bet", "q_bet", "target", "action"]),
    "sequence": (
        {"d_model": 8, "layers": 1, "heads": 2, "seq_len": 8},
        256,
        [
            "row",
            "prediction",
            "target",
            "prob_sell",
            "prob_hold",
            "prob_buy",
            "price_prediction",
            "price_target",
        ],
    ),
}


def table(path: Path, rows: int = ROWS, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    y = x @ np.array([1.0, -0.5, 0.25], dtype=np.float32) + 0.1 * rng.normal(size=rows).astype(np.float32)
    pd.DataFrame(x, columns=["f1", "f2", "f3"]).assign(ret=y).to_parquet(path)
    return path


def regression(name: str, data: Path, **spec: Any) -> dict[str, Any]:
    parameters = {"seed": 1, "lr": 3e-3, "hidden_dims": [16], **spec.pop("parameters", {})}
    spec = {"epochs": 2, "batchSize": 64, **spec}
    return trial(
        name, "regression", parameters=parameters, dataset={"path": str(data), "target": "ret"}, **spec
    )


@pytest.mark.parametrize("task", list(SYNTHETIC))
def test_every_builtin_task_publishes_its_model_and_predictions(
    task: str, tmp_path: Path, recorder: RecordingReporter
) -> None:
    params, samples, columns = SYNTHETIC[task]
    doc = trial(
        f"{task}-t",
        task,
        epochs=1,
        batchSize=64,
        parameters={"seed": 1, **params},
        dataset={"synthetic": {"samples": samples, "seed": 0}},
    )
    out = train_fn(doc, recorder, checkpoint_root=str(tmp_path))
    assert (out.state, out.outputs) == ("Succeeded", str(tmp_path / f"{task}-t" / "outputs"))
    outputs = Path(str(out.outputs))
    assert {p.name for p in outputs.iterdir()} == {MODEL_FILE, PREDICTIONS_FILE, MANIFEST}
    predictions = pd.read_parquet(outputs / PREDICTIONS_FILE)
    assert list(predictions.columns) == columns
    assert predictions["row"].tolist() == list(range(samples))  # synthetic sequences: one row per window
    assert np.isfinite(predictions.select_dtypes("number").to_numpy(dtype=float)).all()
    assert out.to_status()["outputs"] == out.outputs
    assert torch.load(outputs / MODEL_FILE, weights_only=True)  # a plain state dict


def test_sequence_predictions_name_the_price_row_each_window_ends_on(
    tmp_path: Path, recorder: RecordingReporter
) -> None:
    prices = tmp_path / "AAPL.csv"
    rng = np.random.default_rng(3)
    pd.DataFrame({"close": 100 * np.exp(np.cumsum(0.01 * rng.normal(size=120)))}).to_csv(prices, index=False)
    params = {"seed": 1, "d_model": 8, "layers": 1, "heads": 2, "seq_len": 8}
    doc = trial(
        "seq",
        "sequence",
        epochs=1,
        batchSize=32,
        parameters=params,
        dataset={"path": str(prices), "target": "close"},
    )
    out = train_fn(doc, recorder, checkpoint_root=str(tmp_path))
    predictions = pd.read_parquet(Path(str(out.outputs)) / PREDICTIONS_FILE)
    # 119 returns -> 111 windows; the first ends on price row 8 and predicts the move to row 9
    assert predictions["row"].tolist() == list(range(8, 119))
    assert set(predictions["prediction"]) <= {0, 1, 2}


def test_the_published_model_reproduces_its_predictions(tmp_path: Path, recorder: RecordingReporter) -> None:
    data = table(tmp_path / "LICI.parquet")
    out = train_fn(
        regression("teacher", data, parameters={"dropout": 0.3}), recorder, checkpoint_root=str(tmp_path)
    )
    assert out.outputs is not None
    predictions = pd.read_parquet(Path(out.outputs) / PREDICTIONS_FILE)
    source = pd.read_parquet(data)
    assert predictions["row"].tolist() == list(range(ROWS))
    np.testing.assert_allclose(predictions["target"], source["ret"], rtol=1e-6)
    module = RegressionModule(3, TaskConfig({"hidden_dims": [16], "dropout": 0.3}))
    module.load_state_dict(torch.load(Path(out.outputs) / MODEL_FILE, weights_only=True))
    module.eval()  # what was published was predicted without dropout
    with torch.no_grad():
        again = module(torch.from_numpy(source[["f1", "f2", "f3"]].to_numpy(np.float32))).numpy()
    np.testing.assert_allclose(predictions["prediction"], again, rtol=1e-5, atol=1e-6)


def test_a_stopped_trial_publishes_and_a_failed_one_does_not(
    tmp_path: Path, recorder: RecordingReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = table(tmp_path / "d.parquet")
    rule = [
        {"metric": "val_loss", "comparison": "<", "threshold": 1e9, "action": "Stop", "reason": "GoodEnough"}
    ]
    stopped = train_fn(regression("stopped", data, stopRules=rule), recorder, checkpoint_root=str(tmp_path))
    assert (stopped.state, stopped.reason) == ("Stopped", "GoodEnough")
    assert stopped.outputs is not None and (Path(stopped.outputs) / MANIFEST).is_file()
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    failed = train_fn(
        trial("nan", "user_tasks:diverging", epochs=5, batchSize=64), recorder, checkpoint_root=str(tmp_path)
    )
    assert (failed.state, failed.outputs) == ("Failed", None)
    assert not (tmp_path / "nan" / "outputs").exists()


def test_a_restart_after_the_end_reports_the_outputs_again(
    tmp_path: Path, recorder: RecordingReporter
) -> None:
    data = table(tmp_path / "d.parquet")
    first = train_fn(regression("again", data), recorder, checkpoint_root=str(tmp_path))
    epochs_seen = len(recorder.epochs)
    second = train_fn(regression("again", data), recorder, checkpoint_root=str(tmp_path))
    assert len(recorder.epochs) == epochs_seen  # nothing trained again
    assert second.outputs == first.outputs is not None


def test_the_student_trains_on_its_blended_target_and_is_scored_on_the_true_one(
    tmp_path: Path, recorder: RecordingReporter
) -> None:
    data = table(tmp_path / "LICI.parquet")
    teacher = train_fn(regression("teacher", data), recorder, checkpoint_root=str(tmp_path))
    assert teacher.outputs is not None
    taught = pd.read_parquet(Path(teacher.outputs) / PREDICTIONS_FILE)["prediction"].to_numpy()
    y = pd.read_parquet(data)["ret"].to_numpy(np.float32)

    cfg = TaskConfig(
        {"teacher_input": "teacher", "teacher_weight": 0.7},
        {"path": str(data), "target": "ret"},
        inputs={"teacher": Path(teacher.outputs)},
    )
    _, datamodule = build(cfg)
    assert isinstance(datamodule, ArrayDataModule)
    cut = len(datamodule.train_set)
    np.testing.assert_allclose(
        datamodule.train_set.tensors[1].numpy(),
        (0.3 * y[:cut] + 0.7 * taught[:cut]).astype(np.float32),
        rtol=1e-5,
    )
    np.testing.assert_allclose(datamodule.val_set.tensors[1].numpy(), y[cut:])  # validated on y itself

    doc = regression(
        "student",
        data,
        parameters={"teacher_input": "teacher", "teacher_weight": 0.7},
        inputs={"teacher": teacher.outputs},
        epochs=3,
    )
    student = train_fn(doc, recorder, checkpoint_root=str(tmp_path))
    assert (student.state, student.reason) == ("Succeeded", "Completed"), student.message
    assert student.epoch == 3 and "val_loss" in student.metrics
    published = pd.read_parquet(Path(str(student.outputs)) / PREDICTIONS_FILE)
    np.testing.assert_allclose(published["target"], y)  # its outputs name the true target


def test_student_errors_name_the_input(tmp_path: Path, recorder: RecordingReporter) -> None:
    teacher = train_fn(
        regression("teacher", table(tmp_path / "a.parquet")), recorder, checkpoint_root=str(tmp_path)
    )
    fewer = table(tmp_path / "b.parquet", rows=150)
    blend = {"teacher_input": "teacher"}
    mismatch = train_fn(
        regression("s1", fewer, parameters=blend, inputs={"teacher": teacher.outputs}), recorder
    )
    assert mismatch.state == "Failed"
    assert "input 'teacher' predicts 200 rows but this trial's dataset has 150" in mismatch.message
    undeclared = train_fn(regression("s2", fewer, parameters=blend), recorder)
    assert "teacher_input: 'teacher' is not one of this trial's inputs (none)" in undeclared.message


def test_a_missing_or_incomplete_input_fails_with_its_name_and_uri(
    tmp_path: Path, recorder: RecordingReporter
) -> None:
    data = table(tmp_path / "d.parquet")
    gone = tmp_path / "ckpt" / "teacher-0003" / "outputs"
    out = train_fn(regression("s", data, inputs={"teacher": str(gone)}), recorder)
    assert (out.state, out.reason) == ("Failed", "InputMissing")
    assert f"input 'teacher': {gone} does not exist" in out.message
    gone.mkdir(parents=True)
    (gone / PREDICTIONS_FILE).write_bytes(b"half")
    out = train_fn(regression("s", data, inputs={"teacher": str(gone)}), recorder)
    assert out.reason == "InputMissing" and "never finished publishing" in out.message


BUCKET = "campaign-artifacts"


def test_outputs_go_to_s3_and_a_student_reads_them_from_there(
    s3_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    recorder: RecordingReporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    client = s3(s3_env)
    client.create_bucket(Bucket=BUCKET)
    data = table(tmp_path / "LICI.parquet")
    ckpt = f"s3://{BUCKET}/campaigns/nifty/teacher-0001"
    teacher = train_fn(regression("teacher", data, checkpoint={"uri": ckpt}), recorder)
    assert teacher.outputs == f"{ckpt}/outputs"
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"])
    prefix = "campaigns/nifty/teacher-0001/"
    assert [k for k in keys if "/outputs/" in k] == [
        f"{prefix}outputs/{name}" for name in sorted([MANIFEST, MODEL_FILE, PREDICTIONS_FILE])
    ]
    assert any(k.startswith(f"{prefix}epoch-") for k in keys)  # the checkpoints beside them

    blend = {"teacher_input": "teacher", "teacher_weight": 0.5}
    student = train_fn(
        regression("student", data, parameters=blend, inputs={"teacher": teacher.outputs}), recorder
    )
    assert (student.state, student.reason) == ("Succeeded", "Completed"), student.message

    missing = f"s3://{BUCKET}/campaigns/nifty/teacher-0002/outputs"
    out = train_fn(regression("student2", data, parameters=blend, inputs={"teacher": missing}), recorder)
    assert (out.reason, out.message) == (
        "InputMissing",
        f"trial student2: input 'teacher': {missing} does not exist (no objects under it)",
    )


def test_publishing_again_replaces_the_outputs_on_s3(
    s3_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    client = s3(s3_env)
    client.create_bucket(Bucket="republish")
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "old.bin").write_bytes(b"1")
    (second / "new.bin").write_bytes(b"2")
    uri = "s3://republish/t/outputs"
    publish(first, uri, {"attempt": 1})
    publish(second, uri, {"attempt": 2})
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="republish")["Contents"])
    assert keys == ["t/outputs/new.bin", f"t/outputs/{MANIFEST}"]
    manifest = client.get_object(Bucket="republish", Key=f"t/outputs/{MANIFEST}")["Body"].read()
    assert b'"attempt": 2' in manifest and b'"files": ["new.bin"]' in manifest
