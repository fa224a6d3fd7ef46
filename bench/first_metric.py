"""Embedded time to first metric: `campaign run` of a one-trial campaign, from launch to the trial's
first epoch line, and where that time goes (issue 12's target: <= 15 s on a 2-core machine).

Each run is a fresh process with its own local Ray and a fresh state dir, as a user's first
`campaign run`. The stages, from the runner's progress file and its output:
  launch -> start line: Ray start-up, the task's worker process and its import of the trainer's
                        harness (torch, Lightning, Ray Train), after which the worker writes it;
  start line -> first epoch: Ray Train's set-up for the trial, the task's data and model, one epoch;
and launch -> exit for the whole (small) campaign. Prints medians over --repeat runs.

    python bench/first_metric.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="first-metric-") as tmp:
            runs.append(one_run(Path(tmp)))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in runs[-1].items()), flush=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("median: " + ", ".join(f"{k} {v:.1f} s" for k, v in median.items()))
    print(f"time to first metric / 15 s target: {median['to_first_metric'] / 15.0:.2f}")


if __name__ == "__main__":
    main()
