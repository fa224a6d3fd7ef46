"""Turning (campaign, phase, sweep point) into a fully resolved Trial object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaign_operator.api.campaign import Phase, TrainingCampaign
from campaign_operator.api.common import METRICS_LIMIT, DatasetSpec, Objective, TrialState
from campaign_operator.api.meta import ObjectMeta
from campaign_operator.api.trial import Scheduling, Trial, TrialCheckpoint, TrialSpec, TrialStatus

from .expressions import ExpressionError, compile_expression
from .inputs import INPUT_AMBIGUOUS, InputDecision, InputError, InputMatcher
from .naming import search_trial_name, trial_name
from .scaledown import sample, scaled_epochs, trials_per_phase
from .sweeps import SweepPoint, expand
from .templates import DatasetTemplateError, resolve_dataset
from .views import expression_metrics

LABEL_CAMPAIGN = "campaign"
LABEL_PHASE = "phase"


def point_name(campaign: str, phase: str, point: SweepPoint) -> str:
    """The name of the point's trial: by index for a search, by parameters otherwise."""
    if point.searched:
        return search_trial_name(campaign, phase, point.index)
    return trial_name(campaign, phase, point.params)


def phase_objective(campaign: TrainingCampaign, phase: Phase) -> Objective:
    """The metric that picks each trial's best epoch and the phase's best trial: a multi-objective
    phase's first objective (its others are read at that epoch)."""
    if phase.objectives:
        return phase.objectives[0]
    return phase.objective or campaign.spec.objective


def merged_parameters(
    campaign: TrainingCampaign, phase: Phase, promoted: dict[str, Any] | None, point: dict[str, Any]
) -> dict[str, Any]:
    """template < phase < promoted best of an earlier phase < the sweep point."""
    return {**campaign.spec.template.hyperparameters, **phase.hyperparameters, **(promoted or {}), **point}


def checkpoint_uri(campaign: TrainingCampaign, name: str) -> str | None:
    storage = campaign.spec.storage
    if storage is None:
        return None
    if storage.s3 is not None:
        return f"{storage.s3.uri.rstrip('/')}/{campaign.metadata.name}/{name}"
    assert storage.pvc is not None
    return f"{storage.pvc.path.rstrip('/')}/{campaign.metadata.name}/{name}"


def dataset_field(campaign: TrainingCampaign, index: int) -> str:
    """Where spec.phases[index]'s dataset is written: its own, or the template's."""
    phase = campaign.spec.phases[index]
    return f"spec.phases[{index}].dataset" if phase.dataset is not None else "spec.template.dataset"


def trial_dataset(campaign: TrainingCampaign, phase: Phase, params: dict[str, Any]) -> DatasetSpec | None:
    """The dataset of the trial with these merged parameters, its references resolved.
    Raises DatasetTemplateError."""
    return resolve_dataset(phase.dataset or campaign.spec.template.dataset, params)


def build_trial(
    campaign: TrainingCampaign,
    phase: Phase,
    point: SweepPoint,
    promoted: dict[str, Any] | None,
    inputs: dict[str, str] | None = None,
) -> Trial:
    """Raises DatasetTemplateError when the dataset's references do not resolve over its parameters."""
    spec = campaign.spec
    template = spec.template
    name = point_name(campaign.metadata.name, phase.name, point)
    pool = next((p for p in spec.node_pools if p.name == phase.node_pool), None)
    parameters = merged_parameters(campaign, phase, promoted, point.params)
    return Trial(
        metadata=ObjectMeta(
            name=name,
            namespace=campaign.metadata.namespace,
            labels={LABEL_CAMPAIGN: campaign.metadata.name, LABEL_PHASE: phase.name},
        ),
        spec=TrialSpec(
            campaign=campaign.metadata.name,
            phase=phase.name,
            task=phase.task or template.task,
            parameters=parameters,
            sweep_point=point.params,
            dataset=trial_dataset(campaign, phase, parameters),
            epochs=scaled_epochs(phase.epochs or template.epochs, spec.scale_down),
            batch_size=template.batch_size,
            resources=phase.resources or template.resources,
            precision=template.precision,
            objective=phase_objective(campaign, phase),
            stop_rules=[*template.stop_rules, *phase.stop_rules],
            early_stopping=phase.early_stopping or template.early_stopping,
            keep_metrics=list(expression_metrics(campaign))[:METRICS_LIMIT],
            checkpoint=TrialCheckpoint(
                uri=checkpoint_uri(campaign, name),
                every_epochs=template.checkpoint.every_epochs,
                keep=template.checkpoint.keep,
            ),
            image=(pool.image if pool and pool.image else None) or template.image,
            scheduling=Scheduling(
                node_pool=pool,
                priority_class_name=phase.priority_class_name,
                queue_name=spec.queue_name,
                workload_priority_class=phase.workload_priority_class,
            ),
            priority=phase.priority,
            inputs=inputs or {},
        ),
    )


class TrialSetupError(ValueError):
    """A trial of the phase cannot be built or its skip decided: the phase fails with `reason` and
    nothing of it is created (as with a `when` that cannot be evaluated)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def new_trial(
    campaign: TrainingCampaign,
    index: int,
    point: SweepPoint,
    promoted: dict[str, Any] | None,
    matcher: InputMatcher | None,
) -> Trial:
    """The Trial plan() creates for `point`: its spec, and a Skipped status when a skipWhen rule holds
    (first) or an input is not there to consume. Raises TrialSetupError."""
    phase = campaign.spec.phases[index]
    params = merged_parameters(campaign, phase, promoted, point.params)
    skip, decision = decide_skip(campaign, index, params, matcher)
    try:
        trial = build_trial(campaign, phase, point, promoted, decision.inputs)
    except DatasetTemplateError as e:
        name = point_name(campaign.metadata.name, phase.name, point)
        where = f"{dataset_field(campaign, index)}.{e.field}"
        raise TrialSetupError("DatasetTemplateError", f"{where}: {e.problem} (in trial {name})") from None
    if skip is not None:
        trial.status = TrialStatus(state=TrialState.SKIPPED, reason=skip[0], message=skip[1])
    return trial


def decide_skip(
    campaign: TrainingCampaign, index: int, params: dict[str, Any], matcher: InputMatcher | None
) -> tuple[tuple[str, str] | None, InputDecision]:
    """(skip, inputs) of the trial with these merged parameters. Pure: the same observed trials give
    the same answer, so deciding again for a trial whose status was lost is safe. Raises
    TrialSetupError."""
    phase = campaign.spec.phases[index]
    try:
        skip = skip_reason(phase, index, params)
        if skip is not None or matcher is None:
            return skip, InputDecision()
        decision = matcher.decide(params)
    except ExpressionError as e:
        raise TrialSetupError("SkipWhenError", str(e)) from None
    except InputError as e:
        raise TrialSetupError(INPUT_AMBIGUOUS, f"spec.phases[{index}].inputs: {e.message}") from None
    return decision.skip, decision


def skip_reason(phase: Phase, index: int, params: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the first skipWhen rule that holds for these parameters, else None.
    Raises ExpressionError when a rule cannot be evaluated over them (e.g. a missing key)."""
    for j, rule in enumerate(phase.skip_when):
        expr = compile_expression(f"spec.phases[{index}].skipWhen[{j}].expression", rule.expression)
        if expr.holds(params=params):
            return rule.reason, rule.message or f"skipWhen matched: {rule.expression}"
    return None


@dataclass(frozen=True)
class PlannedTrial:
    """A trial as the manifest alone determines it (before anything has run)."""

    name: str
    point: SweepPoint
    parameters: dict[str, Any]
    skip: tuple[str, str] | None
    """(reason, message) when a skipWhen rule marks it Skipped."""


def phase_trials(
    campaign: TrainingCampaign, index: int, promoted: dict[str, Any] | None = None
) -> list[PlannedTrial]:
    """Every distinct trial of spec.phases[index] (spec.scaleDown: its sample), in sweep order, with
    merged parameters and skip decisions: what plan() creates for the phase once it starts (given
    the same `promoted`)."""
    phase = campaign.spec.phases[index]
    out = []
    for point in expand(phase):
        params = merged_parameters(campaign, phase, promoted, point.params)
        name = point_name(campaign.metadata.name, phase.name, point)
        out.append(PlannedTrial(name, point, params, skip_reason(phase, index, params)))
    limit = trials_per_phase(campaign.spec.scale_down)
    if limit is None:
        return out
    return sample(out, lambda t: t.point.key, lambda t: t.skip is not None, limit)
