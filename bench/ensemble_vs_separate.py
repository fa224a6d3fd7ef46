"""Seed ensemble vectorised vs one trial per seed: what does training 20 seeds at once buy?

One small regression MLP configuration, 20 seeds, in this process, measured in one run:
(a) vectorised: ``campaign_trainer.ensemble.SeedEnsemble`` trains all members at once (torch.func);
(b) one trial per seed: ``harness.train_fn`` (the trial's own path: Lightning, per-epoch metrics and
    stop rules), one seed after another;
(c) for reference, the ensemble code with one member, once per seed (vectorisation alone, no Lightning).
Both sides warm up first (imports, first-call costs) and use the same threads. Prints the wall times,
the ratios (b)/(a) and (c)/(a), and how far each member's val_loss is from its separate trial.

    python bench/ensemble_vs_separate.py [--seeds 20] [--epochs 3] [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping
from typing import Any

import torch

from campaign_trainer.ensemble import SeedEnsemble
from campaign_trainer.harness import train_fn
from campaign_trainer.outcome import Outcome
from campaign_trainer.tasks.base import TaskConfig

PARAMS: dict[str, Any] = {"lr": 3e-3, "hidden_dims": [32, 16]}
DATASET = {"synthetic": {"samples": 4096, "seed": 3}}
BATCH = 64


class NullReporter:
    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def report_outcome(self, outcome: Outcome) -> None:
        pass


def trial(seed: int, epochs: int, threads: int, device: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "campaign": "bench",
        "phase": "seeds",
        "task": "regression",
        "parameters": {**PARAMS, "seed": seed},
        "dataset": DATASET,
        "epochs": epochs,
        "batchSize": BATCH,
        "resources": {"cpu": threads, "gpu": 1 if device == "cuda" else 0},
        "precision": "32-true",  # as the ensemble, so the members' metrics are comparable
    }
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "Trial",
        "metadata": {"name": f"seed-{seed}", "namespace": "default"},
        "spec": spec,
    }


def separate(seeds: list[int], epochs: int, threads: int, device: str) -> tuple[float, list[Outcome]]:
    t0 = time.perf_counter()
    outcomes = [train_fn(trial(s, epochs, threads, device), NullReporter()) for s in seeds]
    return time.perf_counter() - t0, outcomes


def vectorised(cfg: TaskConfig, seeds: list[int], device: str) -> tuple[float, list[Any]]:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    members = SeedEnsemble(cfg, seeds, device=device).fit()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    cfg = TaskConfig(PARAMS, DATASET, BATCH, args.epochs, 0)
    # Warm-up: imports, Lightning's first Trainer, torch's first kernels (on both sides).
    separate([100], 1, args.threads, args.device)
    torch.set_num_threads(args.threads)  # train_fn sets its threads from resources.cpu; the same here
    vectorised(TaskConfig(PARAMS, DATASET, BATCH, 1, 0), [100, 101], args.device)

    t_vec, members = vectorised(cfg, seeds, args.device)
    t_sep, outcomes = separate(seeds, args.epochs, args.threads, args.device)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    for s in seeds:
        SeedEnsemble(cfg, [s], device=args.device).fit()
    t_one = time.perf_counter() - t0

    worst = 0.0
    for member, outcome in zip(members, outcomes, strict=True):
        assert outcome.state == "Succeeded", outcome.message
        for mine, theirs in zip(member.history, outcome.history, strict=True):
            a, b = mine["metrics"]["val_loss"], theirs["metrics"]["val_loss"]
            worst = max(worst, abs(a - b) / abs(b) if b else math.inf)
    n = len(seeds)
    print(f"{n} seeds x {args.epochs} epochs, {DATASET['synthetic']['samples']} rows, batch {BATCH},")
    print(f"hidden {PARAMS['hidden_dims']}, {args.threads} thread(s), device {args.device}")
    print(f"vectorised ensemble (one SeedEnsemble)        {t_vec:8.2f} s")
    print(f"one trial per seed (harness.train_fn, serial) {t_sep:8.2f} s")
    print(f"one-member ensembles, serial                  {t_one:8.2f} s")
    print(f"ratio one trial per seed / vectorised         {t_sep / t_vec:8.1f} x   (target >= 5 on CPU)")
    print(f"ratio one-member ensembles / vectorised       {t_one / t_vec:8.1f} x")
    print(f"max relative val_loss difference, member vs its trial, any epoch: {worst:.1e}")


if __name__ == "__main__":
    main()
