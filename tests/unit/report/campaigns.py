"""A real campaign for the view and report tests: planned by the planner's own functions, with trials
in every state a person watches (running, failed, succeeded, pending) and a phase not started yet."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml

from campaign_operator.api.campaign import (
    BestTrial,
    CampaignState,
    GateStatus,
    PhaseState,
    PhaseStatus,
    TrainingCampaign,
    TrainingCampaignStatus,
    TrialCounts,
)
from campaign_operator.api.common import MetricPoint, TrialState
from campaign_operator.api.manifest import parse_campaign
from campaign_operator.api.trial import BestEpoch, Trial
from campaign_operator.planner.sweeps import expand
from campaign_operator.planner.trials import build_trial
from campaign_operator.report.live import Snapshot
from campaign_operator.report.results import CampaignData

from ..embedded.helpers import T0

MANIFEST = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: nifty}
spec:
  objective: {metric: val_loss, mode: min}
  maxParallelTrials: 3
  scaleDown: {smoke: true, maxTrialsPerPhase: 6, maxEpochs: 4}
  template:
    task: regression
    dataset: {synthetic: {samples: 64, seed: 1}}
    hyperparameters: {lr: 0.01}
    epochs: 4
  phases:
    - name: teacher
      sweep:
        matrix:
          axes:
            symbol: [{name: RELIANCE}, {name: TCS}, {name: INFY}]
            window: [{start: "2022-01-01", end: "2022-04-30"}, {start: "2022-05-01", end: "2022-08-31"}]
      failurePolicy: {maxFailureRate: 0.2}
      gate: {expression: "phase.best.metrics.val_loss < 2.0"}
    - name: student
      dependsOn: [teacher]
      fromPhase: {phase: teacher}
      sweep:
        grid: {lr: [0.001, 0.01, 0.1], hidden_dims: [[32], [64, 32]]}
      failurePolicy: {maxFailureRate: 0.2}
"""


def campaign() -> TrainingCampaign:
    return parse_campaign(yaml.safe_load(MANIFEST))


def _history(epochs: int, start: float) -> list[MetricPoint]:
    return [
        MetricPoint(epoch=e, metrics={"val_loss": start / e, "loss": 1.2 * start / e, "r2": 1 - 0.5 / e})
        for e in range(1, epochs + 1)
    ]


def _with(trial: Trial, state: TrialState, **status: Any) -> Trial:
    trial = trial.model_copy(deep=True)
    trial.spec.epochs = 4  # whatever a smoke run would scale it to: these tests read the pace
    trial.status = trial.status.model_copy(update={"state": state, **status})
    return trial


def teacher_trials(now: Any) -> list[Trial]:
    c = campaign()
    phase = c.spec.phases[0]
    built = [build_trial(c, phase, point, None) for point in expand(phase)]
    run, fail, ok = built[0], built[2], built[1]  # RELIANCE w1, TCS w1, RELIANCE w2
    started = now - timedelta(seconds=20)
    history = _history(2, 1.0)
    done = _history(4, 0.8)
    return [
        _with(
            run,
            TrialState.RUNNING,
            attempt=1,
            start_time=started,
            epoch=2,
            history=history,
            metrics=history[-1].metrics,
        ),
        _with(
            fail,
            TrialState.FAILED,
            attempt=1,
            reason="DatasetError",
            start_time=now - timedelta(seconds=40),
            completion_time=now - timedelta(seconds=30),
            message="could not read prices.csv for symbol=TCS: not CSV or Parquet",
            epoch=1,
            history=_history(1, 30.0),
        ),
        _with(
            ok,
            TrialState.SUCCEEDED,
            attempt=1,
            reason="Completed",
            start_time=now - timedelta(seconds=30),
            completion_time=now - timedelta(seconds=20),
            epoch=4,
            history=done,
            metrics=done[-1].metrics,
            best=BestEpoch(epoch=4, metrics=done[-1].metrics),
        ),
        *(_with(t, TrialState.PENDING) for t in built[3:]),
    ]


def running_campaign(planner_eta_s: float = 20.0) -> Snapshot:
    now = T0 + timedelta(minutes=5)
    trials = teacher_trials(now)
    best = trials[2]
    teacher = PhaseStatus(
        name="teacher",
        state=PhaseState.RUNNING,
        counts=TrialCounts(total=6, pending=3, running=1, failed=1, succeeded=1),
        failure_rate=1 / 6,
        max_failure_rate=0.2,
        best=BestTrial(trial=best.name, metric="val_loss", value=0.2),
        estimated_completion_time=now + timedelta(seconds=planner_eta_s),
        start_time=now - timedelta(seconds=40),
    )
    student = PhaseStatus(name="student", max_failure_rate=0.2)
    status = TrainingCampaignStatus(
        state=CampaignState.RUNNING,
        phases=[teacher, student],
        current_phase="teacher",
        start_time=now - timedelta(seconds=40),
    )
    return Snapshot(
        name="nifty", status=status, trials=trials, now=now, runner="runner pid 1", campaign=campaign()
    )


def finished_campaign() -> CampaignData:
    """The same campaign after the teacher phase: its gate held with its values recorded."""
    snap = running_campaign()
    now = snap.now + timedelta(seconds=30)
    trials = [
        t
        if t.status.state != TrialState.RUNNING and t.status.state != TrialState.PENDING
        else _with(
            t,
            TrialState.SUCCEEDED,
            attempt=1,
            reason="Completed",
            start_time=now - timedelta(seconds=10),
            completion_time=now,
            epoch=4,
            history=(h := _history(4, 0.9 + 0.1 * i)),
            metrics=h[-1].metrics,
            best=BestEpoch(epoch=4, metrics=h[-1].metrics),
        )
        for i, t in enumerate(snap.trials)
    ]
    best_name = snap.status.phases[0].best.trial if snap.status.phases[0].best else ""
    teacher = snap.status.phases[0].model_copy(
        update={
            "state": PhaseState.SUCCEEDED,
            "counts": TrialCounts(total=6, failed=1, succeeded=5),
            "gate": GateStatus(
                expression="phase.best.metrics.val_loss < 2.0",
                passed=True,
                values={"best": {"trial": best_name, "value": 0.2, "metrics": {"val_loss": 0.2}}},
            ),
            "completion_time": now,
        }
    )
    student = PhaseStatus(
        name="student",
        state=PhaseState.SUCCEEDED,
        max_failure_rate=0.2,
        promoted={"lr": 0.01, "symbol": {"name": "RELIANCE"}},
    )
    status = snap.status.model_copy(
        update={"state": CampaignState.SUCCEEDED, "phases": [teacher, student], "completion_time": now}
    )
    return CampaignData(snap.campaign or campaign(), status, trials)
