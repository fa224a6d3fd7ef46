"""A trial's outputs, published next to its checkpoints, and its inputs: earlier trials' outputs.

Layout: ``<checkpoint uri>/outputs/`` (an S3 prefix or a local directory) holds what the task wrote
(its model, predictions.parquet) and ``outputs.json``, written last: a directory without it was never
completely published (the producer died mid-upload), so no consumer reads it. A retried trial
publishes again over the same place; files the new outputs lack are removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from campaign_trainer.s3 import s3_client, split_s3_uri

OUTPUTS_DIR = "outputs"
MANIFEST = "outputs.json"


class InputMissing(RuntimeError):
    """An input of the trial (spec.inputs) is absent or was never completely published."""


def outputs_uri(checkpoint_uri: str) -> str:
    return f"{checkpoint_uri.rstrip('/')}/{OUTPUTS_DIR}"


def _files(local: Path) -> list[str]:
    return sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file() and p.name != MANIFEST)


def publish(local: Path, uri: str, about: Mapping[str, Any]) -> str:
    """Store the files under `local` at `uri` with a manifest naming them (and `about`: the trial,
    its epoch); returns where they are (a local one as an absolute path)."""
    files = _files(local)
    (local / MANIFEST).write_text(json.dumps({**about, "files": files}, sort_keys=True), encoding="utf-8")
    if uri.startswith("s3://"):
        _publish_s3(local, uri, files)
        return uri
    dest = Path(uri.removeprefix("file://")).resolve()  # a consumer may run in another directory
    _publish_local(local, dest)
    return str(dest)


def _publish_local(local: Path, dest: Path) -> None:
    # Staged beside the destination, then swapped in: a reader sees the old or the new outputs.json.
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(local, staged)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old{os.getpid()}")
        os.replace(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staged, dest)


def _keys(uri: str) -> tuple[str, str, list[str]]:
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/"
    keys: list[str] = []
    for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return bucket, prefix, keys


def _publish_s3(local: Path, uri: str, files: list[str]) -> None:
    client = s3_client()
    bucket, prefix, existing = _keys(uri)
    if prefix + MANIFEST in existing:  # not complete while its files are replaced
        client.delete_object(Bucket=bucket, Key=prefix + MANIFEST)
    for name in files:
        client.upload_file(str(local / name), bucket, prefix + name)
    for key in set(existing) - {prefix + name for name in files} - {prefix + MANIFEST}:
        client.delete_object(Bucket=bucket, Key=key)
    client.upload_file(str(local / MANIFEST), bucket, prefix + MANIFEST)


def published(uri: str) -> bool:
    """Whether complete outputs are stored at `uri`."""
    if uri.startswith("s3://"):
        _, prefix, keys = _keys(uri)
        return prefix + MANIFEST in keys
    return (Path(uri.removeprefix("file://")) / MANIFEST).is_file()


def fetch_inputs(inputs: Mapping[str, str], workdir: Path) -> dict[str, Path]:
    """Each input as a local directory: a local one as it is, an S3 one downloaded under `workdir`."""
    return {name: fetch_input(name, uri, workdir / name) for name, uri in inputs.items()}


def fetch_input(name: str, uri: str, dest: Path) -> Path:
    if uri.startswith("s3://"):
        return _fetch_s3(name, uri, dest)
    local = Path(uri.removeprefix("file://"))
    if not local.is_dir():
        raise InputMissing(f"input {name!r}: {uri} does not exist (the producing trial's outputs)")
    if not (local / MANIFEST).is_file():
        raise InputMissing(_incomplete(name, uri))
    return local


def _fetch_s3(name: str, uri: str, dest: Path) -> Path:
    bucket, prefix, keys = _keys(uri)
    if not keys:
        raise InputMissing(f"input {name!r}: {uri} does not exist (no objects under it)")
    if prefix + MANIFEST not in keys:
        raise InputMissing(_incomplete(name, uri))
    client = s3_client()
    for key in keys:
        target = (dest / key[len(prefix) :]).resolve()
        if not target.is_relative_to(dest.resolve()):  # a key with ../ must not write elsewhere
            raise InputMissing(f"input {name!r}: {uri} holds a key outside it: {key!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return dest


def _incomplete(name: str, uri: str) -> str:
    return (
        f"input {name!r}: {uri} has no {MANIFEST}: the producing trial never finished publishing its outputs"
    )
