from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from campaign_operator.api.common import TrialState
from campaign_operator.report import results

from .helpers import finished

pytestmark = pytest.mark.unit


def test_flatten_nested_parameters() -> None:
    assert results.flatten("param", {"lr": 0.1, "arch": {"dims": [64, 32], "act": "relu"}}) == {
        "param.arch.act": "relu",
        "param.arch.dims": "[64,32]",
        "param.lr": 0.1,
    }


def _trials() -> list:
    return [
        finished("a", "p1", TrialState.SUCCEEDED, 12.5, params={"lr": 0.1}, history=[(1, {"val_loss": 0.5})]),
        finished(
            "b", "p1", TrialState.FAILED, 3.0, params={"lr": 100.0, "opt": "sgd"}, reason="NonFiniteLoss"
        ),
        finished("c", "p2", TrialState.SKIPPED, 0.0, params={"lr": "auto"}),
    ]


def test_one_row_per_trial_with_params_final_best_and_duration() -> None:
    rows = results.rows(_trials())
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    a = rows[0]
    assert (a["phase"], a["state"], a["duration_s"], a["param.lr"]) == ("p1", "Succeeded", 12.5, 0.1)
    assert a["final.val_loss"] == 0.5 and a["best.val_loss"] == 0.5 and a["best_epoch"] == 1
    assert rows[1]["reason"] == "NonFiniteLoss"
    assert results.columns(rows)[:4] == ["phase", "name", "state", "reason"]
    assert [c for c in results.columns(rows) if c.startswith("param.")] == ["param.lr", "param.opt"]
    assert [r["name"] for r in results.rows(_trials(), phase="p2")] == ["c"]


def test_csv_and_json_share_columns() -> None:
    rows = results.rows(_trials())
    parsed = list(csv.DictReader(io.StringIO(results.to_csv(rows))))
    assert list(parsed[0]) == results.columns(rows)
    assert parsed[1]["final.val_loss"] == ""  # missing is empty, not "None"
    assert list(json.loads(results.to_json(rows))[2]) == results.columns(rows)


def test_parquet_with_a_mixed_type_parameter(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = results.rows(_trials())
    results.to_parquet(rows, tmp_path / "r.parquet")
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 3
    assert table.column("param.lr").to_pylist() == ["0.1", "100.0", "auto"]  # numbers and a string
    assert table.column("duration_s").to_pylist() == [12.5, 3.0, 0.0]
