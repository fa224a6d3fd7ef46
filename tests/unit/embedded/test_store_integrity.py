"""The state file is checked before it is trusted: empty, garbage, truncated, foreign and newer
files are refused in one line (and never "repaired" into an empty campaign), and a runner never
starts over on top of earlier work without --restart."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from campaign_operator.embedded.store import (
    DB_NAME,
    SCHEMA_VERSION,
    LeaseHeld,
    StateConflict,
    StateCorrupt,
    Store,
    open_for_run,
    unaccounted_work,
)

from .helpers import trial

pytestmark = pytest.mark.unit


def _state_with_one_trial(state: Path, name: str = "c-p-0001") -> None:
    with Store(state) as store:
        store.put_manifest({"metadata": {"name": "c"}})
        store.insert_trial(trial(name))
        store.record_attempt(name, 1, "start")
        with store.transaction():
            for i in range(200):  # a few pages, so that a truncation cuts into data
                store.add_event("Normal", "R", "x" * 200 + str(i))
    progress = state / "trials" / name / "attempt-1.jsonl"
    progress.parent.mkdir(parents=True)
    progress.write_text('{"type":"start"}\n')


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x TEXT)")
    db.commit()
    db.close()


def _newer(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schemaVersion'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()


DAMAGE = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "garbage": (lambda p: p.write_bytes(os.urandom(8192)), "not a readable SQLite database"),
    "truncated": (_truncate, "SQLite"),
    "foreign": (_foreign, "not a campaign state (no table meta"),
    "newer": (_newer, f"newer campaign (schema version {SCHEMA_VERSION + 1}"),
}


def _damaged(tmp_path: Path, kind: str) -> tuple[Path, str]:
    state = tmp_path / "state"
    if kind == "foreign":
        state.mkdir()
        _foreign(state / DB_NAME)
    else:
        _state_with_one_trial(state)
        damage, _ = DAMAGE[kind]
        damage(state / DB_NAME)
    return state, DAMAGE[kind][1]


@pytest.mark.parametrize("kind", sorted(DAMAGE))
@pytest.mark.parametrize("readonly", [True, False], ids=["reader", "writer"])
def test_a_damaged_state_file_is_refused_in_one_line_and_left_as_it_was(
    tmp_path: Path, kind: str, readonly: bool
) -> None:
    state, problem = _damaged(tmp_path, kind)
    before = (state / DB_NAME).read_bytes()
    with pytest.raises(StateCorrupt) as err:
        Store(state, readonly=readonly).close()
    message = str(err.value)
    assert problem in message and "\n" not in message
    assert str(state / DB_NAME) in message
    assert "--restart" in message  # what to do
    assert (state / DB_NAME).read_bytes() == before  # nothing written, nothing "repaired"


def test_a_new_state_file_appears_complete(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / f"{DB_NAME}.new-12345").write_bytes(b"half-built by a runner killed while creating it")
    with Store(state) as store:
        assert store.trials() == []
    with Store(state, readonly=True) as ro:
        assert ro.trials() == []
    names = {p.name for p in state.iterdir()} - {f"{DB_NAME}-wal", f"{DB_NAME}-shm"}
    assert names == {DB_NAME, f"{DB_NAME}.new-12345"}  # only its own temporary name is reused


def test_a_record_damaged_inside_a_sound_file_is_named(tmp_path: Path) -> None:
    _state_with_one_trial(tmp_path)
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("UPDATE trials SET doc = '{not json'")
    db.commit()
    db.close()
    with Store(tmp_path, readonly=True) as ro, pytest.raises(StateCorrupt, match="record this campaign"):
        ro.trials()


def test_run_resumes_a_sound_state(tmp_path: Path) -> None:
    _state_with_one_trial(tmp_path)
    opened = open_for_run(tmp_path, "c")
    with opened.store as store:
        assert [t.name for t in store.trials()] == ["c-p-0001"]
        assert opened.discarded is None
        assert store.lease() is not None


def test_run_starts_a_new_state_dir(tmp_path: Path) -> None:
    opened = open_for_run(tmp_path / "new", "c")
    with opened.store as store:
        assert store.trials() == [] and opened.discarded is None


def test_run_starts_over_what_a_runner_killed_while_creating_the_state_left(tmp_path: Path) -> None:
    (tmp_path / f"{DB_NAME}.new-4242").write_bytes(b"half a database")
    opened = open_for_run(tmp_path, "c")
    with opened.store as store:
        assert store.trials() == [] and opened.discarded is None
    assert not list(tmp_path.glob(f"{DB_NAME}.new-*"))


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_run_never_starts_over_a_damaged_state_without_restart(tmp_path: Path, kind: str) -> None:
    state, _ = _damaged(tmp_path, kind)

    def files() -> dict[str, bytes]:
        return {
            str(p.relative_to(state)): p.read_bytes()
            for p in state.rglob("*")
            if p.is_file() and p.name != "runner.lock"
        }

    before = files()
    with pytest.raises(StateCorrupt, match="run again with --restart"):
        open_for_run(state, "c")
    assert files() == before

    opened = open_for_run(state, "c", restart=True)
    with opened.store as store:
        assert store.trials() == []
    assert opened.discarded is not None and opened.discarded.parent == state
    assert (opened.discarded / DB_NAME).exists()
    assert not (state / "trials").exists()  # the earlier progress moved with it


def test_progress_without_a_state_file_is_earlier_work(tmp_path: Path) -> None:
    _state_with_one_trial(tmp_path)
    (tmp_path / DB_NAME).unlink()
    with pytest.raises(StateConflict, match=r"has an earlier run's files \(trials/\) but no state.db"):
        open_for_run(tmp_path, "c")
    assert not (tmp_path / DB_NAME).exists()


def test_progress_the_state_file_does_not_account_for_is_refused(tmp_path: Path) -> None:
    """A state.db reset or swapped for another: a progress file of an attempt it never launched, or
    a checkpoint of a trial it never ran, would be counted as or resumed from this campaign's."""
    _state_with_one_trial(tmp_path)
    (tmp_path / "trials" / "c-p-0001" / "attempt-2.jsonl").write_text('{"type":"start"}\n')
    (tmp_path / "checkpoints" / "c-p-0009").mkdir(parents=True)
    with Store(tmp_path) as store:
        assert unaccounted_work(store) == ["trials/c-p-0001/attempt-2.jsonl", "checkpoints/c-p-0009"]
    with pytest.raises(StateConflict, match="2 progress or checkpoint file"):
        open_for_run(tmp_path, "c")
    opened = open_for_run(tmp_path, "c", restart=True)
    opened.store.close()
    assert opened.discarded is not None
    assert (opened.discarded / "checkpoints" / "c-p-0009").is_dir()


def test_another_campaigns_state_is_refused(tmp_path: Path) -> None:
    _state_with_one_trial(tmp_path)
    with pytest.raises(StateConflict, match="holds the state of campaign 'c', not 'd'"):
        open_for_run(tmp_path, "d")


def test_restart_while_another_runner_holds_the_dir_touches_nothing(tmp_path: Path) -> None:
    _state_with_one_trial(tmp_path)
    holder = open_for_run(tmp_path, "c")
    try:
        with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
            open_for_run(tmp_path, "c", restart=True)
        assert [t.name for t in holder.store.trials()] == ["c-p-0001"]
        assert not list(tmp_path.glob("discarded-*"))
    finally:
        holder.store.close()
