"""The e2e Ray-head fixture's start-up (rig/rayhead.py): a head that dies while starting, as the raylet
does on a loaded machine, is stopped cleanly (nothing of it left running) and started again; after
the last attempt the failure is loud and names every attempt."""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path

import pytest

from rig.rayhead import RayHeadError, start_ray_head

pytestmark = pytest.mark.e2e

RAY = Path(sys.executable).parent / "ray"
DIES = "Timed out waiting for file /tmp/ray/session_x/dashboard_agent_listen_port (the raylet died)"


def flaky_ray(tmp_path: Path, failures: int) -> Path:
    """A `ray` whose first `failures` starts die as the raylet does at start-up, leaving a child of
    theirs running (as a half-started head does); later starts are the real `ray`."""
    script = tmp_path / "ray"
    script.write_text(
        f"""#!/bin/sh
n=$(cat {tmp_path}/starts 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {tmp_path}/starts
if [ $n -le {failures} ]; then
    sleep 600 & echo $! >> {tmp_path}/leftovers
    sleep 1; echo "{DIES}" >&2; exit 1
fi
exec {RAY} "$@"
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def leftovers(tmp_path: Path) -> list[int]:
    path = tmp_path / "leftovers"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_a_head_that_dies_starting_is_stopped_and_started_again(tmp_path: Path) -> None:
    log = io.StringIO()
    head = start_ray_head(flaky_ray(tmp_path, failures=1), attempts=3, log=log)
    try:
        assert (tmp_path / "starts").read_text().strip() == "2"
        assert "attempt 1/3 failed (ray start exited 1" in log.getvalue()
        [left] = leftovers(tmp_path)
        assert not alive(left), "the failed attempt's processes were not stopped"
        assert head.process.poll() is None
        assert head.jobs()  # the probe job ran: a job really runs on this head
    finally:
        head.stop()
    assert not head.temp_dir.exists()


def test_after_the_last_attempt_the_failure_is_loud(tmp_path: Path) -> None:
    log = io.StringIO()
    with pytest.raises(RayHeadError) as err:
        start_ray_head(flaky_ray(tmp_path, failures=99), attempts=3, ready_timeout=60, log=log)
    message = str(err.value)
    assert message.startswith("the Ray head did not start in 3 attempts:")
    for n in (1, 2, 3):
        assert f"=== attempt {n}/3: ray start exited 1" in message
    assert message.count(DIES) == 3  # each attempt's own last words
    assert log.getvalue().count("retrying") == 2
    assert (tmp_path / "starts").read_text().strip() == "3"
    assert len(leftovers(tmp_path)) == 3 and not any(alive(p) for p in leftovers(tmp_path))
