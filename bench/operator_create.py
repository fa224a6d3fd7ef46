"""Operator benchmarks against a real etcd + kube-apiserver (the test rig's control plane).

1. Creation: time for the operator (its own process, already running) to create all Trials of a
   2,000-trial campaign, against a plain client loop creating the same Trial objects one by one
   with the same client library, in the same run on the same apiserver. Prints the ratio
   (target <= 1.3).
2. Memory: the operator's peak RSS (VmHWM) while it creates and then holds (reconciles) a
   10,000-trial campaign (target <= 300 MiB).

Campaigns are suspended, so both measure the operator's own work (no jobs are launched).

    .venv/bin/python bench/operator_create.py [--trials 2000] [--hold-trials 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the rig lives with the tests

from campaign_operator.api import TrainingCampaign  # noqa: E402
from campaign_operator.kube.client import KubeClient  # noqa: E402
from campaign_operator.planner import CreateTrial, plan  # noqa: E402
from rig.controlplane import ControlPlane, free_port  # noqa: E402
from rig.versions import kuberay_crds, kuberay_version  # noqa: E402

GROUP_PATH = "/apis/training.campaign-operator.io/v1alpha1/namespaces/{ns}/{plural}"


def manifest(name: str, trials: int) -> dict[str, Any]:
    side = int(trials**0.5)
    while trials % side:
        side -= 1
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "maxTrials": max(trials, 10_000),
            "suspend": True,
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "sweep",
                    "sweep": {"grid": {"a": list(range(side)), "b": list(range(trials // side))}},
                }
            ],
        },
    }


def count(cp: ControlPlane, session: Any, ns: str) -> int:
    """Trials in a namespace (one campaign each): the apiserver counts the rest of a paged list for
    us, but only without a label selector."""
    path = GROUP_PATH.format(ns=ns, plural="campaigntrials")
    r = session.get(f"{cp.server}{path}?limit=1", timeout=30)
    if r.status_code != 200:
        return 0
    body = r.json()
    return len(body["items"]) + int(body["metadata"].get("remainingItemCount") or 0)


def new_namespace(cp: ControlPlane, name: str) -> str:
    cp.kubectl("create", "namespace", name)
    return name


async def client_loop(cp: ControlPlane, ns: str, spec: dict[str, Any]) -> tuple[float, int]:
    """The baseline: the same Trial objects, created one after another."""
    campaign = TrainingCampaign.model_validate({**spec, "metadata": {**spec["metadata"], "namespace": ns}})
    bodies = []
    for action in plan(campaign, [], datetime.now(UTC)).actions:
        if isinstance(action, CreateTrial):
            body = action.trial.to_wire()
            body.pop("status", None)
            bodies.append(body)
    client = await KubeClient.connect(str(cp.kubeconfig_path))
    try:
        t0 = time.perf_counter()
        for body in bodies:
            await client.create_trial(ns, body)
        return time.perf_counter() - t0, len(bodies)
    finally:
        await client.close()


def start_operator(cp: ControlPlane, ns: str, log: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "campaign_operator.k8s.main",
        "--kubeconfig", str(cp.kubeconfig_path), "-n", ns,
        "--metrics-port", str(free_port()), "--metrics-addr", "127.0.0.1",
        "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
        "--resync-seconds", "5",
    ]  # fmt: skip
    env = {k: v for k, v in cp.env().items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(4)  # imports and the first watch: not part of what is measured
    if proc.poll() is not None:
        raise SystemExit(f"operator exited:\n{log.read_text()[-3000:]}")
    return proc


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, in MiB, from /proc (VmHWM is the kernel's high-water mark)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def create_campaign(cp: ControlPlane, session: Any, ns: str, body: dict[str, Any]) -> None:
    path = GROUP_PATH.format(ns=ns, plural="trainingcampaigns")
    r = session.post(f"{cp.server}{path}", json={**body, "metadata": {**body["metadata"], "namespace": ns}})
    if r.status_code != 201:
        raise SystemExit(f"creating the campaign: HTTP {r.status_code} {r.text[:500]}")


def operator_create(
    cp: ControlPlane, session: Any, ns: str, spec: dict[str, Any], n: int, log: Path
) -> float:
    proc = start_operator(cp, ns, log)
    try:
        t0 = time.perf_counter()
        create_campaign(cp, session, ns, spec)
        while count(cp, session, ns) < n:
            if proc.poll() is not None:
                raise SystemExit(f"operator exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def hold(cp: ControlPlane, session: Any, ns: str, n: int, seconds: float, log: Path) -> dict[str, float]:
    proc = start_operator(cp, ns, log)
    try:
        _, baseline = rss_mib(proc.pid)
        spec = manifest("hold", n)
        t0 = time.perf_counter()
        create_campaign(cp, session, ns, spec)
        peak_seen = 0.0
        created_at = None
        path = f"{cp.server}{GROUP_PATH.format(ns=ns, plural='trainingcampaigns')}/hold"
        while True:
            rss, hwm = rss_mib(proc.pid)
            peak_seen = max(peak_seen, rss)
            if created_at is None:
                status = session.get(path, timeout=30).json().get("status") or {}
                if (status.get("trials") or {}).get("total") == n and count(cp, session, ns) == n:
                    created_at = time.perf_counter()
            elif time.perf_counter() - created_at > seconds:
                break
            time.sleep(0.2)
        return {
            "baseline_rss_mib": baseline,
            "peak_rss_mib": max(hwm, peak_seen),
            "final_rss_mib": rss,
            "create_seconds": created_at - t0,
            "held_seconds": seconds,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--hold-trials", type=int, default=10_000)
    parser.add_argument("--hold-seconds", type=float, default=20.0, help="reconciling after all exist")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-operator-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    crds = kuberay_crds(kuberay_version()) + sorted((REPO / "crds").glob("*.yaml"))
    with ControlPlane(controller_manager=False) as cp:
        cp.install_crds(crds)
        session = cp.session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the cluster's CA
        spec = manifest("create", args.trials)

        loop_s, n = asyncio.run(client_loop(cp, new_namespace(cp, "bench-loop"), spec))
        op_s = operator_create(
            cp, session, new_namespace(cp, "bench-operator"), spec, n, work / "operator-create.log"
        )
        held = hold(
            cp,
            session,
            new_namespace(cp, "bench-hold"),
            args.hold_trials,
            args.hold_seconds,
            work / "operator-hold.log",
        )

    figures = {
        "trials": n,
        "client_loop_seconds": round(loop_s, 2),
        "operator_seconds": round(op_s, 2),
        "ratio_operator_over_loop": round(op_s / loop_s, 3),
        "ratio_target": 1.3,
        "hold_trials": args.hold_trials,
        **{k: round(v, 1) for k, v in held.items()},
        "peak_rss_target_mib": 300,
        "cpus": os.cpu_count(),
    }
    print(
        f"create {n} trials: client loop {loop_s:.2f}s, operator {op_s:.2f}s,"
        f" ratio {op_s / loop_s:.3f} (target <= 1.3)"
    )
    print(
        f"hold {args.hold_trials} trials: operator peak RSS {figures['peak_rss_mib']} MiB"
        f" (baseline {figures['baseline_rss_mib']} MiB, created in {figures['create_seconds']}s;"
        " target <= 300 MiB)"
    )
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
