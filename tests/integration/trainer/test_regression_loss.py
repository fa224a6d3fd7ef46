"""The regression task trains on seed 000's weighted multi-term loss, batched by whole days."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from campaign_trainer.data import synthetic
from campaign_trainer.harness import train_fn
from campaign_trainer.tasks import TaskConfig
from campaign_trainer.tasks.regression import build

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

SEED_000_LOSS = {"huber": 1.0, "sharpe": 0.1, "ic": 0.05, "rank_ic": 0.05}
PANEL = {"synthetic": {"samples": 1200, "seed": 0, "options": {"days": 40}}}


def loss_trial(name: str, **params: Any) -> dict[str, Any]:
    parameters = {"seed": 1, "hidden_dims": [16], "lr": 3e-3, "group_column": "day", **params}
    return trial(name, "regression", epochs=3, batchSize=128, dataset=PANEL, parameters=parameters)


def test_the_combined_loss_trains_and_the_model_learns_the_cross_section(recorder: RecordingReporter) -> None:
    out = train_fn(loss_trial("finance-loss", loss=SEED_000_LOSS), recorder)
    assert (out.state, out.reason, out.epoch) == ("Succeeded", "Completed", 3), out.message
    losses = [m["loss"] for _, m in recorder.epochs]
    assert losses[-1] < losses[0]
    last = recorder.epochs[-1][1]
    assert last["ic"] > 0.3 and last["rank_ic"] > 0.3 and last["sharpe"] > 0.2


def test_training_batches_are_whole_days() -> None:
    cfg = TaskConfig({"group_column": "day", "loss": {"ic": 1.0}}, PANEL, batch_size=128, epochs=1)
    _, datamodule = build(cfg)
    day = synthetic.regression(1200, 0, {"days": 40})["day"]
    batches = list(datamodule.train_dataloader())
    assert len(batches) == 8  # 32 training days (the tail is validation), 4 days of 30 rows per batch
    for _, _, batch_day in batches:
        for d in torch.unique(batch_day).tolist():
            assert int((batch_day == d).sum()) == int((day == d).sum())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"loss": {"sharpe": 1.0}, "group_column": None},
            r"\['sharpe'\] are computed per day; set group_column",
        ),
        (
            {"loss": {"ic": 1.0}, "group_column": "date"},
            "group_column: 'date' is not a column of the synthetic",
        ),
        ({"loss": {"sharpe": 1.0}, "days_per_batch": 1}, r"loss.sharpe: batches of 1 day \(batchSize 128\)"),
        ({"loss": {"sharp": 1.0}}, r"hyperparameter loss: unknown term\(s\) \['sharp'\]"),
    ],
)
def test_bad_loss_settings_fail_the_trial_naming_the_hyperparameter(
    params: dict[str, Any], message: str, recorder: RecordingReporter
) -> None:
    out = train_fn(loss_trial("bad-loss", **params), recorder)
    assert (out.state, out.reason) == ("Failed", "TaskError")
    assert re.search(message, out.message), out.message
    assert recorder.epochs == []


def test_a_date_column_of_a_file_groups_the_days(tmp_path: Path, recorder: RecordingReporter) -> None:
    arrays = synthetic.regression(600, 3, {"days": 20})
    df = pd.DataFrame(arrays["x"], columns=[f"f{i}" for i in range(arrays["x"].shape[1])])
    df["ret"] = arrays["y"]
    df["date"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(arrays["day"], unit="D")
    df.to_parquet(tmp_path / "panel.parquet")
    spec = {"path": str(tmp_path / "panel.parquet"), "target": "ret"}
    doc = loss_trial("file-days", loss={"mse": 1.0, "ic": 0.5}, group_column="date")
    doc["spec"]["dataset"] = spec
    out = train_fn(doc, recorder)
    assert out.state == "Succeeded", out.message
