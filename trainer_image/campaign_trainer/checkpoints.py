"""Checkpoint stores: a local directory or an S3 prefix, holding ``epoch-NNNNNN.ckpt`` files.

The trial's checkpoint URI is its identity: a restarted trial (preempted pod, retried RayJob) with
the same URI resumes from the newest checkpoint there. Objects are written whole (S3 PUT, or a local
rename), so a reader never sees a half-written checkpoint even if the writer is SIGKILLed mid-save.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from campaign_trainer.s3 import s3_client, split_s3_uri

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_NAME = re.compile(r"^epoch-(\d{6,})\.ckpt$")


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:06d}.ckpt"


def parse_epoch(name: str) -> int | None:
    m = _NAME.match(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def newest(names: list[str]) -> tuple[int, str] | None:
    found = [(e, n) for n in names if (e := parse_epoch(n)) is not None]
    return max(found) if found else None


def to_prune(names: list[str], keep: int) -> list[str]:
    """Checkpoint names beyond the ``keep`` newest (non-checkpoint names are never touched)."""
    found = sorted(((e, n) for n in names if (e := parse_epoch(n)) is not None), reverse=True)
    return [n for _, n in found[max(1, keep) :]]


def should_checkpoint(epoch: int, every: int, final: bool) -> bool:
    return final or (every > 0 and epoch % every == 0)


class CheckpointStore(Protocol):
    uri: str

    def names(self) -> list[str]: ...
    def upload(self, local: Path, epoch: int) -> str: ...
    def download(self, name: str, local: Path) -> None: ...
    def delete(self, name: str) -> None: ...


@dataclass
class LocalStore:
    uri: str

    @property
    def root(self) -> Path:
        return Path(self.uri.removeprefix("file://"))

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("epoch-*.ckpt")) if self.root.is_dir() else []

    def upload(self, local: Path, epoch: int) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        dest = self.root / checkpoint_name(epoch)
        tmp = dest.with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)  # atomic on one filesystem
        return str(dest)

    def download(self, name: str, local: Path) -> None:
        shutil.copyfile(self.root / name, local)

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


@dataclass
class S3Store:
    uri: str
    endpoint_url: str | None = None

    def _loc(self) -> tuple[S3Client, str, str]:
        bucket, prefix = split_s3_uri(self.uri)
        return s3_client(self.endpoint_url), bucket, (prefix.rstrip("/") + "/") if prefix else ""

    def names(self) -> list[str]:
        client, bucket, prefix = self._loc()
        out: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [obj["Key"][len(prefix) :] for obj in page.get("Contents", [])]
        return sorted(n for n in out if "/" not in n)

    def upload(self, local: Path, epoch: int) -> str:
        client, bucket, prefix = self._loc()
        key = prefix + checkpoint_name(epoch)
        client.upload_file(str(local), bucket, key)
        return f"s3://{bucket}/{key}"

    def download(self, name: str, local: Path) -> None:
        client, bucket, prefix = self._loc()
        client.download_file(bucket, prefix + name, str(local))

    def delete(self, name: str) -> None:
        client, bucket, prefix = self._loc()
        client.delete_object(Bucket=bucket, Key=prefix + name)


def open_store(uri: str, endpoint_url: str | None = None) -> CheckpointStore:
    if uri.startswith("s3://"):
        return S3Store(uri, endpoint_url)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"unsupported checkpoint URI {uri!r} (s3:// or a local path)")
    return LocalStore(uri)


def uri_of(store: CheckpointStore, name: str) -> str:
    return f"{store.uri.rstrip('/')}/{name}"


def fetch_latest(store: CheckpointStore, workdir: Path) -> tuple[int, Path] | None:
    """Download the newest checkpoint into ``workdir``; None when the store has none."""
    latest = newest(store.names())
    if latest is None:
        return None
    epoch, name = latest
    local = workdir / name
    store.download(name, local)
    return epoch, local


def save(store: CheckpointStore, local: Path, epoch: int, keep: int) -> str:
    """Upload, then prune older ones: the newest checkpoint always exists before any is deleted."""
    uri = store.upload(local, epoch)
    for name in to_prune(store.names(), keep):
        store.delete(name)
    return uri


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="campaign-ckpt-"))
