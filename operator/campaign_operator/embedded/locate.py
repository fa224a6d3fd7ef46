"""Finding a campaign's state directory the way `campaign run` names it, and listing them all.

`campaign run FILE` keeps its state in `state_dir_for` (.campaign/<name> under the working
directory unless --state says otherwise) and records every state dir it uses in the machine's index
(store.state_index). The reading commands take the same references: a manifest (its campaign's
state dir, named as run names it), a campaign name (.campaign/<name>, else an indexed state dir of
that campaign), or a state dir itself.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from campaign_operator.api.campaign import RunKind, TrainingCampaignStatus
from campaign_operator.api.validation import SpecError

from .manifest import load_campaign_file
from .runner import state_dir_for
from .store import DB_NAME, Store, StoreError, remembered_state_dirs

LOCAL_ROOT = Path(".campaign")
"""Where `campaign run` keeps state without --state (relative to the working directory)."""


class NotFound(LookupError):
    """A reference that names no campaign state (bad input: the message says what was looked for)."""


def _has_state(path: Path) -> bool:
    return (path / DB_NAME).is_file()


def _local_dirs() -> list[Path]:
    root = LOCAL_ROOT
    if not root.is_dir():
        return []
    return sorted(p.resolve() for p in root.iterdir() if p.is_dir() and _has_state(p))


def known_state_dirs() -> list[Path]:
    """Every state dir on this machine we know of: ./.campaign/* and the index, each once."""
    return list(dict.fromkeys([*_local_dirs(), *remembered_state_dirs()]))


@dataclass(frozen=True)
class Entry:
    """One campaign state, as `campaign list` shows it."""

    dir: Path
    name: str
    status: TrainingCampaignStatus | None
    updated: datetime
    runner_alive: bool = False
    """A runner holds the state dir now (a campaign not finished without one is stopped)."""
    problem: str | None = None
    """Why the state could not be read (damaged, another schema): shown instead of the status."""

    @property
    def run(self) -> RunKind:
        return (self.status.run if self.status else None) or RunKind.FULL


def _updated(path: Path) -> datetime:
    """The newest write to the state (SQLite writes the -wal file first)."""
    times = [p.stat().st_mtime for p in (path / DB_NAME, path / f"{DB_NAME}-wal") if p.exists()]
    return datetime.fromtimestamp(max(times, default=0.0), UTC)


def read_entry(path: Path) -> Entry:
    updated = _updated(path)
    try:
        with Store(path, readonly=True) as store:
            status = store.status()
            manifest = store.manifest() or {}
            name = str((manifest.get("metadata") or {}).get("name") or path.name)
            lease = store.lease()
            return Entry(path, name, status, updated, lease is not None and lease.alive)
    except (StoreError, sqlite3.Error) as e:
        return Entry(path, path.name, None, updated, problem=" ".join(str(e).split())[:160])


def list_entries() -> list[Entry]:
    """Every known campaign state, most recently updated first."""
    return sorted((read_entry(p) for p in known_state_dirs()), key=lambda e: e.updated, reverse=True)


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def find_state_dir(ref: str) -> Path:
    """The state dir `ref` names: a state dir, a manifest file, or a campaign name. NotFound says
    what was looked for and what exists."""
    path = Path(ref)
    if path.is_dir():
        if _has_state(path):
            return path
        raise NotFound(f"{ref}: a directory without a campaign state (no {DB_NAME})")
    if path.is_file():
        return _for_manifest(ref)
    return _for_name(ref)


def _for_manifest(ref: str) -> Path:
    try:
        campaign = load_campaign_file(ref)
    except SpecError as e:
        raise NotFound(f"{ref}: not a campaign manifest ({'; '.join(e.problems)[:300]})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NotFound(f"{ref}: cannot be read ({e})") from None
    state = state_dir_for(campaign, None)
    if not _has_state(state):
        raise NotFound(
            f"{ref}: campaign {campaign.metadata.name} has no state in {state} yet "
            f"(`campaign run {ref}` creates it; a run with --state: pass that directory)"
        )
    return state


def _for_name(name: str) -> Path:
    local = LOCAL_ROOT / name
    if _has_state(local):
        return local
    matches = [p for p in remembered_state_dirs() if p.name == name or read_entry(p).name == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        where = ", ".join(_display(p) for p in matches)
        raise NotFound(f"campaign {name!r} has several state dirs ({where}): pass one of them")
    known = sorted({e.name for e in list_entries()})
    hint = f"known here: {', '.join(known)}" if known else "`campaign list` shows none on this machine"
    raise NotFound(f"{name}: no such manifest, state dir or campaign ({hint})")
