"""e2e fixtures: a real local Ray head (`ray start --head`, token auth on, dashboard for the Jobs
API) on loopback with free ports, stopped at teardown."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from rig.controlplane import free_port

VENV_BIN = Path(sys.executable).parent
# requests lets these replace a session's own CA: the trainer's Kubernetes reporter would then
# distrust the test cluster's CA. A real cluster's pods do not have them either.
NOT_INHERITED = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


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
        r = requests.get(
            f"{self.address}/api/jobs/", headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        r.raise_for_status()
        data: list[dict[str, object]] = r.json()
        return data


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    ray = VENV_BIN / "ray"
    if not ray.exists():
        pytest.fail(f"no `ray` next to {sys.executable}: install the locked environment (ray[default])")
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-e2e-", dir="/tmp"))  # short: Ray's socket paths
    token = secrets.token_hex(32)
    dashboard = free_port()
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith("RAY_")}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    # Under `uv run pytest`, Ray notices uv among its ancestors and starts its workers with
    # `uv run` from their own directory, where no project is: every worker dies importing ray.
    env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
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
        # Its own session, so teardown can stop exactly the processes this fixture started.
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    head = RayHead(f"http://127.0.0.1:{dashboard}", token, temp_dir, log_path, proc)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                # Up means a job really runs: the head's Jobs API answers before its agent registers
                # ("No available agent to submit job").
                r = requests.post(
                    f"{head.address}/api/jobs/",
                    json={"entrypoint": "true"},
                    headers=head.headers(),
                    timeout=10,
                )
                if r.status_code == 200:
                    probe = r.json()["submission_id"]
                    while requests.get(
                        f"{head.address}/api/jobs/{probe}", headers=head.headers(), timeout=10
                    ).json()["status"] not in ("SUCCEEDED", "FAILED", "STOPPED"):
                        time.sleep(0.5)
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Ray's Jobs API did not come up:\n{head.diagnostics()}")
            time.sleep(1)
        yield head
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
