"""Embedded time to first metric: `campaign run` of a one-trial campaign, from launch to the trial's
first epoch line, and where that time goes (issue 12's target: <= 15 s on a 2-core machine).

Each run is a fresh process with its own local Ray and a fresh state dir, as a user's first
`campaign run`. The stages, from the runner's progress file and its output:
  launch -> start line: Ray start-up, the task's worker process and its import of the trainer's
                        harness (torch, Lightning, Ray Train), after which the worker writes it;
  start line -> first epoch: Ray Train's set-up for the trial, the task's data and model, one epoch;
and launch -> exit for the whole (small) campaign. Prints medians over --repeat runs.

In the same run, each in a fresh process, its two big parts alone (the peers of the total):
  Ray start alone: `init_ray` as the runner calls it, then one empty task on a fresh worker, with the
                   CPU seconds each of Ray's processes spent (its Python agents are most of it),
                   and as its peer Ray started the old way (`ray.init(address="local")`, which
                   also starts the autoscaler monitor and the log monitor), as a ratio;
  harness import alone: `import campaign_trainer.harness`, wall and CPU seconds, and the parts of
                   it `python -X importtime` attributes to torch, torch._dynamo (imported by
                   Lightning), scipy.signal (imported by torchmetrics), pandas; then ray.train.
On a loaded machine wall seconds say how busy it was; CPU seconds do not, and on an idle machine a
single-threaded import takes about its CPU seconds: they are the idle estimate. The load average is
printed with every figure.

    python bench/first_metric.py [--repeat 3] [--parts-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

MANIFEST = {
    "apiVersion": "training.campaign-operator.io/v1alpha1",
    "kind": "TrainingCampaign",
    "metadata": {"name": "first"},
    "spec": {
        "template": {
            "task": "regression",
            "dataset": {"synthetic": {"samples": 512, "seed": 1}},
            "hyperparameters": {"hidden_dims": [16]},
            "epochs": 3,
            "batchSize": 64,
            "resources": {"cpu": 1},
        },
        "phases": [{"name": "one"}],
    },
}


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def first_epoch_lines(state: Path) -> tuple[float, float] | None:
    """(start line time, first epoch line time) of the trial's first attempt, once both exist."""
    for path in state.glob("trials/*/attempt-1.jsonl"):
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        start = next((x for x in lines if x["type"] == "start"), None)
        epoch = next((x for x in lines if x["type"] == "epoch"), None)
        if start and epoch:
            return _time(start["time"]), _time(epoch["time"])
    return None


def one_run(work: Path) -> dict[str, float]:
    manifest = work / "first.yaml"
    manifest.write_text(yaml.safe_dump(MANIFEST))
    state = work / "state"
    campaign = Path(sys.executable).parent / "campaign"
    launched = time.time()
    proc = subprocess.Popen(
        [str(campaign), "run", str(manifest), "--state", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=900)
    ended = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"campaign run exited {proc.returncode}: {err[-2000:]}")
    lines = first_epoch_lines(state)
    if lines is None:
        raise SystemExit("the trial reported no epoch")
    start, epoch = lines
    return {
        "to_start_line": start - launched,
        "start_to_first_epoch": epoch - start,
        "to_first_metric": epoch - launched,
        "whole_run": ended - launched,
    }


RAY_START_ALONE = """
import json, os, sys, time
t0 = time.time()
from campaign_operator.executors.local import init_ray
init_ray(2, 0, 3, 2**30)  # three tries, as the runner (its start can miss a deadline under load)
t1 = time.time()
import ray
ray.get(ray.remote(num_cpus=1)(lambda: None).remote())
t2 = time.time()
print(json.dumps({"init_ray": t1 - t0, "first_task": t2 - t1, "pid": os.getpid()}))
sys.stdout.flush()
input()  # the parent reads our children's CPU seconds while they still run
ray.shutdown()
"""

RAY_START_OLD = """
import json, logging, os, time
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
t0 = time.time()
import ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
         logging_level=logging.ERROR, object_store_memory=256 * 1024 * 1024, _memory=2**30)
t1 = time.time()
ray.get(ray.remote(num_cpus=1)(lambda: None).remote())
print(json.dumps({"ray.init(local)": time.time() - t0, "first_task": time.time() - t1}))
ray.shutdown()
"""
"""The peer: Ray as init_ray started it before (ray.init(address="local"): with the autoscaler
monitor and the log monitor)."""

PROCESS_KINDS = (
    ("gcs_server", "GCS"),
    ("raylet", "raylet"),
    ("log_monitor.py", "log monitor"),
    ("monitor.py", "autoscaler monitor"),
    ("dashboard.py", "dashboard (API server)"),
    ("DashboardAgent", "dashboard agent"),
    ("dashboard/agent.py", "dashboard agent"),
    ("RuntimeEnvAgent", "runtime-env agent"),
    ("runtime_env", "runtime-env agent"),
    ("ray::", "workers"),
    ("default_worker", "workers"),
)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _kind(pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return next((name for key, name in PROCESS_KINDS if key in cmd), "other")


def ray_start_alone() -> dict[str, float]:
    """Ray's start and first task in a fresh process, and each Ray process's CPU seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RAY_START_ALONE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    timing = json.loads(proc.stdout.readline())
    cpu: dict[str, float] = {}
    for pid in _descendants(timing["pid"]):
        try:
            kind = _kind(pid, timing["pid"])
            cpu[kind] = cpu.get(kind, 0.0) + _cpu_seconds(pid)
        except OSError:
            continue
    proc.communicate("\n", timeout=120)
    out = {"init_ray": timing["init_ray"], "first_task": timing["first_task"]}
    out.update({f"cpu {k}": v for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])})
    out["cpu all of Ray"] = sum(cpu.values())
    return out


def ray_start_old() -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", RAY_START_OLD], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:  # a loaded machine can make Ray miss its start deadline
        return {"ray.init(local)": float("nan"), "first_task": float("nan")}
    figures: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return figures


HARNESS_IMPORT_ALONE = """
import json, time
w, c = time.time(), time.process_time()
import campaign_trainer.harness
w1, c1 = time.time(), time.process_time()
import ray.train, ray.train.torch
w2, c2 = time.time(), time.process_time()
print(json.dumps({"harness wall": w1 - w, "harness cpu": c1 - c,
                  "ray.train wall": w2 - w1, "ray.train cpu": c2 - c1}))
"""

IMPORT_PARTS = ("torch", "torch._dynamo", "scipy.signal", "pandas", "lightning")


def _import_parts(importtime: str) -> dict[str, float]:
    """Cumulative seconds of the named modules from `-X importtime` (first import of each)."""
    parts: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if name in IMPORT_PARTS and name not in parts and cumulative.strip().isdigit():
            parts[name] = int(cumulative) / 1e6
    return parts


def harness_import_alone() -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", HARNESS_IMPORT_ALONE],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    out: dict[str, float] = json.loads(proc.stdout)
    # As CPU seconds by their share of the import's wall time: comparable across loads.
    share = out["harness cpu"] / out["harness wall"]
    out.update({f"of which {k} (cpu)": v * share for k, v in _import_parts(proc.stderr).items()})
    return out


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _line(label: str, figures: dict[str, float]) -> str:
    return f"{label} ({load()}): " + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts-only", action="store_true", help="only Ray start and the import alone")
    args = parser.parse_args()
    runs, rays, olds, imports = [], [], [], []
    for i in range(args.repeat):
        olds.append(ray_start_old())
        print(_line(f"Ray start the old way (peer) {i + 1}", olds[-1]), flush=True)
        rays.append(ray_start_alone())
        print(_line(f"Ray start alone {i + 1}", rays[-1]), flush=True)
        imports.append(harness_import_alone())
        print(_line(f"harness import alone {i + 1}", imports[-1]), flush=True)
        if args.parts_only:
            continue
        with tempfile.TemporaryDirectory(prefix="first-metric-") as tmp:
            runs.append(one_run(Path(tmp)))
        print(_line(f"campaign run {i + 1}", runs[-1]), flush=True)
    ray, imp = median_of(rays), median_of(imports)
    old = median_of(olds)
    print(_line("median Ray start the old way (peer)", old))
    print(_line("median Ray start alone", ray))
    print(
        f"Ray start and first task / the old way's: "
        f"{(ray['init_ray'] + ray['first_task']) / (old['ray.init(local)'] + old['first_task']):.2f}"
    )
    print(_line("median harness import alone", imp))
    parts = ray["init_ray"] + ray["first_task"] + imp["harness wall"] + imp["ray.train wall"]
    cpu = ray["cpu all of Ray"] + imp["harness cpu"] + imp["ray.train cpu"]
    print(f"Ray start + first task + import, alone: {parts:.1f} s wall, {cpu:.1f} CPU s")
    if not runs:
        return
    median = median_of(runs)
    print(_line("median campaign run", median))
    serial = median["to_first_metric"] / parts
    print(f"time to first metric / (its parts alone, one after the other): {serial:.2f}")
    print(f"time to first metric / 15 s target: {median['to_first_metric'] / 15.0:.2f}")


if __name__ == "__main__":
    main()
