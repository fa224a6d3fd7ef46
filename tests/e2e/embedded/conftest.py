"""Shared pieces of the embedded-mode end-to-end tests: the real `campaign` CLI in a subprocess,
a real local Ray, real training (tiny data, few epochs)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
CAMPAIGN = str(Path(sys.executable).parent / "campaign")


def campaign_cmd(*args: str) -> list[str]:
    return [CAMPAIGN, *args]


def run_cli(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(campaign_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"campaign {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def run_manifest(text: str, tmp_path: Path, *flags: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`campaign run -q --max-parallel 2 FLAGS` of the manifest `text` in `tmp_path`, with a state
    dir and a state index of its own there (run twice, it resumes the same state): (state, run)."""
    manifest, state = tmp_path / "manifest.yaml", tmp_path / "state"
    manifest.write_text(text)
    env = {**os.environ, "CAMPAIGN_STATE_INDEX": str(tmp_path / "index")}
    proc = subprocess.run(
        [CAMPAIGN, "run", "-q", "--state", str(state), "--max-parallel", "2", *flags, str(manifest)],
        capture_output=True,
        text=True,
        timeout=560,  # small work; a loaded 2-core CI machine makes Ray workers slow to start
        cwd=tmp_path,
        env=env,
    )
    return state, proc


def query(state: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read-only look into the runner's store (what `campaign status` does too). While a runner is
    still creating the database (schema, switch to WAL) a reader can be refused: try again."""
    for attempt in range(20):
        try:
            db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
            try:
                return db.execute(sql, params).fetchall()
            finally:
                db.close()
        except sqlite3.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def trial_docs(state: Path) -> dict[str, dict[str, Any]]:
    return {name: json.loads(doc) for name, doc in query(state, "SELECT name, doc FROM trials")}


def progress_lines(state: Path, trial: str, attempt: int = 1) -> list[dict[str, Any]]:
    path = state / "trials" / trial / f"attempt-{attempt}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _start_time(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> set[tuple[int, str]]:
    """Every live process below `pid` (Ray's daemons and workers that a SIGKILLed runner leaves),
    as (pid, start time) so a recycled pid is never mistaken for one of them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {(p, t) for p in found if (t := _start_time(p)) is not None}


def running(procs: set[tuple[int, str]]) -> list[str]:
    """Those of `procs` still alive (not zombies), with their command lines."""
    out = []
    for pid, started in procs:
        if _start_time(pid) != started:
            continue
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = (
                (Path("/proc") / str(pid) / "cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(f"{pid} {cmd[:80]}")
    return out


def kill_all(procs: set[tuple[int, str]]) -> None:
    for pid, started in procs:
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


DEMO = REPO / "examples" / "demo.yaml"


@pytest.fixture(scope="session")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo campaign, run once to completion; the report and results tests read its state."""
    state = tmp_path_factory.mktemp("demo") / "state"
    proc = run_cli("run", str(DEMO), "--state", str(state), timeout=400)
    assert "campaign demo Succeeded" in proc.stdout, proc.stdout + proc.stderr
    yield state
