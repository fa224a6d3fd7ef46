"""Turning (campaign, phase, sweep point) into a fully resolved Trial object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaign_operator.api.campaign import Phase, TrainingCampaign
from campaign_operator.api.common import METRICS_LIMIT, Objective
from campaign_operator.api.meta import ObjectMeta
from campaign_operator.api.trial import Scheduling, Trial, TrialCheckpoint, TrialSpec

from .expressions import compile_expression
from .naming import trial_name
from .scaledown import sample, scaled_epochs, trials_per_phase
from .sweeps import SweepPoint, expand
from .views import expression_metrics

LABEL_CAMPAIGN = "campaign"
LABEL_PHASE = "phase"


def phase_objective(campaign: TrainingCampaign, phase: Phase) -> Objective:
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


def build_trial(
    campaign: TrainingCampaign, phase: Phase, point: SweepPoint, promoted: dict[str, Any] | None
) -> Trial:
    spec = campaign.spec
    template = spec.template
    name = trial_name(campaign.metadata.name, phase.name, point.params)
    pool = next((p for p in spec.node_pools if p.name == phase.node_pool), None)
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
            parameters=merged_parameters(campaign, phase, promoted, point.params),
            sweep_point=point.params,
            dataset=phase.dataset or template.dataset,
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
        ),
    )


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
        name = trial_name(campaign.metadata.name, phase.name, point.params)
        out.append(PlannedTrial(name, point, params, skip_reason(phase, index, params)))
    limit = trials_per_phase(campaign.spec.scale_down)
    if limit is None:
        return out
    return sample(out, lambda t: t.point.key, lambda t: t.skip is not None, limit)
