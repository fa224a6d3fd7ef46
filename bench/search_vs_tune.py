"""Adaptive search and early termination: our planner against random search, against itself without
ASHA, and against Ray Tune (OptunaSearch + ASHAScheduler), on the `objective` task's function.

(a) quality: for each algorithm (tpe, random, cmaes, qmc) and seed, one search phase of 100 trials
    driven through `plan()` by a simulated shell (the shell applies the plan's actions exactly as the
    real shells do; a running trial reports the objective's per-epoch values through
    `lifecycle.transitions.epoch_reported` and succeeds at its last epoch). Figures: the median over
    seeds of the best value (the phase's best: Succeeded trials at their best epoch) among the first
    N trials, and the N at which TPE reaches the median of random's best-of-100.
(b) early termination: the same simulated shell, step-wise (each plan step, every running trial
    advances one epoch), concurrency 4, with and without `earlyTermination: asha`. Figures: epochs
    spent and the final best at the same trial budget, and the epochs ASHA (given 3x the trials)
    spends until its best matches the search without it, median over seeds.
(c) against Ray Tune, both really running trials in a fresh process with its own local Ray, timed
    from launch to exit: `campaign run` of a manifest with one search phase (tpe, asha) over the
    `objective` task, and `Tuner.fit()` with OptunaSearch(TPESampler with the same settings) +
    ASHAScheduler(the same rungs) on a function trainable that reports the same per-epoch value.
    Same budget, epochs, concurrency, CPUs per trial and per-epoch sleep. Figures: best found, wall
    times and their ratio (target <= 1.10).

    python bench/search_vs_tune.py [--function hartmann6] [--seeds 5] [--skip-tune] [--control]

--control also runs (c)'s campaign without earlyTermination (where the time goes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NOISE = 0.01
TRIAL_SEED = 0  # the objective task's curve seed (the trial's `seed` hyperparameter, default 0)
NS = (10, 20, 40, 100)
ALGORITHMS = ("tpe", "random", "cmaes", "qmc")
STARTUP = 10  # tpe's random trials before its model (ours: startupTrials; Optuna: n_startup_trials)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def space(function: str) -> dict[str, dict[str, list[float]]]:
    from campaign_trainer.tasks.objective import function_named

    bounds = function_named(function).bounds()
    return {f"x{i}": {"uniform": [lo, hi]} for i, (lo, hi) in enumerate(bounds, 1)}


def manifest(
    function: str,
    algorithm: str,
    trials: int,
    seed: int,
    epochs: int,
    parallel: int,
    asha: dict[str, int] | None,
    cpu: float = 1.0,
    epoch_seconds: float = 0.0,
) -> dict[str, Any]:
    hyper: dict[str, Any] = {"function": function, "noise": NOISE}
    if epoch_seconds:
        hyper["epoch_seconds"] = epoch_seconds
    phase: dict[str, Any] = {
        "name": "search",
        "maxParallelTrials": parallel,
        "sweep": {
            "search": {
                "algorithm": algorithm,
                "trials": trials,
                "seed": seed,
                "startupTrials": STARTUP,
                "space": space(function),
            }
        },
    }
    if asha is not None:
        phase["earlyTermination"] = {"algorithm": "asha", **asha}
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": f"search-{algorithm}-{seed}", "namespace": "default", "generation": 1},
        "spec": {
            "objective": {"metric": "val_loss", "mode": "min"},
            "maxParallelTrials": parallel,
            "template": {
                "task": "objective",
                "hyperparameters": hyper,
                "epochs": epochs,
                "resources": {"cpu": cpu},
            },
            "phases": [phase],
        },
    }


# -- the simulated shell ---------------------------------------------------------------------------
class Shell:
    """Plans, applies the plan's actions (as sim.World and the real shells do), and lets every
    running trial report `per_step` more epochs of the objective before the next plan."""

    def __init__(self, doc: dict[str, Any], function: str, per_step: int) -> None:
        from campaign_operator.api import TrainingCampaign
        from campaign_operator.api.validation import parse_model

        self.campaign = parse_model(TrainingCampaign, doc)
        self.function, self.per_step = function, per_step
        self.trials: dict[str, Any] = {}
        self.now = T0
        self.trace: list[tuple[int, float]] = []
        """(epochs spent, the phase's best) at each plan."""

    def run(self, max_steps: int = 100_000) -> Any:
        for _ in range(max_steps):
            p = self.step()
            best = p.status.phases[0].best
            self.trace.append((self.epochs_spent(), math.inf if best is None else best.value))
            if p.status.state.value in ("Succeeded", "Failed"):
                return p
            self.advance()
            self.now += timedelta(seconds=30)
        raise RuntimeError("campaign did not finish")

    def step(self) -> Any:
        from campaign_operator.api import TrialState
        from campaign_operator.lifecycle.transitions import finished
        from campaign_operator.planner import CreateTrial, FinishTrial, LaunchTrial, plan

        p = plan(self.campaign, list(self.trials.values()), self.now)
        for a in p.actions:
            if isinstance(a, CreateTrial):
                assert a.trial.name not in self.trials, f"{a.trial.name} created twice"
                self.trials[a.trial.name] = a.trial.model_copy(deep=True)
            elif isinstance(a, LaunchTrial):
                t = self.trials[a.name]
                t.status = t.status.model_copy(
                    update={
                        "state": TrialState.RUNNING,
                        "attempt": a.attempt,
                        "start_time": self.now,
                        "completion_time": None,
                        "reason": None,
                    }
                )
            elif isinstance(a, FinishTrial):
                t = self.trials[a.name]
                t.status = finished(t.status, a.state, a.reason, a.message, self.now)
        self.campaign = self.campaign.model_copy(update={"status": p.status})
        return p

    def advance(self) -> None:
        from campaign_operator.api import TrialState
        from campaign_operator.lifecycle.transitions import epoch_reported, finished
        from campaign_trainer.tasks.objective import value

        objective = self.campaign.spec.objective
        for t in self.trials.values():
            if t.status.state != TrialState.RUNNING:
                continue
            epochs = t.spec.epochs
            for _ in range(self.per_step):
                e = t.status.epoch + 1
                v = value(self.function, t.spec.sweep_point, e, epochs, TRIAL_SEED, NOISE)
                t.status = epoch_reported(t.status, e, {"val_loss": v}, objective)
                if e == epochs:
                    t.status = finished(t.status, TrialState.SUCCEEDED, "Completed", "", self.now)
                    break

    def by_index(self) -> list[Any]:
        from campaign_operator.planner.naming import search_trial_name

        c = self.campaign
        n = c.spec.phases[0].sweep.search.trials
        names = [search_trial_name(c.metadata.name, "search", i) for i in range(n)]
        return [self.trials[name] for name in names if name in self.trials]

    def best_after(self, n: int) -> float:
        from campaign_operator.api import TrialState
        from campaign_operator.planner.views import final_metrics

        values = [
            final_metrics(t)["val_loss"]
            for t in self.by_index()[:n]
            if t.status.state == TrialState.SUCCEEDED
        ]
        return min(values, default=math.inf)

    def epochs_spent(self) -> int:
        return sum(t.status.epoch for t in self.trials.values())


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """(a) best after N trials per algorithm, median over seeds; TPE's N to random's best-of-100."""
    n_max = max(NS)
    curves: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for algorithm in args.algorithms:
        t0 = time.perf_counter()
        curves[algorithm] = []
        for seed in range(args.seeds):
            doc = manifest(args.function, algorithm, n_max, seed, args.epochs_a, args.parallel_a, None)
            shell = Shell(doc, args.function, per_step=args.epochs_a)  # no termination: whole trials
            shell.run()
            curves[algorithm].append([shell.best_after(n) for n in range(1, n_max + 1)])
        seconds[algorithm] = time.perf_counter() - t0
    median_at = {a: {n: statistics.median(c[n - 1] for c in cs) for n in NS} for a, cs in curves.items()}
    out: dict[str, Any] = {"median_best_after": median_at, "seconds": seconds}
    if "tpe" in curves and "random" in curves:
        target = statistics.median(c[n_max - 1] for c in curves["random"])
        reach = [next((n for n, v in enumerate(c, 1) if v <= target), math.inf) for c in curves["tpe"]]
        out |= {"random_best_of_100": target, "tpe_reach_per_seed": reach}
        out["tpe_reach"] = statistics.median(reach)
    return out


def termination(args: argparse.Namespace) -> dict[str, Any]:
    """(b) per algorithm and seed, step-wise at concurrency `parallel`: the search without early
    termination (`trials` trials run to the end: its best is the quality to match); the same with
    ASHA and the same budget; and ASHA with `asha_budget` x the budget, stopped (for the figure) at
    the first plan whose phase best is at least as good as the full search's: epochs spent then."""
    out: dict[str, Any] = {}
    for algorithm in args.algorithms_b:
        keys = ("full", "full_epochs", "asha", "asha_epochs", "to_match")
        rows: dict[str, list[float]] = {k: [] for k in keys}
        for seed in range(args.seeds):
            runs = {}
            for label, budget, asha in (
                ("full", args.trials, None),
                ("asha", args.trials, asha_policy(args)),
                ("long", args.trials * args.asha_budget, asha_policy(args)),
            ):
                doc = manifest(args.function, algorithm, budget, seed, args.epochs, args.parallel, asha)
                shell = Shell(doc, args.function, per_step=1)
                shell.run()
                runs[label] = shell
            target = runs["full"].trace[-1][1]
            rows["full"].append(target)
            rows["full_epochs"].append(runs["full"].epochs_spent())
            rows["asha"].append(runs["asha"].trace[-1][1])
            rows["asha_epochs"].append(runs["asha"].epochs_spent())
            rows["to_match"].append(next((e for e, b in runs["long"].trace if b <= target), math.inf))
        out[algorithm] = {"per_seed": rows, **{f"median_{k}": statistics.median(v) for k, v in rows.items()}}
    return out


def asha_policy(args: argparse.Namespace) -> dict[str, int]:
    return {"minEpochs": args.grace, "reductionFactor": args.rf, "minTrials": args.min_trials}


# -- (c) campaign run vs Ray Tune ------------------------------------------------------------------
def campaign_side(args: argparse.Namespace, workdir: Path, asha: bool = True) -> dict[str, Any]:
    import yaml

    doc = manifest(
        args.function,
        "tpe",
        args.trials,
        args.tune_seed,
        args.epochs,
        args.parallel,
        asha_policy(args) if asha else None,
        cpu=args.cpu,
        epoch_seconds=args.epoch_seconds,
    )
    doc["metadata"] = {"name": "bench-search"}
    path = workdir / "search.yaml"
    path.write_text(yaml.safe_dump(doc))
    state = workdir / "campaign-state"
    cmd = [str(Path(sys.executable).parent / "campaign"), "run", str(path), "--state", str(state)]
    cmd += ["--max-parallel", str(args.parallel), "--quiet"]
    env = {**os.environ, "CAMPAIGN_STATE_INDEX": str(workdir / "index")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit("campaign run failed")
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    docs = [json.loads(d) for (d,) in db.execute("SELECT doc FROM trials")]
    db.close()
    finals = [
        ((d["status"].get("best") or {}).get("metrics") or d["status"]["metrics"])["val_loss"]
        for d in docs
        if d["status"]["state"] == "Succeeded"
    ]
    states = [d["status"]["state"] for d in docs]
    return {
        "wall_s": wall,
        "best": min(finals),
        "trials": len(docs),
        "completed": states.count("Succeeded"),
        "stopped": states.count("Stopped"),
        "epochs": sum(int(d["status"].get("epoch") or 0) for d in docs),
    }


def tune_side(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--tune-only", "--workdir", str(workdir)]
    for flag in ("function", "trials", "epochs", "parallel", "cpu", "epoch_seconds", "tune_seed"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for flag in ("grace", "rf"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit("tune side failed")
    return {"wall_s": wall, **json.loads(lines[-1])}


def tune_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    from campaign_trainer.tasks.objective import value

    point = {k: v for k, v in config.items() if k.startswith("x")}
    epochs = config["epochs"]
    for e in range(1, epochs + 1):
        if config["epoch_seconds"]:
            time.sleep(config["epoch_seconds"])
        v = value(config["function"], point, e, epochs, TRIAL_SEED, NOISE)
        tune.report({"val_loss": v, "epoch": e})


def tune_only(args: argparse.Namespace) -> int:
    """The Tune side as its own process (what a user's Tune script is), on the same local Ray."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from campaign_operator.executors.local import init_ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    init_ray()  # the same Ray settings as `campaign run` (every CPU of the machine)
    dims = space(args.function)
    param_space: dict[str, Any] = {k: tune.uniform(*d["uniform"]) for k, d in dims.items()}
    param_space |= {"function": args.function, "epochs": args.epochs, "epoch_seconds": args.epoch_seconds}
    # The same TPE as ours: multivariate, constant liar for running trials, 10 random trials first.
    sampler = optuna.samplers.TPESampler(
        seed=args.tune_seed, n_startup_trials=STARTUP, multivariate=True, constant_liar=True
    )
    tuner = tune.Tuner(
        tune.with_resources(tune_trainable, {"cpu": args.cpu}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="val_loss",
            mode="min",
            search_alg=OptunaSearch(sampler=sampler),
            scheduler=ASHAScheduler(
                time_attr="epoch", max_t=args.epochs, grace_period=args.grace, reduction_factor=args.rf
            ),
            num_samples=args.trials,
            max_concurrent_trials=args.parallel,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="bench", storage_path=str(Path(args.workdir) / "tune"), verbose=0),
    )
    results = tuner.fit()
    finals, epochs, completed = [], 0, 0
    for r in results:
        df = r.metrics_dataframe
        last = int(r.metrics.get("epoch", 0))
        epochs += last
        if last == args.epochs:  # ran to its end: as our Succeeded trials, ranked at its best epoch
            completed += 1
            finals.append(float(df["val_loss"].min()))
    print(
        json.dumps(
            {
                "best": min(finals),
                "trials": len(results),
                "completed": completed,
                "stopped": len(results) - completed,
                "epochs": epochs,
            }
        )
    )
    return 0


def versus_tune(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"campaign": [], "tune": []}
    for i in range(args.repeat):
        order: list[tuple[str, Any]] = [("campaign", campaign_side), ("tune", tune_side)]
        if i % 2:
            order.reverse()
        if args.control and i == 0:  # where the time goes: the same campaign without asha
            runs["campaign-no-asha"] = []
            order.append(("campaign-no-asha", lambda a, w: campaign_side(a, w, asha=False)))
        for label, fn in order:
            workdir = Path(tempfile.mkdtemp(prefix="campaign-bench-search-"))
            try:
                r = fn(args, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            runs[label].append(r)
            print(
                f"  run {i + 1}: {label:8s} {r['wall_s']:6.1f}s  best {r['best']:.4f}  "
                f"{r['completed']} completed + {r['stopped']} stopped, {r['epochs']} epochs",
                flush=True,
            )
    best_wall = {k: min(r["wall_s"] for r in v) for k, v in runs.items() if v}
    return {"runs": runs, "wall": best_wall, "ratio": best_wall["campaign"] / best_wall["tune"]}


def fmt(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else "never"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--function", default="hartmann6", choices=["branin", "hartmann6", "rosenbrock"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS), help="(a): comma-separated")
    ap.add_argument("--algorithms-b", default="tpe,random", help="(b): comma-separated")
    ap.add_argument("--epochs-a", type=int, default=9, help="(a): epochs per trial")
    ap.add_argument("--parallel-a", type=int, default=1, help="(a): trials at a time")
    ap.add_argument("--trials", type=int, default=40, help="(b), (c): the search's budget")
    ap.add_argument("--epochs", type=int, default=27, help="(b), (c): epochs per trial")
    ap.add_argument("--parallel", type=int, default=4, help="(b), (c): trials at a time")
    ap.add_argument("--grace", type=int, default=1, help="asha minEpochs / grace_period")
    ap.add_argument("--rf", type=int, default=3, help="asha reductionFactor / reduction_factor")
    ap.add_argument("--min-trials", type=int, default=1, help="asha minTrials (1: as Tune's ASHA)")
    ap.add_argument("--asha-budget", type=int, default=3, help="(b): the long asha run's trials, x --trials")
    ap.add_argument("--cpu", type=float, default=0.5, help="(c): CPUs per trial, both sides")
    ap.add_argument("--epoch-seconds", type=float, default=0.1, help="(c): sleep per epoch, both sides")
    ap.add_argument("--tune-seed", type=int, default=0, help="(c): the search's seed, both sides")
    ap.add_argument("--repeat", type=int, default=1, help="(c): alternate the two runs this many times")
    ap.add_argument("--control", action="store_true", help="(c): also run the campaign without asha")
    ap.add_argument("--skip-sim", action="store_true", help="only (c)")
    ap.add_argument("--skip-tune", action="store_true", help="only (a) and (b)")
    ap.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    ap.add_argument("--tune-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tune_only:
        return tune_only(args)
    args.algorithms = args.algorithms.split(",")
    args.algorithms_b = args.algorithms_b.split(",")
    figures: dict[str, Any] = {"function": args.function, "seeds": args.seeds}
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")

    if not args.skip_sim:
        a = quality(args)
        figures["a"] = a
        print(
            f"\n(a) {args.function}: best val_loss after N trials, median of {args.seeds} seeds "
            f"(plan() + simulated shell, {args.parallel_a} at a time)"
        )
        print("    algorithm  " + "".join(f"N={n:<9d}" for n in NS) + "sim time")
        for alg, row in a["median_best_after"].items():
            cells = "".join(f"{fmt(row[n]):<11s}" for n in NS)
            print(f"    {alg:9s}  {cells}{a['seconds'][alg]:.1f}s")
        if "tpe_reach" in a:
            print(
                f"    TPE reaches random's best-of-100 ({a['random_best_of_100']:.4f}) after "
                f"{a['tpe_reach']} trials (median; per seed {a['tpe_reach_per_seed']}; target <= 40)"
            )
        b = termination(args)
        figures["b"] = b
        print(
            f"\n(b) {args.function}: {args.trials} trials x {args.epochs} epochs, {args.parallel} at a "
            f"time, asha minEpochs {args.grace} reductionFactor {args.rf} minTrials {args.min_trials}; "
            f"median of {args.seeds} seeds"
        )
        for alg in args.algorithms_b:
            r = b[alg]
            fixed = 1 - r["median_asha_epochs"] / r["median_full_epochs"]
            match = 1 - r["median_to_match"] / r["median_full_epochs"]
            r["cut_fixed_budget"], r["cut_to_match"] = fixed, match
            print(
                f"    {alg:7s} without: {r['median_full_epochs']:5.0f} epochs, best {r['median_full']:.4f}"
                f" | asha, same {args.trials} trials: {r['median_asha_epochs']:5.0f} epochs"
                f" ({fixed:.0%} fewer), best {r['median_asha']:.4f}"
            )
            print(
                f"    {'':7s} asha (up to {args.trials * args.asha_budget} trials) matches the best without"
                f" after {r['median_to_match']:.0f} epochs: {match:.0%} fewer (target >= 50%);"
                f" per seed {[int(x) if math.isfinite(x) else 'never' for x in r['per_seed']['to_match']]}"
            )

    if not args.skip_tune:
        print(
            f"\n(c) campaign run vs Ray Tune: tpe + asha, {args.trials} trials x {args.epochs} epochs "
            f"({args.epoch_seconds}s each), {args.parallel} at a time, {args.cpu} CPU each,"
            f" seed {args.tune_seed}"
        )
        c = versus_tune(args)
        figures["c"] = c
        camp, tune_ = c["runs"]["campaign"][0], c["runs"]["tune"][0]
        print(
            f"    best: campaign {camp['best']:.4f}, tune {tune_['best']:.4f} "
            f"({'ours <= Tune' if camp['best'] <= tune_['best'] else 'ours WORSE than Tune'})"
        )
        print(
            f"    wall (best of {args.repeat}): campaign {c['wall']['campaign']:.1f}s,"
            f" tune {c['wall']['tune']:.1f}s, ratio {c['ratio']:.2f}"
            f" ({'within' if c['ratio'] <= 1.10 else 'ABOVE'} target 1.10)"
        )
        if "campaign-no-asha" in c["wall"]:
            w = c["wall"]["campaign-no-asha"]
            ratio = w / c["wall"]["tune"]
            print(f"    control: the same campaign without asha {w:.1f}s ({ratio:.2f} x Tune)")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
