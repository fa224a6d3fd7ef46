"""The embedded runner's state: one SQLite file in the state directory.

Everything the runner knows lives here, so a runner killed at any instant (Ctrl-C, `kill -9`) loses
nothing: trials (the Trial object as JSON, spec and status), the campaign's manifest and status,
events, the per-attempt launch log, how far each progress file has been read, and the runner lease.
WAL mode lets `campaign status` read while a runner writes.

Integrity: every open checks the file before trusting it (not empty, SQLite's integrity check, our
tables and SCHEMA_VERSION), so a truncated, garbage or 0-byte state.db is named in one line instead
of a sqlite3 traceback, and a new state.db appears only complete (built under a temporary name and
linked into place), so a runner killed while creating it never leaves an empty one behind. A runner
(`open_for_run`) also refuses a state dir whose progress files or checkpoints its state.db does not
account for: that is an earlier campaign's work, and starting over on top of it needs `--restart`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from campaign_operator.api.campaign import TrainingCampaignStatus
from campaign_operator.api.trial import Trial
from campaign_operator.report.live import Event

DB_NAME = "state.db"
LOCK_NAME = "runner.lock"
SCHEMA_VERSION = 1
TABLES = ("meta", "trials", "events", "attempts", "offsets", "lease")
PROGRESS_DIR = "trials"
CHECKPOINT_DIR = "checkpoints"
DISCARDED_PREFIX = "discarded-"
"""`run --restart` moves the earlier state here (state.db, progress, checkpoints), never deletes it."""
INDEX_ENV = "CAMPAIGN_STATE_INDEX"
_ATTEMPT_FILE = re.compile(r"attempt-([0-9]+)\.jsonl")

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


class NoState(StoreError):
    """A reader pointed at a directory without a state.db (a wrong --state, not a damaged one)."""


READER_HINT = (
    "restore it from a backup, or start the campaign over with `campaign run FILE --state {dir} --restart`"
)
RUNNER_HINT = (
    "nothing was run; to start the campaign over, run again with --restart "
    "(the old state is moved to {dir}/discarded-<time>/)"
)


class StateCorrupt(StoreError):
    """state.db exists but is not a campaign state this version can read (empty, garbage, truncated,
    another program's database, another schema version). Its message is one line: what is wrong and
    what to do."""

    def __init__(self, db: Path, problem: str, *, readonly: bool):
        self.db, self.problem = db, problem
        hint = (READER_HINT if readonly else RUNNER_HINT).format(dir=db.parent)
        super().__init__(f"{db}: {problem}; {hint}")


class StateConflict(StoreError):
    """The state dir holds an earlier campaign's work that its state.db does not account for
    (progress files or checkpoints without a recorded attempt, or another campaign's state)."""

    def __init__(self, state_dir: Path, problem: str):
        self.problem = problem
        super().__init__(f"state dir {state_dir}: {problem}; {RUNNER_HINT.format(dir=state_dir)}")


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_database(db: sqlite3.Connection, path: Path) -> str | None:
    """What is wrong with the campaign state in `db` (opened on `path`), or None if it is sound:
    not empty, a SQLite database, SQLite's integrity check passes, our tables and schema version."""
    try:
        if path.stat().st_size == 0:
            return "is empty (0 bytes), not a campaign state"
        rows = db.execute("PRAGMA integrity_check(5)").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            return f"fails SQLite's integrity check ({_one_line('; '.join(str(r[0]) for r in rows))})"
        tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in TABLES if t not in tables]
        if missing:
            return f"is a SQLite database but not a campaign state (no table {', '.join(missing)})"
        row = db.execute("SELECT value FROM meta WHERE key = 'schemaVersion'").fetchone()
        version = json.loads(row[0]) if row is not None else None
    except sqlite3.DatabaseError as e:
        return f"is not a readable SQLite database ({_one_line(e)})"
    except (OSError, ValueError) as e:
        return f"cannot be read ({_one_line(e)})"
    if version == SCHEMA_VERSION:
        return None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        return (
            f"was written by a newer campaign (schema version {version}; this one reads "
            f"{SCHEMA_VERSION}): upgrade campaign-operator"
        )
    return f"has schema version {version!r}, not {SCHEMA_VERSION}"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reads(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A read of stored records: damage found only now (a page the integrity check could not see,
    a record that no longer parses) becomes StateCorrupt, never a sqlite3 or pydantic traceback.
    Busy/locked errors (OperationalError) pass through: callers retry those."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        store = args[0]
        assert isinstance(store, Store)
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as e:
            raise StateCorrupt(store.path, f"is damaged ({_one_line(e)})", readonly=store.readonly) from None
        except ValueError as e:  # json.JSONDecodeError, pydantic.ValidationError
            problem = f"holds a record this campaign cannot read ({_one_line(e)})"
            raise StateCorrupt(store.path, problem, readonly=store.readonly) from None

    return wrapper


def _create_database(path: Path) -> None:
    """A new, complete state.db: built under a temporary name, then hard-linked into place, which
    fails if one appeared meanwhile (never replaces a database another runner has open)."""
    tmp = path.with_name(f"{path.name}.new-{os.getpid()}")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO meta (key, value) VALUES ('schemaVersion', ?)", (json.dumps(SCHEMA_VERSION),))
    finally:
        db.close()  # the last connection checkpoints the WAL into the file and removes it
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


class LeaseHeld(StoreError):
    def __init__(self, state_dir: Path, lease: LeaseInfo | None):
        self.lease = lease
        who = f"pid {lease.pid} on {lease.host}" if lease else "another process"
        super().__init__(f"state dir {state_dir} is in use by a running runner ({who})")


class Store:
    """A connection to one state directory. Writers hold the lease; readers open read-only."""

    def __init__(self, state_dir: Path, *, readonly: bool = False):
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self.readonly = readonly
        self._lock_fd: int | None = None
        db = self.path
        if readonly:
            if not db.exists():
                raise NoState(f"no campaign state in {self.dir} (expected {db})")
            self.db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10, check_same_thread=False)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not db.exists():
                _create_database(db)
            self.db = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
        # Checked before anything is written: a damaged or foreign file is never "repaired" into
        # an empty campaign.
        problem = check_database(self.db, db)
        if problem is not None:
            self.db.close()
            raise StateCorrupt(db, problem, readonly=readonly)
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives power loss too; the runner writes little.
            self.db.execute("PRAGMA synchronous=FULL")

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
        self._hold_lease(lock_state_dir(self.dir))

    def _hold_lease(self, fd: int) -> None:
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

    @_reads
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

    @_reads
    def manifest(self) -> dict[str, Any] | None:
        value = self._meta("manifest")
        return value if isinstance(value, dict) else None

    def put_status(self, status: TrainingCampaignStatus) -> None:
        self._set_meta("status", status.to_wire())

    @_reads
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

    @_reads
    def trials(self) -> list[Trial]:
        rows = self.db.execute("SELECT doc FROM trials ORDER BY seq").fetchall()
        return [Trial.model_validate(json.loads(r[0])) for r in rows]

    @_reads
    def trial(self, name: str) -> Trial | None:
        row = self.db.execute("SELECT doc FROM trials WHERE name = ?", (name,)).fetchone()
        return None if row is None else Trial.model_validate(json.loads(row[0]))

    # -- events and attempts ----------------------------------------------------------------
    def add_event(self, type_: str, reason: str, message: str, time: datetime | None = None) -> None:
        self.db.execute(
            "INSERT INTO events (time, type, reason, message) VALUES (?, ?, ?, ?)",
            ((time or datetime.now(UTC)).isoformat(), type_, reason, message),
        )

    @_reads
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

    @_reads
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


INTERRUPTED = "no runner (run `campaign run` again to resume)"


def runner_note(store: Store, terminal: bool) -> str:
    """Who runs the campaign now, as the status views say it."""
    lease = store.lease()
    if lease is not None and lease.alive:
        return f"runner pid {lease.pid}"
    return "finished" if terminal else INTERRUPTED


def lock_state_dir(state_dir: Path) -> int:
    """Takes the runner flock of `state_dir` (LeaseHeld if another runner holds it); the fd."""
    fd = os.open(Path(state_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LeaseHeld(Path(state_dir), _peek_lease(Path(state_dir))) from None
    return fd


def _peek_lease(state_dir: Path) -> LeaseInfo | None:
    """Who holds the lease, if a sound state.db says so (only to name them in a message)."""
    try:
        with Store(state_dir, readonly=True) as store:
            return store.lease()
    except (StoreError, sqlite3.Error):
        return None


def unaccounted_work(store: Store) -> list[str]:
    """Progress files and checkpoint dirs in the state dir that no attempt in `store` accounts for
    (relative paths). A runner records each attempt before its trainer can write anything, so these
    are an earlier campaign's work: resuming on top of them would count their lines as this
    campaign's, and a trial would resume from someone else's checkpoint."""
    launched = {(a.trial, a.attempt) for a in store.attempts()}
    trials = {t for t, _ in launched}
    found: list[str] = []
    progress = store.dir / PROGRESS_DIR
    for trial_dir in sorted(progress.iterdir()) if progress.is_dir() else []:
        for f in sorted(trial_dir.iterdir()) if trial_dir.is_dir() else [trial_dir]:
            m = _ATTEMPT_FILE.fullmatch(f.name)
            if m is None or (trial_dir.name, int(m.group(1))) not in launched:
                found.append(str(f.relative_to(store.dir)))
    checkpoints = store.dir / CHECKPOINT_DIR
    for trial_dir in sorted(checkpoints.iterdir()) if checkpoints.is_dir() else []:
        if trial_dir.name not in trials:
            found.append(str(trial_dir.relative_to(store.dir)))
    return found


def _earlier_work(state_dir: Path) -> list[Path]:
    """What --restart moves aside: the database and every progress and checkpoint file."""
    names = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", PROGRESS_DIR, CHECKPOINT_DIR)
    return [state_dir / n for n in names if (state_dir / n).exists()]


def discard_state(state_dir: Path) -> Path | None:
    """Moves the earlier state into `<state_dir>/discarded-<UTC time>/` (the caller holds the runner
    lock); None if there was none."""
    found = _earlier_work(state_dir)
    if not found:
        return None
    dest = state_dir / f"{DISCARDED_PREFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
    dest.mkdir()
    for path in found:
        path.rename(dest / path.name)
    return dest


def _conflict(store: Store, campaign: str) -> str | None:
    manifest = store.manifest()
    stored = str((manifest or {}).get("metadata", {}).get("name") or "")
    if stored and stored != campaign:
        return f"holds the state of campaign {stored!r}, not {campaign!r} (use another --state)"
    stray = unaccounted_work(store)
    if stray:
        more = f" and {len(stray) - 3} more" if len(stray) > 3 else ""
        return (
            f"{len(stray)} progress or checkpoint file(s) that state.db has no attempt for "
            f"({', '.join(stray[:3])}{more}): state.db was replaced or reset after an earlier run"
        )
    return None


def state_index() -> Path:
    """The list of state dirs runners on this machine have used (one absolute path a line), so
    `campaign list` finds campaigns run with --state elsewhere too. $CAMPAIGN_STATE_INDEX, else
    under $XDG_STATE_HOME (~/.local/state)."""
    explicit = os.environ.get(INDEX_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "campaign-operator" / "state-dirs"


def remember_state_dir(state_dir: Path) -> None:
    """Adds `state_dir` to the index once. Best effort: an index that cannot be written never stops a
    run (list then shows only ./.campaign)."""
    path = Path(state_dir).resolve()
    index = state_index()
    with contextlib.suppress(OSError):
        if path in remembered_state_dirs():
            return
        index.parent.mkdir(parents=True, exist_ok=True)
        with index.open("a", encoding="utf-8") as f:  # one short append: atomic enough between runners
            f.write(f"{path}\n")


def remembered_state_dirs() -> list[Path]:
    """The indexed state dirs that still hold a state.db, oldest entry first."""
    try:
        lines = state_index().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for line in dict.fromkeys(x.strip() for x in lines if x.strip()):
        if (Path(line) / DB_NAME).is_file():
            out.append(Path(line))
    return out


@dataclass
class RunnerState:
    store: Store
    discarded: Path | None = None
    """Where --restart moved the earlier state, if there was any."""


def open_for_run(state_dir: Path, campaign: str, *, restart: bool = False) -> RunnerState:
    """The runner's store, with the lease held. Resumes what the state dir holds; never starts the
    campaign over on top of earlier work without `restart`: a damaged or empty state.db
    (StateCorrupt), or progress/checkpoints it does not account for or another campaign's state
    (StateConflict), are refused. With `restart`, the earlier state is moved aside first. Another
    runner on the dir: LeaseHeld, and nothing is touched."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = lock_state_dir(state_dir)
    try:
        # A runner killed while building a new state.db leaves its temporary file (never state.db).
        for leftover in state_dir.glob(f"{DB_NAME}.new-*"):
            leftover.unlink(missing_ok=True)
        store, discarded = None, None
        if restart:
            discarded = discard_state(state_dir)
        else:
            store = _resumable(state_dir, campaign)
        if store is None:
            store = Store(state_dir)
        store._hold_lease(fd)
        remember_state_dir(state_dir)
        return RunnerState(store, discarded)
    except BaseException:
        os.close(fd)
        raise


def _resumable(state_dir: Path, campaign: str) -> Store | None:
    """The store to resume in `state_dir` (None: there is none, start anew), or why a runner must
    not resume there (StateCorrupt, StateConflict)."""
    if not (state_dir / DB_NAME).exists():
        earlier = _earlier_work(state_dir)
        if not earlier:
            return None
        found = ", ".join(p.name + ("/" if p.is_dir() else "") for p in earlier)
        raise StateConflict(state_dir, f"has an earlier run's files ({found}) but no {DB_NAME}")
    store = Store(state_dir)
    try:
        conflict = _conflict(store, campaign)
    except BaseException:
        store.close()
        raise
    if conflict is not None:
        store.close()
        raise StateConflict(state_dir, conflict)
    return store
