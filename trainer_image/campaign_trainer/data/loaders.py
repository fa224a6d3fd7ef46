"""CSV / Parquet tables from a local path or ``s3://`` into numpy arrays."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from campaign_trainer.s3 import s3_client, split_s3_uri


def infer_format(path: str, explicit: str | None = None) -> str:
    if explicit:
        fmt = explicit.lower()
    else:
        suffixes = [s.lower() for s in Path(path.split("?", 1)[0]).suffixes]
        fmt = next((s.lstrip(".") for s in reversed(suffixes) if s in (".csv", ".parquet", ".pq")), "")
    if fmt == "pq":
        fmt = "parquet"
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"cannot tell the format of {path!r}: set dataset.format to csv or parquet")
    return fmt


def load_table(path: str, fmt: str | None = None, endpoint_url: str | None = None) -> pd.DataFrame:
    kind = infer_format(path, fmt)
    if path.startswith("s3://"):
        bucket, key = split_s3_uri(path)
        body = s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
        source: str | io.BytesIO = io.BytesIO(body)
    else:
        source = path
    return pd.read_csv(source) if kind == "csv" else pd.read_parquet(source)


def load_dataset_table(dataset: Mapping[str, Any]) -> pd.DataFrame:
    return load_table(str(dataset["path"]), dataset.get("format"))


def feature_columns(df: pd.DataFrame, exclude: Sequence[str], features: Sequence[str] | None) -> list[str]:
    if features:
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise KeyError(f"feature columns not in the table: {missing}")
        return list(features)
    return [c for c in df.columns if c not in exclude and pd.api.types.is_numeric_dtype(df[c])]


def column(df: pd.DataFrame, name: str) -> NDArray[Any]:
    if name not in df.columns:
        raise KeyError(f"column {name!r} not in the table (columns: {list(df.columns)[:20]})")
    return df[name].to_numpy()


def float_matrix(df: pd.DataFrame, cols: Sequence[str]) -> NDArray[np.float32]:
    return df[list(cols)].to_numpy(dtype=np.float32)
