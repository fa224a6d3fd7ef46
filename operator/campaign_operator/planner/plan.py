"""plan(campaign, trials, now) -> Plan: every decision about a campaign, with no I/O.

The shells (kopf operator, embedded runner) observe Trials, call plan(), apply its actions in
order and write its status. All state lives in Trial objects, so a restarted shell re-plans to the
same answer: trial names are deterministic, creation and launches are idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from campaign_operator.api.campaign import (
    BestTrial,
    CampaignState,
    GateStatus,
    Phase,
    PhaseState,
    PhaseStatus,
    Promotion,
    RunKind,
    SearchSweep,
    TrainingCampaign,
    TrainingCampaignStatus,
    TrialCounts,
)
from campaign_operator.api.common import ConditionStatus, Mode, StopAction, TrialState
from campaign_operator.api.trial import Trial, TrialStatus
from campaign_operator.lifecycle.outcomes import DATA_ERROR, INPUT_MISSING, NON_FINITE_LOSS
from campaign_operator.lifecycle.stoprules import StopDecision
from campaign_operator.lifecycle.stoprules import evaluate as evaluate_stop_rules
from campaign_operator.lifecycle.transitions import METRICS_UNAVAILABLE

from . import accounting, early_termination, pareto
from .actions import Action, CreateTrial, EmitEvent, FinishTrial, LaunchTrial
from .conditions import set_condition
from .expressions import ExpressionError, compile_expression
from .inputs import InputMatcher
from .naming import canonical_json, search_trial_name
from .scaledown import run_kind, search_budget
from .search import Observation, Outcome, observation, suggest
from .semantics import problems_message, semantic_problems
from .sweeps import SweepPoint, expand, search_of
from .trials import TrialSetupError, decide_skip, new_trial, phase_objective, phase_trials, point_name
from .views import best_trial, expression_metrics, gate_values, phase_view

NON_RETRYABLE_REASONS = frozenset(
    {NON_FINITE_LOSS, "InvalidSpec", METRICS_UNAVAILABLE, DATA_ERROR, INPUT_MISSING}
)
CANCELLED = "Cancelled"


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: TrainingCampaignStatus
    requeue_after: float | None = None
    """Seconds until a time-based decision (a retry backoff) is due; None: nothing pending on time."""


@dataclass
class _Launchable:
    sort_key: tuple[int, int, int]
    phase: str
    name: str
    attempt: int


@dataclass
class _Work:
    actions: list[Action] = field(default_factory=list)
    launchable: list[_Launchable] = field(default_factory=list)
    running_by_phase: dict[str, int] = field(default_factory=dict)
    wait_seconds: list[float] = field(default_factory=list)


def retry_due(trial: Trial, backoff_seconds: int) -> datetime | None:
    """When a failed attempt may be retried: backoff doubling with each attempt."""
    finished = trial.status.completion_time or trial.status.start_time
    if finished is None:
        return None
    return finished + timedelta(seconds=backoff_seconds * 2 ** max(trial.status.attempt - 1, 0))


def _retryable(trial: Trial, retries: int) -> bool:
    if trial.status.state != TrialState.FAILED or trial.status.attempt > retries:
        return False
    deliberate = {r.reason for r in trial.spec.stop_rules if r.action == StopAction.FAIL}
    return trial.status.reason not in NON_RETRYABLE_REASONS | deliberate


def _promoted(
    campaign: TrainingCampaign,
    phase: Phase,
    trials_by_phase: dict[str, list[Trial]],
    fronts: dict[str, list[pareto.FrontPoint]],
) -> tuple[dict[str, Any] | None, str | None]:
    """Parameters taken from the best trial of fromPhase (of its front, when it is multi-objective),
    or an error message."""
    promo = phase.from_phase
    if promo is None:
        return None, None
    source = next(p for p in campaign.spec.phases if p.name == promo.phase)
    chosen = _promotion_source(
        campaign, source, promo, trials_by_phase.get(promo.phase, []), fronts.get(promo.phase, [])
    )
    if isinstance(chosen, str):
        return None, chosen
    best = chosen
    seed_params = {"seed"} | (
        {source.sweep.seeds.parameter} if source.sweep and source.sweep.seeds else set()
    )
    if promo.keys is not None:
        missing = [k for k in promo.keys if k not in best.parameters]
        if missing:
            return None, f"fromPhase.keys {missing} are not parameters of {best.trial}"
        return {k: best.parameters[k] for k in promo.keys}, None
    return {k: v for k, v in best.parameters.items() if k not in seed_params}, None


def _promotion_source(
    campaign: TrainingCampaign,
    source: Phase,
    promo: Promotion,
    trials: list[Trial],
    front: list[pareto.FrontPoint],
) -> BestTrial | str:
    """The trial fromPhase takes parameters from (as a BestTrial), or why there is none. From a
    multi-objective phase: a front trial, by the declared rule (pareto.promoted_point)."""
    if source.objectives:
        point = pareto.promoted_point(front, source.objectives, promo.metric, promo.weights)
        if point is None:
            metrics = ", ".join(o.metric for o in source.objectives)
            return f"phase {promo.phase} has no Succeeded trial with finite {metrics} to promote"
        first = source.objectives[0].metric
        return BestTrial(
            trial=point.name, metric=first, value=point.values[0], parameters=point.trial.spec.parameters
        )
    objective = phase_objective(campaign, source)
    metric = promo.metric or objective.metric
    best = best_trial(trials, metric, promo.mode or objective.mode)
    return best or f"phase {promo.phase} has no Succeeded trial reporting {metric} to promote"


def _points(
    campaign: TrainingCampaign, index: int, phase: Phase, promoted: dict[str, Any] | None
) -> list[SweepPoint]:
    """The phase's sweep points, or under spec.scaleDown its sample (which reads skipWhen, so it may
    raise ExpressionError)."""
    if campaign.spec.scale_down is None:
        return expand(phase)
    return [t.point for t in phase_trials(campaign, index, promoted)]


class _Planner:
    def __init__(self, campaign: TrainingCampaign, trials: Sequence[Trial], now: datetime):
        self.campaign = campaign
        self.run = run_kind(campaign.spec.scale_down)
        self.now = now
        self.old = campaign.status or TrainingCampaignStatus()
        self.old_phases = {p.name: p for p in self.old.phases}
        self.generation = campaign.metadata.generation
        name = campaign.metadata.name
        self.observed = {t.name: t for t in trials if t.spec.campaign == name}
        self.work = _Work()
        self.results: dict[str, PhaseStatus] = {}
        self.trials_by_phase: dict[str, list[Trial]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.fronts: dict[str, list[pareto.FrontPoint]] = {}
        """Each active multi-objective phase's Pareto front, found once per plan."""

    # -- phases -----------------------------------------------------------------------------
    def phase(self, index: int, phase: Phase) -> PhaseStatus:
        status = self._phase(index, phase)
        status.message = self._marked(status.message)
        return status

    def _marked(self, message: str | None) -> str | None:
        """A scaled-down run says so first in every phase and campaign message."""
        prefix = f"{self.run.value} run: "
        if self.run == RunKind.FULL or message is None or message.startswith(prefix):
            return message
        return prefix + message

    def _unmarked(self, message: str | None) -> str:
        return (message or "").removeprefix(f"{self.run.value} run: ")

    def _phase(self, index: int, phase: Phase) -> PhaseStatus:
        prev = self.old_phases.get(phase.name)
        status = PhaseStatus(
            name=phase.name,
            max_failure_rate=phase.failure_policy.max_failure_rate,
            start_time=prev.start_time if prev else None,
            completion_time=prev.completion_time if prev else None,
        )
        deps = [self.results[d] for d in phase.depends_on]
        broken = next((d for d in deps if d.state in (PhaseState.FAILED, PhaseState.SKIPPED)), None)
        if broken is not None:
            reason = "DependencyFailed" if broken.state == PhaseState.FAILED else "DependencySkipped"
            return self._ended(
                status,
                PhaseState.SKIPPED,
                reason,
                f"dependsOn {broken.name}, which {broken.state.value.lower()}",
            )
        if any(d.state != PhaseState.SUCCEEDED for d in deps):
            waiting = ", ".join(d.name for d in deps if d.state != PhaseState.SUCCEEDED)
            status.reason, status.message = "WaitingForDependencies", f"waiting for {waiting}"
            return status
        if phase.when is not None:
            expr = compile_expression(f"spec.phases[{index}].when", phase.when)
            try:
                go = expr.holds(phases={d: self.views[d] for d in phase.depends_on})
            except ExpressionError as e:
                return self._ended(status, PhaseState.FAILED, "WhenError", str(e))
            if not go:
                return self._ended(status, PhaseState.SKIPPED, "WhenNotMet", f"when is false: {phase.when}")
        promoted, problem = _promoted(self.campaign, phase, self.trials_by_phase, self.fronts)
        if problem is not None:
            return self._ended(status, PhaseState.FAILED, "NoTrialToPromote", problem)
        status.promoted = promoted
        return self._active(index, phase, status, promoted)

    def _searched(self, phase: Phase, search: SearchSweep) -> list[SweepPoint]:
        """A search phase's points: its trials created so far (by index), then a suggestion for each
        slot free now (budget and parallelism allowing), from those trials as observed."""
        name = self.campaign.metadata.name
        budget = search_budget(search, self.campaign.spec.scale_down)
        created = {
            i: t for i in range(budget) if (t := self.observed.get(search_trial_name(name, phase.name, i)))
        }
        objectives = phase.objectives or [phase_objective(self.campaign, phase)]
        retries = phase.failure_policy.retries
        history = [observation(i, t, objectives, _retryable(t, retries)) for i, t in created.items()]
        points = [SweepPoint(o.index, o.params, canonical_json(o.params), searched=True) for o in history]
        parallel = phase.max_parallel_trials or self.campaign.spec.max_parallel_trials or 1
        slots = parallel - sum(o.outcome == Outcome.RUNNING for o in history)
        for index in [i for i in range(budget) if i not in created][: max(slots, 0)]:
            params = suggest(search, [o.mode for o in objectives], history, index)
            if params is None:
                break
            history.append(Observation(index, params, Outcome.RUNNING))
            points.append(SweepPoint(index, params, canonical_json(params), searched=True))
        return points

    def _early_terminated(self, phase: Phase, points: list[SweepPoint]) -> dict[str, StopDecision]:
        """The phase's Running trials its earlyTermination stops now, judged against its observed trials
        (a trial's own stop rules, evaluated first, take precedence)."""
        policy = phase.early_termination
        if policy is None:
            return {}
        name = self.campaign.metadata.name
        observed = [self.observed.get(point_name(name, phase.name, p)) for p in points]
        trials = [t for t in observed if t is not None]
        if not any(t.status.state == TrialState.RUNNING for t in trials):
            return {}
        return early_termination.decide(policy, phase_objective(self.campaign, phase), trials)

    def _ended(self, status: PhaseStatus, state: PhaseState, reason: str, message: str) -> PhaseStatus:
        status.state, status.reason, status.message = state, reason, message
        status.completion_time = status.completion_time or self.now
        return status

    def _active(
        self, index: int, phase: Phase, status: PhaseStatus, promoted: dict[str, Any] | None
    ) -> PhaseStatus:
        policy = phase.failure_policy
        counts = TrialCounts()
        trials: list[Trial] = []
        pending: list[tuple[int, Trial]] = []
        running: list[Trial] = []
        created = 0
        name = self.campaign.metadata.name
        first_action = len(self.work.actions)
        matcher = InputMatcher(phase, self.trials_by_phase) if phase.inputs else None
        search = search_of(phase)
        try:
            points = (
                self._searched(phase, search) if search else _points(self.campaign, index, phase, promoted)
            )
        except ExpressionError as e:
            return self._ended(status, PhaseState.FAILED, "SkipWhenError", str(e))
        terminated = self._early_terminated(phase, points)
        for point in points:
            trial = self.observed.get(point_name(name, phase.name, point))
            try:
                if trial is None:
                    trial = new_trial(self.campaign, index, point, promoted, matcher)
                    self.work.actions.append(CreateTrial(trial))
                    created += 1
                elif (
                    trial.status.state == TrialState.PENDING
                    and trial.status.attempt == 0
                    and (phase.skip_when or phase.inputs)
                ):
                    # Created, but its Skipped status never landed (the shell died between the create
                    # and the status write): decide the skip again instead of launching it.
                    skip, _ = decide_skip(self.campaign, index, trial.spec.parameters, matcher)
                    if skip is not None:
                        self.work.actions.append(FinishTrial(trial.name, TrialState.SKIPPED, *skip, False))
                        skipped = TrialStatus(state=TrialState.SKIPPED, reason=skip[0], message=skip[1])
                        trial = trial.model_copy(update={"status": skipped})
            except TrialSetupError as e:
                # A rule that compiles but cannot run over these parameters (a missing key), a dataset
                # or an input that does not resolve: the phase fails as with a broken `when` or gate;
                # nothing of it is created.
                del self.work.actions[first_action:]
                return self._ended(status, PhaseState.FAILED, e.reason, e.message)
            trials.append(trial)
            counts.total += 1
            state = trial.status.state
            if state == TrialState.RUNNING:
                decision = evaluate_stop_rules(
                    trial.spec.stop_rules, trial.spec.early_stopping, trial.status.history
                ) or terminated.get(trial.name)
                if decision is not None:
                    self.work.actions.append(
                        FinishTrial(trial.name, decision.state, decision.reason, decision.message, True)
                    )
                    state = decision.state
            if state == TrialState.PENDING:
                counts.pending += 1
                pending.append((point.index, trial))
            elif state == TrialState.RUNNING:
                counts.running += 1
                running.append(trial)
            elif state == TrialState.FAILED and _retryable(trial, policy.retries):
                counts.pending += 1
                pending.append((point.index, trial))
            elif state == TrialState.SUCCEEDED:
                counts.succeeded += 1
            elif state == TrialState.FAILED:
                counts.failed += 1
            elif state == TrialState.STOPPED:
                counts.stopped += 1
            else:
                counts.skipped += 1
        if created:
            self.work.actions.append(
                EmitEvent("Normal", "TrialsCreated", f"phase {phase.name}: created {created} trial(s)")
            )
        self.trials_by_phase[phase.name] = trials
        status.counts = counts
        status.failure_rate = accounting.failure_rate(counts.failed, counts.total, counts.skipped)
        objective = phase_objective(self.campaign, phase)
        ranked: list[Trial] = trials
        if phase.objectives:
            front = self.fronts[phase.name] = pareto.pareto_front(trials, phase.objectives)
            status.front, status.front_size = pareto.bounded_front(front, phase.objectives), len(front)
            ranked = [p.trial for p in front]  # the best by the first objective is then a front trial
        status.best = best_trial(ranked, objective.metric, objective.mode, expression_metrics(self.campaign))
        status.start_time = status.start_time or self.now
        status.state = PhaseState.RUNNING
        status.reason, status.message = (
            "TrialsRunning",
            f"{self._finished(counts)}/{counts.total} trials finished{self._of_plan(phase)}",
        )

        if accounting.exceeds(counts.failed, counts.total, counts.skipped, policy.max_failure_rate) and (
            policy.fail_fast or counts.pending + counts.running == 0
        ):
            self._cancel(pending, running, counts)
            return self._ended(
                status, PhaseState.FAILED, "FailureThresholdExceeded", self._threshold_message(phase, counts)
            )
        if counts.pending + counts.running > 0:
            self._queue(index, phase, pending, counts)
            waiting = {t.name for _, t in pending}
            finished = [t for t in trials if t.status.state.is_terminal and t.name not in waiting]
            status.estimated_completion_time = self._eta(phase, finished, counts)
            return status
        if phase.gate is not None:
            return self._gate(index, phase, status, trials)
        return self._ended(status, PhaseState.SUCCEEDED, "AllTrialsFinished", status.message or "")

    def _of_plan(self, phase: Phase) -> str:
        """What the phase's trial count is out of: a search's budget, a scaled-down run's plan."""
        search = search_of(phase)
        if search is not None:
            budget = search_budget(search, self.campaign.spec.scale_down)
            full = f", {search.trials} in the full plan" if budget < search.trials else ""
            return f" (search: {budget} trials in all{full})"
        return f" (a sample of the plan's {len(expand(phase))})" if self.run != RunKind.FULL else ""

    def _gate(self, index: int, phase: Phase, status: PhaseStatus, trials: list[Trial]) -> PhaseStatus:
        assert phase.gate is not None
        view = phase_view(status, trials, pareto.phase_front_view(phase, self.fronts.get(phase.name, [])))
        values = gate_values(view, status.best, status.front)
        gate = GateStatus(expression=phase.gate.expression, values=values)
        status.gate = gate
        expr = compile_expression(f"spec.phases[{index}].gate.expression", phase.gate.expression)
        try:
            passed = expr.holds(phase=view)
        except ExpressionError as e:
            gate.passed, gate.message = False, e.problem
            return self._ended(
                status, PhaseState.FAILED, "GateError", f"{e.field}: could not be evaluated: {e.problem}"
            )
        gate.passed = passed
        if not passed:
            gate.message = phase.gate.message or f"gate does not hold: {phase.gate.expression}"
            best = f"; best {view['best']['metric']}={view['best']['value']:.4g}" if "best" in view else ""
            if self.run == RunKind.SMOKE:
                # A smoke run's few short trials are not expected to pass; it tests the pipeline.
                return self._ended(
                    status,
                    PhaseState.SUCCEEDED,
                    "GateNotEnforced",
                    f"the gate did not hold and was not enforced in a smoke run: {gate.message}{best}",
                )
            return self._ended(status, PhaseState.FAILED, "GateNotMet", f"{gate.message}{best}")
        return self._ended(status, PhaseState.SUCCEEDED, "GatePassed", f"gate holds: {phase.gate.expression}")

    @staticmethod
    def _finished(c: TrialCounts) -> int:
        return c.succeeded + c.failed + c.stopped + c.skipped

    @staticmethod
    def _threshold_message(phase: Phase, c: TrialCounts) -> str:
        rate = accounting.failure_rate(c.failed, c.total, c.skipped)
        return (
            f"phase {phase.name}: failure rate {rate:.1%} ({c.failed} failed of {c.total - c.skipped} trials,"
            f" {c.skipped} skipped excluded) exceeds maxFailureRate"
            f" {phase.failure_policy.max_failure_rate:.1%}"
        )

    def _cancel(self, pending: list[tuple[int, Trial]], running: list[Trial], counts: TrialCounts) -> None:
        """Stops what the failed phase still had going; counts show the world after that."""
        counts.stopped += counts.pending + counts.running
        counts.pending = counts.running = 0
        msg = "cancelled: the phase failed"
        for t in running:
            self.work.actions.append(FinishTrial(t.name, TrialState.STOPPED, CANCELLED, msg, True))
        for _, t in pending:
            self.work.actions.append(FinishTrial(t.name, TrialState.STOPPED, CANCELLED, msg, False))

    def _queue(self, index: int, phase: Phase, pending: list[tuple[int, Trial]], counts: TrialCounts) -> None:
        # counts.running already excludes trials this plan stops (stop rules), so the budget they
        # free is used now; otherwise a re-plan would launch more and the plan not be a fixed point.
        self.work.running_by_phase[phase.name] = counts.running
        for point_index, trial in pending:
            if trial.status.state == TrialState.FAILED:
                due = retry_due(trial, phase.failure_policy.backoff_seconds)
                if due is not None and due > self.now:
                    self.work.wait_seconds.append((due - self.now).total_seconds())
                    continue
            self.work.launchable.append(
                _Launchable(
                    (-phase.priority, index, point_index), phase.name, trial.name, trial.status.attempt + 1
                )
            )

    def _eta(self, phase: Phase, finished: list[Trial], c: TrialCounts) -> datetime | None:
        """Waves of the remaining trials times the mean duration of finished (non-skipped) ones."""
        durations = [
            (t.status.completion_time - t.status.start_time).total_seconds()
            for t in finished
            if t.status.start_time and t.status.completion_time
        ]
        if not durations:
            return None
        limits = [x for x in (phase.max_parallel_trials, self.campaign.spec.max_parallel_trials) if x]
        parallel = max(1, min([c.pending + c.running, *limits]))
        waves = math.ceil((c.pending + c.running) / parallel)
        return self.now + timedelta(seconds=waves * sum(durations) / len(durations))

    # -- launches ---------------------------------------------------------------------------
    def _running(self) -> int:
        """Trials still running once this plan's own FinishTrial actions are applied."""
        finishing = {a.name for a in self.work.actions if isinstance(a, FinishTrial)}
        return sum(
            1
            for t in self.observed.values()
            if t.status.state == TrialState.RUNNING and t.name not in finishing
        )

    def launches(self) -> None:
        spec = self.campaign.spec
        if spec.suspend:
            return
        budget = math.inf if spec.max_parallel_trials is None else spec.max_parallel_trials - self._running()
        limits = {p.name: p.max_parallel_trials for p in spec.phases}
        for item in sorted(self.work.launchable, key=lambda x: x.sort_key):
            if budget <= 0:
                break
            limit = limits[item.phase]
            if limit is not None and self.work.running_by_phase[item.phase] >= limit:
                continue
            self.work.actions.append(LaunchTrial(item.name, item.attempt))
            self.work.running_by_phase[item.phase] += 1
            budget -= 1
            phase = self.results[item.phase]
            phase.counts.pending -= 1
            phase.counts.running += 1

    # -- campaign ---------------------------------------------------------------------------
    def status(self) -> TrainingCampaignStatus:
        spec = self.campaign.spec
        phases = [self.results[p.name] for p in spec.phases]
        totals = TrialCounts()
        for p in phases:
            for k in TrialCounts.model_fields:
                setattr(totals, k, getattr(totals, k) + getattr(p.counts, k))
        failed = [p for p in phases if p.state == PhaseState.FAILED]
        running = sorted(
            (p for p in phases if p.state == PhaseState.RUNNING),
            key=lambda p: -next(x.priority for x in spec.phases if x.name == p.name),
        )
        if all(p.state.is_terminal for p in phases):
            state = CampaignState.FAILED if failed else CampaignState.SUCCEEDED
        elif spec.suspend:
            state = CampaignState.SUSPENDED
        elif running:
            state = CampaignState.RUNNING
        else:
            state = CampaignState.PENDING
        if state == CampaignState.FAILED:
            reason, message = failed[0].reason or "PhaseFailed", failed[0].message or ""
        elif state == CampaignState.SUCCEEDED:
            done = sum(p.state == PhaseState.SUCCEEDED for p in phases)
            skipped = len(phases) - done
            unenforced = [p.name for p in phases if p.reason == "GateNotEnforced"]
            reason, message = "AllPhasesFinished", f"{done} phase(s) succeeded, {skipped} skipped"
            if unenforced:
                message += f"; gates not enforced (smoke run): {', '.join(unenforced)}"
        elif state == CampaignState.SUSPENDED:
            reason, message = "Suspended", "spec.suspend is true: no new trials start"
        else:
            reason = "Running" if running else "Pending"
            message = (
                ", ".join(f"{p.name}: {self._unmarked(p.message)}" for p in running) or "waiting to start"
            )
        message = self._marked(message) or ""
        shown = (
            running[0]
            if running
            else (failed[0] if failed else next((p for p in reversed(phases) if p.counts.total), None))
        )
        new = TrainingCampaignStatus(
            observed_generation=self.generation,
            state=state,
            reason=reason,
            message=message,
            current_phase=running[0].name if running else None,
            progress=f"{self._finished(totals)}/{totals.total}",
            fail_rate=f"{shown.failure_rate:.1%}/{shown.max_failure_rate:.0%}" if shown else None,
            phases=phases,
            trials=totals,
            start_time=self.old.start_time or (self.now if totals.total else None),
            completion_time=(self.old.completion_time or self.now)
            if state in (CampaignState.SUCCEEDED, CampaignState.FAILED)
            else None,
            conditions=self._conditions(state, reason, message, phases),
            run=self.run,
        )
        self._events(new)
        return new

    def _conditions(
        self, state: CampaignState, reason: str, message: str, phases: list[PhaseStatus]
    ) -> list[Any]:
        conds = list(self.old.conditions)
        gen, now = self.generation, self.now
        T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
        finished = state in (CampaignState.SUCCEEDED, CampaignState.FAILED)
        progressing = T if state in (CampaignState.RUNNING, CampaignState.PENDING) else F
        conds = set_condition(
            conds,
            "Progressing",
            progressing,
            reason if finished or progressing == F else "Running",
            message,
            gen,
            now,
        )
        succeeded = T if state == CampaignState.SUCCEEDED else (F if state == CampaignState.FAILED else U)
        conds = set_condition(
            conds,
            "Succeeded",
            succeeded,
            reason if finished else "InProgress",
            message if finished else "",
            gen,
            now,
        )
        conds = set_condition(
            conds,
            "Failed",
            T if state == CampaignState.FAILED else F,
            reason if state == CampaignState.FAILED else "NoFailure",
            message if state == CampaignState.FAILED else "",
            gen,
            now,
        )
        failing = [
            p
            for p in phases
            if p.state == PhaseState.FAILED or (p.state == PhaseState.RUNNING and p.counts.failed)
        ]
        degraded_msg = "; ".join(
            f"{p.name}: {p.counts.failed} failed ({p.failure_rate:.1%} of max {p.max_failure_rate:.0%})"
            for p in failing
        )
        conds = set_condition(
            conds,
            "Degraded",
            T if failing else F,
            "TrialsFailing" if failing else "AsExpected",
            degraded_msg,
            gen,
            now,
        )
        suspended = self.campaign.spec.suspend
        return set_condition(
            conds,
            "Suspended",
            T if suspended else F,
            "Suspended" if suspended else "NotSuspended",
            "spec.suspend is true" if suspended else "",
            gen,
            now,
        )

    def _events(self, new: TrainingCampaignStatus) -> None:
        for p in new.phases:
            before = self.old_phases.get(p.name)
            was = before.state if before else PhaseState.PENDING
            if p.state == was:
                continue
            if p.state == PhaseState.RUNNING:
                self.work.actions.append(EmitEvent("Normal", "PhaseStarted", f"phase {p.name} started"))
            elif p.state == PhaseState.SUCCEEDED:
                self.work.actions.append(
                    EmitEvent("Normal", "PhaseSucceeded", f"phase {p.name}: {p.message}")
                )
            elif p.state == PhaseState.FAILED:
                self.work.actions.append(EmitEvent("Warning", p.reason or "PhaseFailed", p.message or ""))
            elif p.state == PhaseState.SKIPPED:
                self.work.actions.append(EmitEvent("Normal", "PhaseSkipped", f"phase {p.name}: {p.message}"))
        if new.state != self.old.state and new.state in (CampaignState.SUCCEEDED, CampaignState.FAILED):
            kind: Literal["Normal", "Warning"] = (
                "Normal" if new.state == CampaignState.SUCCEEDED else "Warning"
            )
            self.work.actions.append(EmitEvent(kind, f"Campaign{new.state.value}", new.message or ""))


def plan(campaign: TrainingCampaign, trials: Sequence[Trial], now: datetime) -> Plan:
    """Decide everything about `campaign` given the Trials observed at `now`."""
    problems = semantic_problems(campaign)
    if problems:
        return _invalid(campaign, problems, now)
    planner = _Planner(campaign, trials, now)
    for index, phase in enumerate(campaign.spec.phases):
        result = planner.phase(index, phase)
        planner.results[phase.name] = result
        if result.state.is_terminal or result.state == PhaseState.RUNNING:
            trials = planner.trials_by_phase.get(phase.name, [])
            front = pareto.phase_front_view(phase, planner.fronts.get(phase.name, []))
            planner.views[phase.name] = phase_view(result, trials, front)
    planner.launches()
    status = planner.status()
    waits = planner.work.wait_seconds
    return Plan(tuple(planner.work.actions), status, min(waits) if waits else None)


def _invalid(campaign: TrainingCampaign, problems: list[str], now: datetime) -> Plan:
    """A spec only the operator can reject: Failed/InvalidSpec, nothing launched, nothing crashes."""
    old = campaign.status or TrainingCampaignStatus()
    message = problems_message(problems)
    gen = campaign.metadata.generation
    T, F = ConditionStatus.TRUE, ConditionStatus.FALSE
    conds = set_condition(list(old.conditions), "Failed", T, "InvalidSpec", message, gen, now)
    conds = set_condition(conds, "Progressing", F, "InvalidSpec", message, gen, now)
    conds = set_condition(conds, "Succeeded", F, "InvalidSpec", message, gen, now)
    status = old.model_copy(
        update={
            "observed_generation": gen,
            "state": CampaignState.FAILED,
            "reason": "InvalidSpec",
            "message": message,
            "conditions": conds,
        }
    )
    actions: tuple[Action, ...] = ()
    if old.reason != "InvalidSpec" or old.message != message:
        actions = (EmitEvent("Warning", "InvalidSpec", message),)
    return Plan(actions, status, None)


__all__ = ["Mode", "Plan", "plan", "retry_due"]
