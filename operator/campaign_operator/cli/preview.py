"""What a manifest will run, before anything has run: every phase's trials, names and parameters.

Pure: built from the planner's own `phase_trials`, so the preview names and skips exactly the
trials `plan()` will create.

Promotion (`fromPhase`) takes the best trial of an earlier phase, which is unknown until that phase
has run. The preview shows a promoted parameter's value where every candidate trial of the source
phase has the same value (it will be promoted whichever trial wins), and the marker
`"<best of SOURCE>"` where they differ; the phase's `promotedFrom` names the source phase, the
ranking metric and mode, and the keys still unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from campaign_operator.api.campaign import Phase, TrainingCampaign
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.expressions import ExpressionError
from campaign_operator.planner.scaledown import run_kind, scaled_epochs, search_budget
from campaign_operator.planner.sweeps import search_of
from campaign_operator.planner.trials import PlannedTrial, phase_objective, phase_trials

FIRST_TRIALS = 5
_MISSING = object()


def promotion_marker(source: str) -> str:
    return f"<best of {source}>"


@dataclass(frozen=True)
class PhasePreview:
    index: int
    phase: Phase
    trials: list[PlannedTrial]
    epochs: int
    promoted_from: dict[str, Any] | None = None
    """source phase, metric, mode and the promoted keys whose value is unknown at plan time."""

    searched: int = 0
    """Trials a search will create, one as each slot frees (none of them known before it runs)."""

    @property
    def skipped(self) -> int:
        return sum(1 for t in self.trials if t.skip is not None)

    @property
    def planned(self) -> int:
        return len(self.trials) + self.searched

    def to_json(self, first: int = FIRST_TRIALS) -> dict[str, Any]:
        p = self.phase
        out: dict[str, Any] = {
            "name": p.name,
            "priority": p.priority,
            "dependsOn": list(p.depends_on),
            "trials": self.planned,
            "skipped": self.skipped,
            "epochs": self.epochs,
            "maxFailureRate": p.failure_policy.max_failure_rate,
            "firstTrials": [_trial_json(t) for t in self.trials[:first]],
        }
        if p.when is not None:
            out["when"] = p.when
        if p.gate is not None:
            out["gate"] = p.gate.expression
        if self.promoted_from is not None:
            out["promotedFrom"] = self.promoted_from
        if (search := search_of(p)) is not None:
            out["search"] = search.model_dump(mode="json", by_alias=True) | {"trials": self.searched}
        return out


def _trial_json(t: PlannedTrial) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
    if t.skip is not None:
        out["skipped"] = {"reason": t.skip[0], "message": t.skip[1]}
    return out


@dataclass(frozen=True)
class CampaignPreview:
    campaign: TrainingCampaign
    phases: list[PhasePreview] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.planned for p in self.phases)

    @property
    def searched(self) -> int:
        return sum(p.searched for p in self.phases)

    @property
    def skipped(self) -> int:
        return sum(p.skipped for p in self.phases)

    def to_json(self, first: int = FIRST_TRIALS) -> dict[str, Any]:
        return {
            "campaign": self.campaign.metadata.name,
            "run": run_kind(self.campaign.spec.scale_down).value,
            "phases": [p.to_json(first) for p in self.phases],
            "total": self.total,
            "skipped": self.skipped,
        }


def _promotion(
    campaign: TrainingCampaign, phase: Phase, done: dict[str, PhasePreview]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(promoted parameters with markers for the unknown ones, the promotedFrom summary)."""
    promo = phase.from_phase
    if promo is None:
        return None, None
    source = done[promo.phase]
    objective = phase_objective(campaign, source.phase)
    candidates = [t.parameters for t in source.trials if t.skip is None]
    if promo.keys is not None:
        keys = list(promo.keys)
    else:
        # As plan() promotes: every parameter of the best trial except its seed.
        seeds = {"seed"} | ({s.seeds.parameter} if (s := source.phase.sweep) and s.seeds else set())
        keys = sorted({k for params in candidates for k in params} - seeds)
    promoted: dict[str, Any] = {}
    unknown = []
    for key in keys:
        values = [params.get(key, _MISSING) for params in candidates]
        if values and all(v is not _MISSING and v == values[0] for v in values):
            promoted[key] = values[0]
        else:
            promoted[key] = promotion_marker(promo.phase)
            unknown.append(key)
    # From a multi-objective phase: its front's best by one of its objectives, in that one's mode.
    ranked = next((o for o in source.phase.objectives or () if o.metric == promo.metric), objective)
    summary = {
        "phase": promo.phase,
        "metric": promo.metric or objective.metric,
        "mode": (promo.mode or ranked.mode).value,
        "keys": unknown,
        **({"weights": promo.weights} if promo.weights else {}),
    }
    return promoted, summary


def preview(campaign: TrainingCampaign) -> CampaignPreview:
    """Every phase's trials; raises SpecError when a skipWhen rule cannot be evaluated over them."""
    done: dict[str, PhasePreview] = {}
    problems: list[str] = []
    for index, phase in enumerate(campaign.spec.phases):
        promoted, summary = _promotion(campaign, phase, done)
        try:
            trials = phase_trials(campaign, index, promoted)
        except ExpressionError as e:
            problems.append(f"{e} (skipWhen is evaluated over each trial's merged parameters, `params`)")
            trials = []
        epochs = scaled_epochs(phase.epochs or campaign.spec.template.epochs, campaign.spec.scale_down)
        search = search_of(phase)
        searched = search_budget(search, campaign.spec.scale_down) if search else 0
        done[phase.name] = PhasePreview(index, phase, trials, epochs, summary, searched)
    if problems:
        raise SpecError(problems)
    return CampaignPreview(campaign, list(done.values()))
