"""A broken data file fails its trial with reason DataError and one message that names the file, the
trial's identifying parameters and what was wrong: real files, the real harness, and the verdict as
both shells record it (the embedded runner's progress fold, the Kubernetes reporter's patch)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from campaign_operator.api.common import Mode, Objective, TrialState
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.embedded import progress
from campaign_operator.lifecycle import launched
from campaign_operator.lifecycle.wire import parse_lines
from campaign_trainer.harness import run_trial, train_fn
from campaign_trainer.reporters import JsonlReporter, verdict_patch

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

POINT = {
    "symbol": {"name": "LICI", "listed": "2022-05-17"},
    "window": {"start": "2022-01-01", "end": "2022-06-30"},
}
LABEL = "symbol=LICI window=2022-01-01..2022-06-30"


def good_frame(rows: int = 64) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"f1": rng.normal(size=rows), "f2": rng.normal(size=rows), "ret": rng.normal(size=rows)}
    )


def student(path: Path, **dataset: Any) -> dict[str, Any]:
    return trial(
        "nifty-student-0007",
        "regression",
        sweepPoint=POINT,
        parameters={"seed": 1},
        epochs=1,
        batchSize=32,
        dataset={"path": str(path), "target": "ret", **dataset},
    )


def write(name: str, content: bytes | Callable[[Path], object]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
        return path

    return make


CASES: dict[str, tuple[Callable[[Path], Path], dict[str, Any], list[str]]] = {
    "missing": (lambda tmp: tmp / "LICI.parquet", {}, ["does not exist"]),
    "empty": (write("LICI.csv", b""), {}, ["is empty"]),
    "header only": (write("LICI.csv", b"f1,f2,ret\n"), {}, ["has no rows", "f1, f2, ret"]),
    "binary garbage": (
        write("LICI.csv", bytes(range(256)) * 8),
        {},
        ["is not a CSV file (binary content)", "expected CSV or Parquet"],
    ),
    "parquet named csv": (
        write("LICI.csv", lambda p: good_frame().to_parquet(p)),
        {},
        ["is a Parquet file, not CSV", "dataset.format"],
    ),
    "text named parquet": (
        write("LICI.parquet", b"f1,f2,ret\n1,2,3\n"),
        {},
        ["is not a Parquet file", "CSV?"],
    ),
    "truncated parquet": (
        write("LICI.parquet", lambda p: p.write_bytes(good_frame().to_parquet()[:300])),
        {},
        ["cannot be parsed as PARQUET"],
    ),
    "csv parse error": (
        write("LICI.csv", b"f1,f2,ret\n1,2,3\n4,5,6,7,8\n"),
        {},
        ["cannot be parsed as CSV", "Expected 3 fields"],
    ),
    "missing target": (
        write("LICI.csv", lambda p: good_frame().rename(columns={"ret": "close"}).to_csv(p, index=False)),
        {},
        ["has no column 'ret'", "its columns: f1, f2, close"],
    ),
    "missing feature": (
        write("LICI.csv", lambda p: good_frame().to_csv(p, index=False)),
        {"features": ["f1", "volume"]},
        ["has no feature column 'volume'", "its columns: f1, f2, ret"],
    ),
    "non-numeric feature": (
        write("LICI.csv", lambda p: good_frame().assign(f2="abc").to_csv(p, index=False)),
        {"features": ["f1", "f2"]},
        ["feature columns must be numeric", "not numeric: f2"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_data_file_problem_is_one_clear_data_error(
    case: str, tmp_path: Path, recorder: RecordingReporter
) -> None:
    make, dataset, expected = CASES[case]
    path = make(tmp_path)
    out = train_fn(student(path, **dataset), recorder)
    assert (out.state, out.reason) == ("Failed", "DataError"), out.message
    assert out.message.startswith(f"{LABEL}: data file {path}")
    for text in expected:
        assert text in out.message
    assert "UnicodeDecodeError" not in out.message and len(out.message) <= 1024


def test_a_wide_tables_missing_column_lists_a_bounded_set(
    tmp_path: Path, recorder: RecordingReporter
) -> None:
    path = tmp_path / "wide.csv"
    pd.DataFrame({f"c{i:03d}": [1.0, 2.0] for i in range(300)}).to_csv(path, index=False)
    out = train_fn(student(path), recorder)
    assert out.reason == "DataError" and "c019 and 280 more" in out.message and "c020" not in out.message


def test_a_trial_without_a_sweep_point_is_named_by_its_name(
    tmp_path: Path, recorder: RecordingReporter
) -> None:
    doc = student(tmp_path / "none.csv")
    doc["spec"].pop("sweepPoint")
    out = train_fn(doc, recorder)
    assert out.message.startswith("trial nifty-student-0007: data file ")


def test_both_shells_record_the_data_error(tmp_path: Path) -> None:
    """The embedded runner folds the trainer's JSON lines; the Kubernetes reporter patches the
    verdict: the same Failed/DataError and message in both."""
    doc = student(tmp_path / "absent.csv")
    lines_file = tmp_path / "attempt-1.jsonl"
    outcome = run_trial(doc, JsonlReporter(str(lines_file), "nifty-student-0007"))
    assert outcome.reason == "DataError"
    model = Trial.model_validate(doc)
    t0 = model.status.start_time or pd.Timestamp("2026-01-01T12:00:00Z").to_pydatetime()
    ref = ExecutorRef(kind="local", name="nifty-student-0007-a1", attempt=1)
    model = model.model_copy(update={"status": launched(model.status, 1, ref, t0)})
    lines, _ = parse_lines(lines_file.read_bytes())
    embedded = progress.apply_lines(model, 1, lines, t0 + timedelta(seconds=1)).status
    assert (embedded.state, embedded.reason) == (TrialState.FAILED, "DataError")
    assert (embedded.message or "").startswith(f"{LABEL}: data file {tmp_path / 'absent.csv'} does not exist")
    patch = verdict_patch(None, outcome, Objective(metric="val_loss", mode=Mode.MIN))["status"]
    assert (patch["state"], patch["reason"], patch["message"]) == ("Failed", "DataError", embedded.message)
