"""A minimal in-memory shell for planner tests: applies actions exactly as the real shells must."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from campaign_operator.api import TrainingCampaign, Trial, TrialState
from campaign_operator.api.validation import parse_model
from campaign_operator.planner import CreateTrial, EmitEvent, FinishTrial, LaunchTrial, Plan, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def campaign(spec: dict[str, Any], name: str = "c", generation: int = 1) -> TrainingCampaign:
    doc = {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": name, "namespace": "default", "generation": generation},
        "spec": {"template": {"task": "regression"}, **spec},
    }
    return parse_model(TrainingCampaign, doc)


@dataclass
class World:
    campaign: TrainingCampaign
    now: datetime = T0
    trials: dict[str, Trial] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    launched: list[tuple[str, int]] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)

    def step(self) -> Plan:
        p = plan(self.campaign, list(self.trials.values()), self.now)
        self.apply(p)
        return p

    def apply(self, p: Plan) -> None:
        for a in p.actions:
            if isinstance(a, CreateTrial):
                assert a.trial.name not in self.trials, f"{a.trial.name} created twice"
                self.trials[a.trial.name] = a.trial.model_copy(deep=True)
                self.created.append(a.trial.name)
            elif isinstance(a, LaunchTrial):
                t = self.trials[a.name]
                assert (a.name, a.attempt) not in self.launched, (
                    f"{a.name} attempt {a.attempt} launched twice"
                )
                t.status.state = TrialState.RUNNING
                t.status.attempt = a.attempt
                t.status.start_time = self.now
                t.status.completion_time = None
                t.status.reason = None
                self.launched.append((a.name, a.attempt))
            elif isinstance(a, FinishTrial):
                t = self.trials[a.name]
                t.status.state, t.status.reason, t.status.message = a.state, a.reason, a.message
                t.status.completion_time = self.now
            else:
                self.events.append(a)
        self.campaign = self.campaign.model_copy(update={"status": p.status})
        self.plans.append(p)

    def running(self, phase: str | None = None) -> list[Trial]:
        return [
            t
            for t in self.trials.values()
            if t.status.state == TrialState.RUNNING and (phase is None or t.spec.phase == phase)
        ]

    def finish(self, trial: Trial, state: TrialState, metrics: dict[str, float] | None = None) -> None:
        trial.status.state = state
        trial.status.reason = "Completed" if state == TrialState.SUCCEEDED else "TaskError"
        trial.status.metrics = metrics or {}
        trial.status.completion_time = self.now

    def drive(
        self,
        outcome: Any,
        rng: random.Random,
        max_steps: int = 400,
        tick: timedelta = timedelta(seconds=45),
    ) -> Iterator[Plan]:
        """Yields each plan (after applying it) until the campaign finishes; between plans, a random
        share of running trials end via `outcome` and the clock moves on."""
        p = self.step()
        for _ in range(max_steps):
            yield p
            if p.status.state.value in ("Succeeded", "Failed"):
                return
            for t in self.running():
                if rng.random() < 0.6:
                    self.finish(t, *outcome(t))
            self.now += tick
            p = self.step()
        raise AssertionError("campaign did not finish")

    def run(
        self,
        outcome: Any,
        rng: random.Random | None = None,
        max_steps: int = 500,
        tick: timedelta = timedelta(seconds=60),
    ) -> Plan:
        """Plans until the campaign is finished; each step finishes some running trials via `outcome`."""
        rng = rng or random.Random(0)
        p = self.step()
        for _ in range(max_steps):
            if p.status.state.value in ("Succeeded", "Failed"):
                return p
            for t in self.running():
                if rng.random() < 0.7:
                    state, metrics = outcome(t)
                    self.finish(t, state, metrics)
            self.now += tick
            p = self.step()
        raise AssertionError("campaign did not finish")
