"""Running the very same training function as a Ray Tune function trainable.

Used by the embedded-mode benchmark (us vs Ray Tune on identical training) and by anyone who wants
Tune's schedulers over campaign tasks. ``ray.train.report`` raises inside Tune, which is why
``train_fn`` never touches Ray APIs and progress flows through a Reporter instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaign_trainer.harness import train_fn
from campaign_trainer.outcome import Outcome, finite_metrics
from campaign_trainer.reporters import NullReporter, Reporter


@dataclass
class TuneReporter:
    """Each epoch becomes one ``ray.tune.report`` (so Tune's schedulers and stoppers see it)."""

    inner: Reporter | None = None

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        from ray import tune

        if self.inner is not None:
            self.inner.report_epoch(epoch, metrics)
        tune.report({**finite_metrics(metrics), "epoch": epoch})

    def report_outcome(self, outcome: Outcome) -> None:
        if self.inner is not None:
            self.inner.report_outcome(outcome)


def trainable(config: Mapping[str, Any]) -> None:
    """Tune function trainable. ``config``: ``{"trial": <Trial or TrialSpec mapping>,
    "checkpoint_root": optional str}``; the last report carries the outcome (trial_state, trial_reason)."""
    from ray import tune

    reporter = TuneReporter(config.get("reporter") or NullReporter())
    outcome = train_fn(config["trial"], reporter, checkpoint_root=config.get("checkpoint_root"))
    reporter.report_outcome(outcome)
    tune.report(
        {
            **finite_metrics(outcome.metrics),
            "epoch": outcome.epoch,
            "trial_state": outcome.state,
            "trial_reason": outcome.reason,
        }
    )
