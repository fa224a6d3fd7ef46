"""``python -m campaign_trainer run (--trial FILE|- | --trial-env NAME) [--reporter ...] [...]``.

``--trial-env`` is how cluster executors start the trainer: the entrypoint then holds no quotes,
expansions or pipes, so it survives every shell it is pasted into on the way (KubeRay's submitter
runs it inside ``bash -c "... ray job submit -- <entrypoint> ..."``, and Ray runs it in a shell again).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from campaign_operator.api.common import Mode, Objective
from campaign_operator.lifecycle.bounds import watched_metrics
from campaign_trainer.config import best_effort_name, parse_trial
from campaign_trainer.outcome import failure
from campaign_trainer.reporters import (
    KubernetesReporter,
    MultiReporter,
    Reporter,
    ReportFailed,
    StdoutReporter,
    make_reporter,
)

# Exit codes: the Trial status (via the reporter) is the real result; the code lets a RayJob / shell
# tell a crashed trainer from a trial that ran and failed.
EXIT_OK = 0  # Succeeded or Stopped (a stop rule fired: the trial did what the campaign asked)
EXIT_TRIAL_FAILED = 3
EXIT_REPORT_FAILED = 4  # the status could not be written: whatever the trial did, nobody saw it


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="campaign_trainer", description="Run one campaign Trial.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one trial and report its progress and outcome")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--trial", help="Trial as JSON/YAML: a file path, or - for stdin")
    source.add_argument("--trial-env", metavar="NAME", help="Trial as JSON/YAML in environment variable NAME")
    run.add_argument(
        "--reporter",
        action="append",
        default=None,
        help="jsonl:PATH | stdout | kubernetes | none (repeatable; default stdout)",
    )
    run.add_argument("--checkpoint-dir", default=None, help="checkpoint root when the trial sets no uri")
    run.add_argument("--log-level", default="WARNING")
    return p


def _trial_text(args: argparse.Namespace) -> str:
    if args.trial_env:
        text = os.environ.get(args.trial_env, "")
        if not text.strip():
            raise ValueError(f"environment variable {args.trial_env} is unset or empty: no trial to run")
        return text
    return sys.stdin.read() if args.trial == "-" else Path(args.trial).read_text(encoding="utf-8")


def _run(args: argparse.Namespace) -> int:
    text = ""
    try:
        text = _trial_text(args)
        cfg = parse_trial(text)
    except Exception as exc:  # a bad document still gets an outcome line, on stdout
        name = best_effort_name(text)
        StdoutReporter(name).report_outcome(failure(name, exc, reason="InvalidTrial"))
        return EXIT_TRIAL_FAILED
    specs = args.reporter or ["stdout"]
    objective = Objective(metric=cfg.objective_metric, mode=Mode(cfg.objective_mode))
    watched = watched_metrics(cfg.stop_rules, cfg.early_stopping, cfg.keep_metrics)
    reporters: list[Reporter] = [make_reporter(s, cfg.name, cfg.namespace, objective, watched) for s in specs]
    for r in reporters:
        if isinstance(r, KubernetesReporter):
            r.preflight()
    reporter: Reporter = reporters[0] if len(reporters) == 1 else MultiReporter(reporters)

    from campaign_trainer.harness import run_trial  # heavy imports (torch, lightning) only for `run`

    outcome = run_trial(cfg, reporter, checkpoint_root=args.checkpoint_dir)
    return EXIT_TRIAL_FAILED if outcome.state == "Failed" else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _run(args)
    except ReportFailed as exc:
        print(f"campaign_trainer: {exc}", file=sys.stderr, flush=True)
        return EXIT_REPORT_FAILED


if __name__ == "__main__":
    sys.exit(main())
