"""Embedded campaign vs Ray Tune on the same 24 small trials: what does our orchestration cost?

(a) the campaign: `campaign run FILE` (planner + SQLite store + local executor + trainer's run_trial),
(b) Ray Tune directly: `Tuner` + `tune.grid_search` with `reuse_actors=True`, the trainer's
`train_fn` reporting every epoch to Tune,
with the same data, epochs, per-epoch reporting, checkpoints and concurrency. Prints both wall times
and the ratio campaign/Tune (target <= 1.10).

--mode subprocess (default): each side in a fresh process with its own local Ray, timed from launch
to exit: what a user waits for (Ray start-up, first imports in the workers, the orchestration).
--mode inprocess: both on one Ray in this process, workers warmed first: orchestration alone
(Tune still imports the trainer in its fresh trial actors; the campaign's task workers are reused).

    python bench/embedded_vs_tune.py [--mode subprocess|inprocess] [--concurrency 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LRS = [0.003, 0.01, 0.03, 0.1]
HIDDEN = [[16], [32], [32, 16]]
SEEDS = [0, 1]
SAMPLES = 4096
BATCH = 64


def grid() -> list[dict[str, Any]]:
    return [{"lr": lr, "hidden_dims": h, "seed": s} for lr, h, s in itertools.product(LRS, HIDDEN, SEEDS)]


def manifest(epochs: int) -> dict[str, Any]:
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": "bench"},
        "spec": {
            "template": {
                "task": "regression",
                "dataset": {"synthetic": {"samples": SAMPLES, "seed": 3}},
                "epochs": epochs,
                "batchSize": BATCH,
                "resources": {"cpu": 1},
            },
            "phases": [
                {"name": "grid", "sweep": {"grid": {"lr": LRS, "hidden_dims": HIDDEN, "seed": SEEDS}}}
            ],
        },
    }


def run_campaign(workdir: Path, epochs: int, concurrency: int) -> tuple[float, int]:
    from campaign_operator.embedded.runner import Runner
    from campaign_operator.embedded.store import Store
    from campaign_operator.executors.local import LocalExecutor
    from campaign_operator.planner.admission import load_campaign
    from campaign_operator.report.live import NullDisplay

    campaign = load_campaign(manifest(epochs))
    state = workdir / "campaign"
    t0 = time.perf_counter()
    with Store(state) as store:
        store.acquire_lease()
        executor = LocalExecutor(state)
        runner = Runner(campaign, store, executor, NullDisplay(), max_parallel=concurrency)
        result = runner.run()
        executor.close()
    wall = time.perf_counter() - t0
    return wall, result.status.trials.succeeded


class TuneReporter:
    """The trainer's Reporter interface, forwarding each epoch to Tune (what our JSONL lines are)."""

    def report_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        from ray import tune

        tune.report({**{k: v for k, v in metrics.items() if math.isfinite(v)}, "epoch": epoch})

    def report_outcome(self, outcome: Any) -> None:
        pass


def tune_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    from campaign_trainer.harness import train_fn

    name = f"tune-{tune.get_context().get_trial_id()}"
    trial = {
        "metadata": {"name": name},
        "spec": {
            "campaign": "bench-tune",
            "phase": "grid",
            "task": "regression",
            "parameters": {"lr": config["lr"], "hidden_dims": config["hidden_dims"], "seed": config["seed"]},
            "dataset": {"synthetic": {"samples": SAMPLES, "seed": 3}},
            "epochs": config["epochs"],
            "batchSize": BATCH,
        },
    }
    outcome = train_fn(trial, TuneReporter(), checkpoint_root=config["checkpoint_root"])
    if outcome.state != "Succeeded":
        raise RuntimeError(outcome.message)


def run_tune(workdir: Path, epochs: int, concurrency: int) -> tuple[float, int]:
    from ray import tune

    space = {
        "lr": tune.grid_search(LRS),
        "hidden_dims": tune.grid_search(HIDDEN),
        "seed": tune.grid_search(SEEDS),
        "epochs": epochs,
        "checkpoint_root": str(workdir / "tune-checkpoints"),
    }
    t0 = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(tune_trainable, {"cpu": 1}),
        param_space=space,
        # reuse_actors: Tune's fastest setting for many short trials (no process per trial), the
        # counterpart of Ray reusing task workers for the campaign's trials.
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name="bench", storage_path=str(workdir / "tune"), verbose=0),
    )
    grid_result = tuner.fit()
    wall = time.perf_counter() - t0
    ok = sum(1 for r in grid_result if r.error is None)
    return wall, ok


def warm_up(concurrency: int) -> None:
    """Import torch/Lightning/Ray Train/Tune/the trainer in `concurrency` idle worker processes, so
    neither side pays (or dodges) first-import costs that belong to neither. Ray hands idle workers
    to both tasks (campaign) and actors (Tune)."""
    import ray

    @ray.remote(num_cpus=1)
    def imports() -> int:
        import ray.train.torch
        import ray.tune  # noqa: F401

        import campaign_trainer.harness  # noqa: F401

        return os.getpid()

    ray.get([imports.remote() for _ in range(concurrency)])


def campaign_subprocess(workdir: Path, epochs: int, concurrency: int) -> tuple[float, int]:
    import sqlite3
    import subprocess

    import yaml

    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(manifest(epochs)))
    state = workdir / "campaign-state"
    cmd = [str(Path(sys.executable).parent / "campaign"), "run", str(path), "--state", str(state)]
    cmd += ["--max-parallel", str(concurrency), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return wall, 0
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    ok = db.execute("SELECT count(*) FROM trials WHERE state = 'Succeeded'").fetchone()[0]
    db.close()
    return wall, int(ok)


def tune_subprocess(workdir: Path, epochs: int, concurrency: int) -> tuple[float, int]:
    import subprocess

    cmd = [
        sys.executable,
        __file__,
        "--tune-only",
        "--epochs",
        str(epochs),
        "--concurrency",
        str(concurrency),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--workdir", str(workdir)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:] + proc.stderr[-2000:], file=sys.stderr)
        return wall, 0
    return wall, int(json.loads(lines[-1])["ok"])


def tune_only(args: argparse.Namespace) -> int:
    """The Tune side as its own process (what a user's Tune script is)."""
    from campaign_operator.executors.local import init_ray

    init_ray(num_cpus=args.concurrency)  # the same Ray settings as `campaign run`
    _, ok = run_tune(Path(args.workdir), args.epochs, args.concurrency)
    print(json.dumps({"ok": ok}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times")
    ap.add_argument("--target", type=float, default=1.10)
    ap.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    ap.add_argument("--mode", choices=["subprocess", "inprocess"], default="subprocess")
    ap.add_argument("--tune-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tune_only:
        return tune_only(args)

    sides = {"tune": run_tune, "campaign": run_campaign}
    if args.mode == "subprocess":
        sides = {"tune": tune_subprocess, "campaign": campaign_subprocess}
    else:
        from campaign_operator.executors.local import init_ray

        init_ray(num_cpus=args.concurrency)
    n = len(grid())
    camp_times: list[float] = []
    tune_times: list[float] = []
    for i in range(args.repeat):
        workdir = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
        try:
            order = list(sides.items())
            if i % 2:
                order.reverse()
            for label, fn in order:
                # Ray kills idle workers beyond one per CPU, so whoever runs second would otherwise
                # start on cold processes: warm them right before each timing, for both sides.
                if args.mode == "inprocess":
                    warm_up(args.concurrency)
                wall, ok = fn(workdir, args.epochs, args.concurrency)
                if ok != n:
                    print(f"{label}: only {ok}/{n} trials succeeded", file=sys.stderr)
                    return 2
                (camp_times if label == "campaign" else tune_times).append(wall)
                print(f"run {i + 1}: {label:8s} {n} trials in {wall:6.2f}s", flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    camp, tune_ = min(camp_times), min(tune_times)
    ratio = camp / tune_
    print(f"mode {args.mode}: best of {args.repeat} per side, order alternating")
    print(f"campaign run : {camp:6.2f}s  ({n} trials, {args.epochs} epochs, concurrency {args.concurrency})")
    print(f"ray tune     : {tune_:6.2f}s")
    verdict = "within" if ratio <= args.target else "ABOVE"
    print(f"ratio campaign/tune = {ratio:.3f} ({verdict} target {args.target:.2f})")
    if args.json:
        figures = {"mode": args.mode, "campaign_s": camp, "tune_s": tune_, "ratio": ratio, "trials": n}
        print(json.dumps({**figures, "campaign_runs": camp_times, "tune_runs": tune_times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
