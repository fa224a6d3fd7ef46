"""The embedded runner's state: one SQLite file in the state directory.

Everything the runner knows lives here, so a runner killed at any instant (Ctrl-C, `kill -9`) loses
nothing: trials (the Trial object as JSON, spec and status), the campaign's manifest and status,
events, the per-attempt launch log, how far each progress file has been read, and the runner lease.
WAL mode lets `campaign status` read while a runner writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from campaign_operator.api.campaign import TrainingCampaignStatus
from campaign_operator.api.trial import Trial

DB_NAME = "state.db"
LOCK_NAME = "runner.lock"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    phase TEXT NOT NULL,
    state TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    runner_pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (path TEXT PRIMARY KEY, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Event:
    time: datetime
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class AttemptRecord:
    trial: str
    attempt: int
    kind: str
    """'start': a new attempt began; 'resume': the same attempt continued after a runner restart."""
    time: datetime
    runner_pid: int


@dataclass(frozen=True)
class LeaseInfo:
    pid: int
    host: str
    started: datetime

    @property
    def alive(self) -> bool:
        """Whether the lease holder still runs (only checkable on the same host)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class StoreError(RuntimeError):
    pass


class LeaseHeld(StoreError):
    def __init__(self, state_dir: Path, lease: LeaseInfo | None):
        self.lease = lease
        who = f"pid {lease.pid} on {lease.host}" if lease else "another process"
        super().__init__(f"state dir {state_dir} is in use by a running runner ({who})")


class Store:
    """A connection to one state directory. Writers hold the lease; readers open read-only."""

    def __init__(self, state_dir: Path, *, readonly: bool = False):
        self.dir = Path(state_dir)
        self.readonly = readonly
        self._lock_fd: int | None = None
        db = self.dir / DB_NAME
        if readonly:
            if not db.exists():
                raise StoreError(f"no campaign state in {self.dir} (expected {db})")
            self.db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10, check_same_thread=False)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives power loss too; the runner writes little.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            self._set_meta("schemaVersion", SCHEMA_VERSION)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        self.release_lease()
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Groups writes so a crash leaves either all of them or none (e.g. a status + a read offset)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- lease ------------------------------------------------------------------------------
    def acquire_lease(self) -> None:
        """One runner per state dir. The kernel drops the flock when its holder dies (even by
        SIGKILL), so a crashed runner never blocks the next one; the pid row says who holds it."""
        fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LeaseHeld(self.dir, self.lease()) from None
        self._lock_fd = fd
        self.db.execute(
            "INSERT OR REPLACE INTO lease (id, pid, host, started) VALUES (1, ?, ?, ?)",
            (os.getpid(), socket.gethostname(), _now()),
        )

    def release_lease(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("DELETE FROM lease WHERE id = 1 AND pid = ?", (os.getpid(),))
        os.close(self._lock_fd)
        self._lock_fd = None

    def lease(self) -> LeaseInfo | None:
        row = self.db.execute("SELECT pid, host, started FROM lease WHERE id = 1").fetchone()
        if row is None:
            return None
        return LeaseInfo(int(row[0]), str(row[1]), datetime.fromisoformat(row[2]))

    # -- campaign ---------------------------------------------------------------------------
    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_manifest(self, manifest: dict[str, Any]) -> None:
        self._set_meta("manifest", manifest)

    def manifest(self) -> dict[str, Any] | None:
        value = self._meta("manifest")
        return value if isinstance(value, dict) else None

    def put_status(self, status: TrainingCampaignStatus) -> None:
        self._set_meta("status", status.to_wire())

    def status(self) -> TrainingCampaignStatus | None:
        value = self._meta("status")
        return None if value is None else TrainingCampaignStatus.model_validate(value)

    # -- trials -----------------------------------------------------------------------------
    def insert_trial(self, trial: Trial) -> bool:
        """Adds a trial unless one of that name exists (creation is idempotent); True if added."""
        seq = self.db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM trials").fetchone()[0]
        cur = self.db.execute(
            "INSERT OR IGNORE INTO trials (name, seq, phase, state, doc) VALUES (?, ?, ?, ?, ?)",
            (trial.name, seq, trial.spec.phase, trial.status.state.value, json.dumps(trial.to_wire())),
        )
        return cur.rowcount == 1

    def update_trial(self, trial: Trial) -> None:
        cur = self.db.execute(
            "UPDATE trials SET state = ?, doc = ? WHERE name = ?",
            (trial.status.state.value, json.dumps(trial.to_wire()), trial.name),
        )
        if cur.rowcount != 1:
            raise StoreError(f"trial {trial.name} is not in the store")

    def trials(self) -> list[Trial]:
        rows = self.db.execute("SELECT doc FROM trials ORDER BY seq").fetchall()
        return [Trial.model_validate(json.loads(r[0])) for r in rows]

    def trial(self, name: str) -> Trial | None:
        row = self.db.execute("SELECT doc FROM trials WHERE name = ?", (name,)).fetchone()
        return None if row is None else Trial.model_validate(json.loads(row[0]))

    # -- events and attempts ----------------------------------------------------------------
    def add_event(self, type_: str, reason: str, message: str, time: datetime | None = None) -> None:
        self.db.execute(
            "INSERT INTO events (time, type, reason, message) VALUES (?, ?, ?, ?)",
            ((time or datetime.now(UTC)).isoformat(), type_, reason, message),
        )

    def events(self, limit: int | None = None) -> list[Event]:
        """Oldest first; with `limit`, the newest `limit` events."""
        q = "SELECT time, type, reason, message FROM events ORDER BY id DESC"
        rows = self.db.execute(q + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [Event(datetime.fromisoformat(r[0]), r[1], r[2], r[3]) for r in reversed(rows)]

    def record_attempt(self, trial: str, attempt: int, kind: str) -> None:
        self.db.execute(
            "INSERT INTO attempts (trial, attempt, kind, time, runner_pid) VALUES (?, ?, ?, ?, ?)",
            (trial, attempt, kind, _now(), os.getpid()),
        )

    def attempts(self) -> list[AttemptRecord]:
        rows = self.db.execute(
            "SELECT trial, attempt, kind, time, runner_pid FROM attempts ORDER BY id"
        ).fetchall()
        return [AttemptRecord(r[0], int(r[1]), r[2], datetime.fromisoformat(r[3]), int(r[4])) for r in rows]

    # -- progress-file read offsets ---------------------------------------------------------
    def offset(self, path: str) -> int:
        row = self.db.execute("SELECT offset FROM offsets WHERE path = ?", (path,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_offset(self, path: str, offset: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO offsets (path, offset) VALUES (?, ?)", (path, offset))


def runner_note(store: Store, terminal: bool) -> str:
    """Who runs the campaign now, as the status views say it."""
    lease = store.lease()
    if lease is not None and lease.alive:
        return f"runner pid {lease.pid}"
    return "finished" if terminal else "no runner (run `campaign run` again to resume)"
