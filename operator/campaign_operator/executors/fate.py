"""Ray's processes share the runner's fate, also when the runner is SIGKILLed.

What Ray does by itself (measured with Ray 2.60 on Linux): the processes `ray.init` starts as the
driver's children (GCS, raylet, dashboard, log monitor, monitor) get PR_SET_PDEATHSIG=SIGKILL and die
with it, and the task workers exit within about a second of losing their raylet. The raylet's own
children, DashboardAgent and RuntimeEnvAgent, notice the raylet is gone but then hang in their exit
path (they try to report the death to the dead GCS) for a minute or more. Making the runner a child
subreaper does not help: a SIGKILLed subreaper's orphans go to the next subreaper or init, and the
agents are the raylet's children anyway, beyond any PDEATHSIG we could set.

So the runner starts one small watchdog process (this file, run by path with the standard library
only) before Ray starts. The watchdog holds the read end of a pipe whose only writer is the runner:
when the runner dies, however it dies, the kernel closes the pipe. Until then the watchdog notes the
runner's descendants every few seconds (pid and start time, from /proc); on EOF it SIGKILLs those
still alive, every process whose environment carries this runner's tag (`CAMPAIGN_RAY_FATE=<tag>`,
set while Ray starts, so the raylet hands it on to its agents and workers, including one started
after the last look), and their children, until a scan finds none. (`SPT_NOENV=1` while Ray starts
keeps Ray's process titles from overwriting that environment in /proc.) On a normal exit it finds
nothing (ray.shutdown() stopped Ray) or only the stragglers that shutdown leaves. The watchdog runs
in its own session, so a Ctrl-C or a signal to the runner's process group does not reach it before
it can clean up.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

TAG_ENV = "CAMPAIGN_RAY_FATE"
"""The environment variable that marks the processes started for one runner."""

_watchdog: subprocess.Popen[bytes] | None = None
_tag: str | None = None


def runner_tag() -> str:
    """The tag of this process's Ray processes; starts the watchdog on first use (or when it died)."""
    global _watchdog, _tag
    if _watchdog is not None and _watchdog.poll() is None and _tag is not None:
        return _tag
    tag = f"{os.getpid()}-{secrets.token_hex(8)}"
    env = {k: v for k, v in os.environ.items() if k != TAG_ENV}
    _watchdog = subprocess.Popen(
        [sys.executable, "-I", str(Path(__file__).resolve()), tag, str(os.getpid())],
        stdin=subprocess.PIPE,  # the runner never writes: the pipe closes when it dies
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    _tag = tag
    return tag


def watchdog_pid() -> int | None:
    return None if _watchdog is None else _watchdog.pid


Proc = tuple[int, str]
"""A process as (pid, start time): a pid reused by an unrelated process never matches."""

LOOK_EVERY_S = 2.0


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(ppid, state, start time) of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0].decode(), fields[19].decode()


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:  # gone, a zombie, or not ours to read
        return False


def _pids() -> list[str]:
    """The process table's entries; none where there is no /proc (not Linux: no fate-sharing)."""
    try:
        return os.listdir("/proc")
    except OSError:
        return []


def _table() -> dict[int, tuple[int, str, str]]:
    out = {}
    for entry in _pids():
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            out[int(entry)] = st
    return out


def _below(roots: set[int], table: dict[int, tuple[int, str, str]]) -> set[int]:
    """Every process in `table` below one of `roots` (not the roots themselves)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def descendants(pid: int) -> set[Proc]:
    table = _table()
    return {(p, table[p][2]) for p in _below({pid}, table)}


def tagged(tag: str, exclude: int | None = None) -> list[int]:
    """Live processes whose environment carries `tag`."""
    needle = f"{TAG_ENV}={tag}".encode()
    return [int(e) for e in _pids() if e.isdigit() and int(e) != exclude and _environ_has(int(e), needle)]


def kill_left(tag: str, known: set[Proc], rounds: int = 50, pause: float = 0.1) -> int:
    """SIGKILLs what a dead runner left: the `known` processes still alive, the tagged ones, and
    their children, until a scan finds none (a dying raylet may still start one); how many."""
    me = os.getpid()
    killed = 0
    for _ in range(rounds):
        table = _table()
        victims = {p for p, started in known if p in table and table[p][2] == started}
        victims |= set(tagged(tag, exclude=me))
        victims |= _below(victims, table)
        victims = {p for p in victims if p != me and table.get(p, (0, "Z", ""))[1] != "Z"}
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(pause)
    return killed


def _watch(fd: int, runner: int, every: float = LOOK_EVERY_S) -> set[Proc]:
    """Blocks until the runner's end of the pipe closes; what was last seen below the runner."""
    known: set[Proc] = set()
    while True:
        ready, _, _ = select.select([fd], [], [], every)
        if ready:
            try:
                if not os.read(fd, 4096):
                    return known
            except InterruptedError:
                continue
        else:
            known |= descendants(runner)
            known = {(p, t) for p, t in known if (st := _stat(p)) is not None and st[2] == t}


def main(argv: list[str]) -> int:
    """The watchdog: block until the runner is gone, then kill what it left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    tag, runner = argv[1], int(argv[2])
    known = _watch(sys.stdin.fileno(), runner)
    kill_left(tag, known)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
