"""Checkpoint naming, retention and the local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_trainer import checkpoints

pytestmark = pytest.mark.unit


def test_names_round_trip_and_sort_by_epoch() -> None:
    assert checkpoints.checkpoint_name(7) == "epoch-000007.ckpt"
    assert checkpoints.parse_epoch("prefix/epoch-000123.ckpt") == 123
    assert checkpoints.parse_epoch("epoch-1.ckpt") is None
    assert checkpoints.parse_epoch("epoch-000001.ckpt.tmp12") is None
    names = ["epoch-000002.ckpt", "epoch-000010.ckpt", "notes.txt", "epoch-000009.ckpt"]
    assert checkpoints.newest(names) == (10, "epoch-000010.ckpt")
    assert checkpoints.newest(["notes.txt"]) is None


def test_to_prune_keeps_the_newest() -> None:
    names = [checkpoints.checkpoint_name(e) for e in (3, 1, 4, 2)] + ["other"]
    assert checkpoints.to_prune(names, 2) == ["epoch-000002.ckpt", "epoch-000001.ckpt"]
    assert checkpoints.to_prune(names, 0) == checkpoints.to_prune(names, 1)  # never delete the newest


@pytest.mark.parametrize(
    "epoch,every,final,expected",
    [(1, 1, False, True), (3, 2, False, False), (4, 2, False, True), (5, 2, True, True)],
)
def test_should_checkpoint(epoch: int, every: int, final: bool, expected: bool) -> None:
    assert checkpoints.should_checkpoint(epoch, every, final) is expected


def test_local_store_save_prune_fetch(tmp_path: Path) -> None:
    store = checkpoints.open_store(str(tmp_path / "ckpt" / "trial-a"))
    src = tmp_path / "src.ckpt"
    for epoch in (1, 2, 3):
        src.write_bytes(f"state {epoch}".encode())
        uri = checkpoints.save(store, src, epoch, keep=2)
        assert uri.endswith(checkpoints.checkpoint_name(epoch))
    assert store.names() == ["epoch-000002.ckpt", "epoch-000003.ckpt"]
    work = tmp_path / "work"
    work.mkdir()
    fetched = checkpoints.fetch_latest(store, work)
    assert fetched is not None and fetched[0] == 3 and fetched[1].read_bytes() == b"state 3"
    assert checkpoints.fetch_latest(checkpoints.open_store(str(tmp_path / "empty")), work) is None


def test_unsupported_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        checkpoints.open_store("gs://bucket/x")
    assert isinstance(checkpoints.open_store("s3://b/p"), checkpoints.S3Store)
