"""dataset.rows (a walk-forward window of a per-symbol file) and relative paths, on real files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from campaign_trainer.data.loaders import DATA_ROOT_ENV, DataError, feature_columns, load_dataset_table

pytestmark = pytest.mark.integration


@pytest.fixture
def daily(tmp_path: Path) -> Path:
    dates = pd.bdate_range("2022-01-03", "2022-03-31")
    frame = pd.DataFrame(
        {"date": dates.strftime("%Y-%m-%d"), "day": range(len(dates)), "x": 1.0, "y": 2.0, "ts": dates}
    )
    path = tmp_path / "TCS.parquet"
    frame.to_parquet(path)
    return path


def test_rows_keep_the_window_in_the_columns_type(daily: Path) -> None:
    text = load_dataset_table(
        {"path": str(daily), "rows": {"column": "date", "start": "2022-02-01", "end": "2022-02-28"}}
    )
    assert (text["date"].min(), text["date"].max(), len(text)) == ("2022-02-01", "2022-02-28", 20)
    number = load_dataset_table({"path": str(daily), "rows": {"column": "day", "start": "10"}})
    assert (
        number["day"].min() == 10
        and number["day"].max() == len(pd.bdate_range("2022-01-03", "2022-03-31")) - 1
    )
    stamp = load_dataset_table({"path": str(daily), "rows": {"column": "ts", "end": "2022-01-07"}})
    assert len(stamp) == 5
    # The range column is no feature (a day counter would otherwise leak into the model).
    assert feature_columns(number, ["y"], None) == ["x"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"column": "when", "start": "2022-01-01"}, "has no column 'when' (dataset.rows.column"),
        (
            {"column": "day", "start": "soon"},
            "dataset.rows.start: 'soon' is not a int64 value of column 'day'",
        ),
        (
            {"column": "date", "start": "2023-01-01"},
            "has no rows with date in [2023-01-01, ...] (dataset.rows)",
        ),
    ],
)
def test_rows_errors_name_the_field_and_the_file(daily: Path, rows: dict[str, str], message: str) -> None:
    with pytest.raises(DataError) as e:
        load_dataset_table({"path": str(daily), "rows": rows})
    assert message in str(e.value)


def test_relative_paths_are_read_from_the_data_root(daily: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(daily.parent))
    assert len(load_dataset_table({"path": daily.name})) > 0
    monkeypatch.setenv(DATA_ROOT_ENV, str(daily.parent / "elsewhere"))
    with pytest.raises(
        DataError, match=r"TCS.parquet does not exist \(looked for .*/elsewhere/TCS.parquet\)"
    ):
        load_dataset_table({"path": daily.name})
