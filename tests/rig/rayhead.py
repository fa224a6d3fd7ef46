"""A real Ray head for the e2e tier: `ray start --head --block` on loopback with free ports, token
auth on and the dashboard up for the Jobs API.

On a loaded machine the raylet can die while Ray starts ("Timed out waiting for file
.../dashboard_agent_listen_port", or `--block` reporting a subprocess that exited): `start_ray_head`
retries a bounded number of times, each attempt with fresh ports and a fresh temp dir, stopping
every process of the failed attempt (its whole session: Ray's workers run in process groups of
their own) before the next one, and raises RayHeadError with every attempt's diagnostics after the
last.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import requests

from rig.controlplane import free_port

# requests lets these replace a session's own CA: the trainer's Kubernetes reporter would then
# distrust the test cluster's CA. A real cluster's pods do not have them either.
NOT_INHERITED = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class RayHeadError(RuntimeError):
    pass


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(entry))
    return out


@dataclass
class RayHead:
    address: str  # the dashboard / Jobs API
    token: str
    temp_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def diagnostics(self) -> str:
        """What to print when something went wrong: is the head alive, and its last words."""
        logs = [self.log_path, *sorted(self.temp_dir.glob("session_latest/logs/*.err"))]
        tails = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs if p.exists()
        )
        return f"ray start exit code: {self.process.poll()}\n{tails}"

    def jobs(self) -> list[dict[str, object]]:
        r = requests.get(f"{self.address}/api/jobs/", headers=self.headers(), timeout=10)
        r.raise_for_status()
        data: list[dict[str, object]] = r.json()
        return data

    def stop(self, grace: float = 60.0) -> None:
        """Stops every process of the head's session (SIGTERM, then SIGKILL after `grace` s) and
        removes its temp dir."""
        sid = self.process.pid
        for pid in session_members(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        deadline = time.monotonic() + 10
        while (left := session_members(sid)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _launch(ray: Path, env: Mapping[str, str]) -> RayHead:
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-e2e-", dir="/tmp"))  # short: Ray's socket paths
    token = secrets.token_hex(32)
    dashboard = free_port()
    run_env = {k: v for k, v in env.items() if k not in NOT_INHERITED and not k.startswith("RAY_")}
    run_env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    # Under `uv run pytest`, Ray notices uv among its ancestors and starts its workers with
    # `uv run` from their own directory, where no project is: every worker dies importing ray.
    run_env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    # On SIGTERM, `ray start --block` first asks the GCS to drain the node (for Ray Serve) and waits
    # up to 30 s for the raylet to finish; `stop` signals the GCS and raylet at the same moment, so
    # that wait always ran out: 30 s of nothing per stop. 0 tears the node down at once, as before.
    run_env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard,
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--metrics-export-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--ray-client-server-port": free_port(),
    }
    args = [
        str(ray),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        "--num-cpus=2",
        "--num-gpus=0",
        "--object-store-memory=300000000",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        *(f"{k}={v}" for k, v in ports.items()),
    ]
    log_path = temp_dir / "ray-start.log"
    with log_path.open("wb") as log:
        # Its own session, so a stop reaches exactly the processes this attempt started.
        proc = subprocess.Popen(
            args,
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return RayHead(f"http://127.0.0.1:{dashboard}", token, temp_dir, log_path, proc)


def _wait_ready(head: RayHead, timeout: float) -> None:
    """Up means a job really runs: the head's Jobs API answers before its agent registers
    ("No available agent to submit job")."""
    deadline = time.monotonic() + timeout
    while True:
        if head.process.poll() is not None:
            raise RayHeadError(f"ray start exited {head.process.returncode}:\n{head.diagnostics()}")
        try:
            r = requests.post(
                f"{head.address}/api/jobs/", json={"entrypoint": "true"}, headers=head.headers(), timeout=10
            )
            if r.status_code == 200:
                probe = r.json()["submission_id"]
                while time.monotonic() < deadline:
                    status = requests.get(
                        f"{head.address}/api/jobs/{probe}", headers=head.headers(), timeout=10
                    ).json()["status"]
                    if status == "SUCCEEDED":
                        return
                    if status in ("FAILED", "STOPPED"):
                        raise RayHeadError(f"the probe job ended {status}:\n{head.diagnostics()}")
                    time.sleep(0.5)
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RayHeadError(
                f"Ray's Jobs API did not come up within {timeout:.0f} s:\n{head.diagnostics()}"
            )
        time.sleep(1)


def start_ray_head(
    ray: Path,
    *,
    attempts: int = 3,
    ready_timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    log: TextIO = sys.stderr,
) -> RayHead:
    """A running Ray head, or RayHeadError naming every failed attempt."""
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        head = _launch(ray, os.environ if env is None else env)
        try:
            _wait_ready(head, ready_timeout)
            return head
        except BaseException as e:
            why = str(e) if isinstance(e, RayHeadError) else repr(e)
            head.stop(grace=30)
            if not isinstance(e, RayHeadError):
                raise
            failures.append(f"=== attempt {attempt}/{attempts}: {why}")
            if attempt < attempts:
                first = why.splitlines()[0] if why else ""
                print(
                    f"ray head: attempt {attempt}/{attempts} failed ({first}); stopped it, retrying", file=log
                )
    raise RayHeadError(f"the Ray head did not start in {attempts} attempts:\n" + "\n".join(failures))
