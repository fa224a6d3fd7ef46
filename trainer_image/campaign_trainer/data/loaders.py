"""CSV / Parquet tables from a local path or ``s3://`` into numpy arrays.

Every problem with the file itself or its columns is a ``DataError`` whose message names the file and
what was wrong (the harness adds the trial's identifying parameters and fails the trial with reason
DataError): a user with one file per symbol must see which file broke, never a bare decode error.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from campaign_trainer.s3 import s3_client, split_s3_uri

PARQUET_MAGIC = b"PAR1"
COLUMNS_SHOWN = 20
"""Columns a missing-column message lists (a wide table's names are bounded)."""
SNIFF_BYTES = 4096


class DataError(ValueError):
    """The trial's data file is missing, empty, not CSV/Parquet, unparseable or lacks a column."""


def _source(df: pd.DataFrame) -> str:
    return str(df.attrs.get("source", "the table"))


def infer_format(path: str, explicit: str | None = None) -> str:
    if explicit:
        fmt = explicit.lower()
    else:
        suffixes = [s.lower() for s in Path(path.split("?", 1)[0]).suffixes]
        fmt = next((s.lstrip(".") for s in reversed(suffixes) if s in (".csv", ".parquet", ".pq")), "")
    if fmt == "pq":
        fmt = "parquet"
    if fmt not in ("csv", "parquet"):
        raise DataError(f"cannot tell the format of {path!r}: set dataset.format to csv or parquet")
    return fmt


def read_bytes(path: str, endpoint_url: str | None = None) -> bytes:
    """The file's bytes; a missing file (local or S3) is a DataError naming it."""
    if path.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(path)
        try:
            return s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise DataError(f"data file {path} does not exist ({code})") from None
            raise
    local = Path(path.removeprefix("file://"))
    if not local.exists():
        raise DataError(f"data file {path} does not exist (looked in {Path.cwd()})")
    if not local.is_file():
        raise DataError(f"data file {path} is not a file")
    return local.read_bytes()


def _parse(data: bytes, kind: str, path: str) -> pd.DataFrame:
    head = data[:SNIFF_BYTES]
    if not data.strip():
        raise DataError(f"data file {path} is empty (0 rows)")
    if kind == "csv" and head.startswith(PARQUET_MAGIC):
        raise DataError(f"data file {path} is a Parquet file, not CSV: set dataset.format to parquet")
    if kind == "parquet" and not head.startswith(PARQUET_MAGIC):
        looks = "a text file (CSV?)" if _is_text(head) else "binary content of another kind"
        raise DataError(f"data file {path} is not a Parquet file (it holds {looks}); expected CSV or Parquet")
    if kind == "csv" and not _is_text(head):
        raise DataError(f"data file {path} is not a CSV file (binary content); expected CSV or Parquet")
    try:
        return pd.read_csv(io.BytesIO(data)) if kind == "csv" else pd.read_parquet(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        # pyarrow's ArrowInvalid is a ValueError; a truncated Parquet file raises OSError
        detail = " ".join(str(exc).split())[:200]
        raise DataError(f"data file {path} cannot be parsed as {kind.upper()}: {detail}") from None


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut by the sniff window
    return True


def load_table(path: str, fmt: str | None = None, endpoint_url: str | None = None) -> pd.DataFrame:
    """The table, with ``attrs["source"]`` naming the file for the column checks below."""
    kind = infer_format(path, fmt)
    df = _parse(read_bytes(path, endpoint_url), kind, path)
    if df.empty:
        raise DataError(f"data file {path} has no rows (columns: {_shown(list(df.columns))})")
    df.attrs["source"] = path
    return df


def load_dataset_table(dataset: Mapping[str, Any]) -> pd.DataFrame:
    return load_table(str(dataset["path"]), dataset.get("format"))


def _shown(columns: Sequence[Any]) -> str:
    names = ", ".join(str(c) for c in columns[:COLUMNS_SHOWN])
    more = len(columns) - COLUMNS_SHOWN
    return names + (f" and {more} more" if more > 0 else "") if columns else "none"


def feature_columns(df: pd.DataFrame, exclude: Sequence[str], features: Sequence[str] | None) -> list[str]:
    if features:
        missing = [c for c in features if c not in df.columns]
        if missing:
            names = ", ".join(map(repr, missing[:COLUMNS_SHOWN]))
            raise DataError(
                f"data file {_source(df)} has no feature column {names}"
                f" (dataset.features; its columns: {_shown(list(df.columns))})"
            )
        return list(features)
    cols = [c for c in df.columns if c not in exclude and pd.api.types.is_numeric_dtype(df[c])]
    if not cols:
        raise DataError(
            f"data file {_source(df)} has no numeric feature column besides {', '.join(exclude)}"
            f" (its columns: {_shown(list(df.columns))})"
        )
    return cols


def column(df: pd.DataFrame, name: str) -> NDArray[Any]:
    if name not in df.columns:
        raise DataError(
            f"data file {_source(df)} has no column {name!r} (dataset.target or the task's column;"
            f" its columns: {_shown(list(df.columns))})"
        )
    return df[name].to_numpy()


def float_matrix(df: pd.DataFrame, cols: Sequence[str]) -> NDArray[np.float32]:
    try:
        return df[list(cols)].to_numpy(dtype=np.float32)
    except (TypeError, ValueError):
        bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
        raise DataError(
            f"data file {_source(df)}: feature columns must be numeric; not numeric: {_shown(bad)}"
        ) from None
