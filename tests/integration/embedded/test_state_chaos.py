"""Embedded mode under faults, through the real `campaign` CLI on a real local Ray and real SQLite:

* a truncated, garbage or 0-byte state.db: `status`, `results`, `report` and `run` each say so in one
  line with what to do, exit non-zero, print no traceback and change nothing;
* `run` never starts a campaign over on top of earlier work without `--restart`; `--restart` does;
* the runner SIGKILLed again and again mid-campaign leaves no process behind (checked in the process
  table, by a mark in the environment every process it started inherits), and the next `run`
  resumes to exact final counts with no trial trained twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
CAMPAIGN = str(Path(sys.executable).parent / "campaign")
MARK = "CAMPAIGN_TEST_RUN"
"""Set on each runner this module starts; every process below it (Ray's too) inherits it."""


def manifest(name: str, epochs: int, samples: int, lrs: list[float]) -> str:
    return json.dumps(
        {
            "apiVersion": "training.campaign-operator.io/v1alpha1",
            "kind": "TrainingCampaign",
            "metadata": {"name": name},
            "spec": {
                "template": {
                    "task": "regression",
                    "dataset": {"synthetic": {"samples": samples, "seed": 1}},
                    "hyperparameters": {"hidden_dims": [64, 64]},
                    "epochs": epochs,
                    "batchSize": 32,
                },
                "phases": [{"name": "grid", "sweep": {"grid": {"lr": lrs}}}],
            },
        }
    )


def cli(*args: str, timeout: float = 300, mark: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, MARK: mark or uuid.uuid4().hex}
    return subprocess.run(
        [CAMPAIGN, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def query(state: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def trials(state: Path) -> dict[str, dict[str, Any]]:
    return {name: json.loads(doc)["status"] for name, doc in query(state, "SELECT name, doc FROM trials")}


def attempts(state: Path) -> dict[str, int]:
    """Attempts recorded per trial (starts and resumes)."""
    return dict(query(state, "SELECT trial, count(*) FROM attempts GROUP BY trial"))


def progress(state: Path, trial: str) -> list[dict[str, Any]]:
    path = state / "trials" / trial / "attempt-1.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def marked(mark: str) -> list[str]:
    """Live processes (not zombies) whose environment carries `mark`: what a runner left behind."""
    needle = f"{MARK}={mark}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            out.append(f"{entry} {cmd[:100]}")
    return out


def kill_marked(mark: str) -> None:
    for line in marked(mark):
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


# -- a damaged state.db, for each command ------------------------------------------------------

SMALL = manifest("small", epochs=1, samples=256, lrs=[0.01, 0.02])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A small campaign run to the end by the real CLI: its manifest and state dir."""
    root = tmp_path_factory.mktemp("finished")
    path = root / "small.yaml"
    path.write_text(SMALL)
    state = root / "state"
    mark = uuid.uuid4().hex
    try:
        done = cli("run", str(path), "--state", str(state), "--quiet", mark=mark)
    finally:
        kill_marked(mark)
    assert done.returncode == 0, done.stdout + done.stderr
    yield path, state


def _truncate(db: Path) -> None:
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)


DAMAGE = {
    "truncated": _truncate,
    "garbage": lambda db: db.write_bytes(os.urandom(max(4096, db.stat().st_size))),
    "empty": lambda db: db.write_bytes(b""),
}


def damaged_copy(finished: tuple[Path, Path], tmp_path: Path, damage: str) -> Path:
    state = tmp_path / "state"
    shutil.copytree(finished[1], state)
    assert not (state / "state.db-wal").exists()  # a clean exit checkpointed everything into state.db
    DAMAGE[damage](state / "state.db")
    return state


def files(state: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(state)): p.read_bytes()
        for p in sorted(state.rglob("*"))
        if p.is_file() and p.name not in ("runner.lock", "state.db-shm", "state.db-wal")
    }


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["status", "results", "report", "run"])
def test_a_damaged_state_file_is_one_line_that_says_what_to_do(
    finished: tuple[Path, Path], tmp_path: Path, command: str, damage: str
) -> None:
    state = damaged_copy(finished, tmp_path, damage)
    before = files(state)
    report = tmp_path / "report.html"
    args = {
        "status": ["status", "--state", str(state)],
        "results": ["results", "--state", str(state), "-o", "csv"],
        "report": ["report", "--state", str(state), "-o", str(report)],
        "run": ["run", str(finished[0]), "--state", str(state)],
    }[command]
    mark = uuid.uuid4().hex
    proc = cli(*args, mark=mark)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # a damaged state dir: infrastructure
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert f"{state / 'state.db'}:" in lines[0]
    assert "--restart" in lines[0]  # what to do
    assert files(state) == before  # nothing repaired, nothing run, no progress written
    assert not report.exists()
    assert not marked(mark)  # `run` refused before starting Ray


# -- no silent start-over; --restart starts over --------------------------------------------------


def test_run_refuses_to_start_over_and_restart_does(finished: tuple[Path, Path], tmp_path: Path) -> None:
    path = finished[0]
    state = damaged_copy(finished, tmp_path, "empty")
    earlier = files(state)
    names = sorted(trials(finished[1]))

    refused = cli("run", str(path), "--state", str(state))
    assert refused.returncode == 3 and "is empty (0 bytes)" in refused.stderr, refused.stderr
    assert files(state) == earlier

    # Progress files with no state.db at all are earlier work too.
    (state / "state.db").unlink()
    refused = cli("run", str(path), "--state", str(state))
    assert refused.returncode == 3 and "no state.db" in refused.stderr, refused.stderr
    assert not (state / "state.db").exists()

    mark = uuid.uuid4().hex
    try:
        again = cli("run", str(path), "--state", str(state), "--restart", mark=mark)
    finally:
        kill_marked(mark)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "campaign small Succeeded" in again.stdout
    [discarded] = state.glob("discarded-*")
    assert f"the earlier state is in {discarded}" in again.stdout + again.stderr
    # The earlier run's files moved aside untouched; the campaign really ran again from scratch.
    assert files(discarded) == {k: v for k, v in earlier.items() if k != "state.db"}
    final = trials(state)
    assert sorted(final) == names
    assert {s["state"] for s in final.values()} == {"Succeeded"}
    assert dict(query(state, "SELECT trial, count(*) FROM attempts GROUP BY trial")) == dict.fromkeys(
        names, 1
    )
    for name in names:
        starts = [x for x in progress(state, name) if x["type"] == "start"]
        assert [x["resume"] for x in starts] == [False], (name, starts)
        assert progress(state, name) != earlier.get(f"trials/{name}/attempt-1.jsonl")

    # Resuming the finished campaign without --restart starts nothing.
    resumed = cli("run", str(path), "--state", str(state))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert dict(query(state, "SELECT trial, count(*) FROM attempts GROUP BY trial")) == dict.fromkeys(
        names, 1
    )


# -- SIGKILL loop ------------------------------------------------------------------------------

EPOCHS = 5
LOOP = manifest("killloop", epochs=EPOCHS, samples=6000, lrs=[0.01, 0.02, 0.03, 0.04])


def _epochs_done(state: Path) -> int:
    if not (state / "state.db").exists():
        return 0
    with contextlib.suppress(sqlite3.OperationalError):
        return sum(int(s.get("epoch", 0)) for s in trials(state).values())
    return 0


def test_sigkill_loop_leaves_no_process_and_resumes_to_exact_counts(tmp_path: Path) -> None:
    path = tmp_path / "killloop.yaml"
    path.write_text(LOOP)
    state = tmp_path / "state"
    args = [CAMPAIGN, "run", str(path), "--state", str(state), "--max-parallel", "2", "--quiet"]
    marks: list[str] = []
    kills = 0
    try:
        # Kill points: mid-way through the first trials, then after more epochs each time.
        for target in (2, 7, 12):
            mark = uuid.uuid4().hex
            marks.append(mark)
            runner = subprocess.Popen(
                args,
                cwd=REPO,
                env={**os.environ, MARK: mark},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 300
            while _epochs_done(state) < target:
                if runner.poll() is not None:
                    pytest.fail(f"the runner ended before kill point {target}: {runner.communicate()[0]!r}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no {target} epochs within 300 s: {trials(state)}")
                time.sleep(0.1)
            running = [n for n, s in trials(state).items() if s["state"] == "Running"]
            assert running, "nothing was running at the kill"
            assert len(marked(mark)) > 3  # the runner, its watchdog, Ray's daemons and workers
            runner.send_signal(signal.SIGKILL)
            runner.wait(timeout=30)
            kills += 1
            # Everything the runner started dies with it: Ray's GCS, raylet, agents, workers.
            deadline = time.monotonic() + 20
            while (left := marked(mark)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not left, f"after SIGKILL #{kills} these outlived the runner:\n" + "\n".join(left)

        mark = uuid.uuid4().hex
        marks.append(mark)
        final_run = cli("run", str(path), "--state", str(state), "--max-parallel", "2", mark=mark)
        assert final_run.returncode == 0, final_run.stdout + final_run.stderr
        assert "campaign killloop Succeeded" in final_run.stdout
    finally:
        for mark in marks:
            kill_marked(mark)

    final = trials(state)
    assert len(final) == 4 and kills == 3
    assert {s["state"] for s in final.values()} == {"Succeeded"}
    assert all(s["attempt"] == 1 for s in final.values())  # a runner crash is not a trial failure
    counts = json.loads(query(state, "SELECT value FROM meta WHERE key = 'status'")[0][0])["trials"]
    assert (counts["total"], counts["succeeded"]) == (4, 4)
    starts = dict(query(state, "SELECT trial, count(*) FROM attempts WHERE kind = 'start' GROUP BY trial"))
    assert starts == dict.fromkeys(final, 1)
    resumes = dict(query(state, "SELECT trial, count(*) FROM attempts WHERE kind = 'resume' GROUP BY trial"))
    assert resumes and all(n <= kills for n in resumes.values())
    for name in final:
        lines = progress(state, name)
        begun = [x["resume"] for x in lines if x["type"] == "start"]
        epochs = [x["epoch"] for x in lines if x["type"] == "epoch"]
        # Trained once: one fresh start, then only resumes of the same attempt (one per runner restart
        # that found it Running); at most the epoch in flight at each kill is trained again.
        assert begun == [False] + [True] * resumes.get(name, 0), (name, begun)
        assert sorted(set(epochs)) == list(range(1, EPOCHS + 1)), (name, epochs)
        assert len(epochs) <= EPOCHS + resumes.get(name, 0), (name, epochs)
        assert [x["type"] for x in lines].count("outcome") == 1, name
