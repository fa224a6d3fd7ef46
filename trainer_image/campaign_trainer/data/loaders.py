"""CSV / Parquet tables from a local path or ``s3://`` into numpy arrays.

Every problem with the file itself or its columns is a ``DataError`` whose message names the file and
what was wrong (the harness adds the trial's identifying parameters and fails the trial with reason
DataError): a user with one file per symbol must see which file broke, never a bare decode error.
"""

from __future__ import annotations

import io
import os
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
DATA_ROOT_ENV = "CAMPAIGN_DATA_ROOT"


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


def local_path(path: str) -> Path:
    """A local dataset path; a relative one is read from $CAMPAIGN_DATA_ROOT (the trainer image sets
    it to where it ships the examples' data), else from the working directory. Embedded runs anchor
    relative paths at the manifest's directory before any trial starts."""
    local = Path(path.removeprefix("file://"))
    root = os.environ.get(DATA_ROOT_ENV)
    return Path(root) / local if root and not local.is_absolute() else local


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
    local = local_path(path)
    if not local.exists():
        raise DataError(f"data file {path} does not exist (looked for {local})")
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
    df = load_table(str(dataset["path"]), dataset.get("format"))
    rows = dataset.get("rows")
    return in_range(df, rows) if rows else df


def in_range(df: pd.DataFrame, rows: Mapping[str, Any]) -> pd.DataFrame:
    """The rows whose `rows.column` lies in [start, end], compared in the column's type (ISO dates
    as text compare in time order). The range column is not a feature."""
    name = str(rows["column"])
    if name not in df.columns:
        raise DataError(
            f"data file {_source(df)} has no column {name!r} (dataset.rows.column;"
            f" its columns: {_shown(list(df.columns))})"
        )
    values = df[name]
    keep = pd.Series(True, index=df.index)
    for bound, op in (("start", values.__ge__), ("end", values.__le__)):
        if rows.get(bound) is not None:
            keep &= op(_typed(rows[bound], values, bound))
    out = df[keep.to_numpy()].reset_index(drop=True)
    out.attrs = {**df.attrs, "not_features": [*df.attrs.get("not_features", []), name]}
    if out.empty:
        where = f"[{rows.get('start') or '...'}, {rows.get('end') or '...'}]"
        raise DataError(f"data file {_source(df)} has no rows with {name} in {where} (dataset.rows)")
    return out


def _typed(bound: Any, values: pd.Series, field: str) -> Any:
    try:
        if pd.api.types.is_datetime64_any_dtype(values):
            return pd.Timestamp(bound)
        if pd.api.types.is_numeric_dtype(values):
            return float(bound)
    except ValueError:
        raise DataError(
            f"dataset.rows.{field}: {bound!r} is not a {values.dtype} value of column {values.name!r}"
        ) from None
    return str(bound)


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
    skip = {*exclude, *df.attrs.get("not_features", [])}
    cols = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
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
