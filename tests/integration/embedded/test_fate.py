"""The runner's watchdog (executors/fate.py) without Ray: when its runner is SIGKILLed it kills what the
runner left, both the processes carrying the runner's tag and descendants it saw (even with a cleared
environment and reparented away), and leaves everything else alone; on a clean exit it is gone too.
(test_state_chaos.py checks the same with a real runner and Ray's real process tree.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaign_operator.executors import fate

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

# A stand-in runner: starts the watchdog, then (like ray.init) a child that inherits the tag and an
# untagged one with a child of its own; it writes their pids for the test.
RUNNER = """
import os, subprocess, sys, time
from campaign_operator.executors import fate
out = sys.argv[1]
tag = fate.runner_tag()
env = {**os.environ, fate.TAG_ENV: tag}
tagged = subprocess.Popen(["sleep", "600"], env=env)
# Untagged, its child without any environment (as an agent whose title overwrote it): found only
# because the watchdog saw them below the runner.
hidden = subprocess.Popen(["sh", "-c", "env -i sleep 601 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
hidden_pid = int(hidden.stdout.readline())
with open(out, "w") as f:
    f.write(f"{fate.watchdog_pid()} {tagged.pid} {hidden_pid}")
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def start_runner(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    out = tmp_path / "pids"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(out)])
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().strip()):
        assert runner.poll() is None and time.monotonic() < deadline, "the stand-in runner did not start"
        time.sleep(0.1)
    return runner, [int(x) for x in out.read_text().split()]


def test_what_a_sigkilled_runner_left_is_killed_and_nothing_else(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "602"], start_new_session=True)
    runner, (watchdog, tagged, hidden) = start_runner(tmp_path)
    try:
        assert Path(f"/proc/{hidden}/environ").read_bytes() == b""  # nothing to recognise it by
        time.sleep(fate.LOOK_EVERY_S * 1.5 + 0.5)  # the watchdog has looked at the tree since
        assert all(alive(p) for p in (watchdog, tagged, hidden))
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        assert wait_gone([tagged, hidden, watchdog], timeout=10) == []
        assert alive(bystander.pid)
    finally:
        for pid in (tagged, hidden, watchdog):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        bystander.kill()
        bystander.wait()


def test_the_watchdog_ends_with_a_runner_that_exits_normally(tmp_path: Path) -> None:
    runner, (watchdog, tagged, hidden) = start_runner(tmp_path)
    try:
        runner.send_signal(signal.SIGTERM)  # default action: exit; the pipe closes like on any exit
        runner.wait(timeout=30)
        assert wait_gone([watchdog, tagged], timeout=10) == []
    finally:
        for pid in (tagged, hidden, watchdog):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_one_watchdog_per_process() -> None:
    first = fate.runner_tag()
    pid = fate.watchdog_pid()
    assert fate.runner_tag() == first and fate.watchdog_pid() == pid
    assert first.startswith(f"{os.getpid()}-")
