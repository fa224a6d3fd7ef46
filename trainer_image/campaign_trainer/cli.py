"""``python -m campaign_trainer run --trial FILE|- [--reporter ...] [--checkpoint-dir DIR]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from campaign_trainer.config import best_effort_name, parse_trial
from campaign_trainer.outcome import failure
from campaign_trainer.reporters import MultiReporter, Reporter, StdoutReporter, make_reporter

# Exit codes: the Trial status (via the reporter) is the real result; the code lets a RayJob / shell
# tell a crashed trainer from a trial that ran and failed.
EXIT_OK = 0  # Succeeded or Stopped (a stop rule fired: the trial did what the campaign asked)
EXIT_TRIAL_FAILED = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="campaign_trainer", description="Run one campaign Trial.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one trial and report its progress and outcome")
    run.add_argument("--trial", required=True, help="Trial as JSON/YAML: a file path, or - for stdin")
    run.add_argument(
        "--reporter",
        action="append",
        default=None,
        help="jsonl:PATH | stdout | kubernetes | none (repeatable; default stdout)",
    )
    run.add_argument("--checkpoint-dir", default=None, help="checkpoint root when the trial sets no uri")
    run.add_argument("--log-level", default="WARNING")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    text = sys.stdin.read() if args.trial == "-" else Path(args.trial).read_text(encoding="utf-8")
    specs = args.reporter or ["stdout"]
    try:
        cfg = parse_trial(text)
    except Exception as exc:  # a bad document still gets an outcome line, on stdout
        name = best_effort_name(text)
        outcome = failure(name, exc, reason="InvalidTrial")
        StdoutReporter(name).report_outcome(outcome)
        return EXIT_TRIAL_FAILED
    reporters: list[Reporter] = [make_reporter(s, cfg.name, cfg.namespace) for s in specs]
    reporter: Reporter = reporters[0] if len(reporters) == 1 else MultiReporter(reporters)

    from campaign_trainer.harness import run_trial  # heavy imports (torch, lightning) only for `run`

    outcome = run_trial(cfg, reporter, checkpoint_root=args.checkpoint_dir)
    return EXIT_TRIAL_FAILED if outcome.state == "Failed" else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
