"""Admitting a manifest: what the apiserver checks, then what the operator checks before it creates
a single Trial. `campaign validate`, `campaign run` and the tests judge manifests through here."""

from __future__ import annotations

from typing import Any

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.manifest import parse_campaign
from campaign_operator.api.validation import SpecError

from .semantics import semantic_problems


def load_campaign(doc: dict[str, Any]) -> TrainingCampaign:
    """Judges one manifest as a TrainingCampaign, as the apiserver and then the operator would.

    Raises SpecError listing every problem of the first stage that fails: the header, the schema
    and CEL rules (`api.manifest.parse_campaign`), then the semantic checks the operator makes
    before creating a trial (`planner.semantics`: user CEL against the variables it can use,
    sweeps, skipWhen over every trial, thresholds, metric names). Each problem starts with the
    offending field's path, e.g. `spec.phases[1].failurePolicy.maxFailureRate: ...`.
    """
    campaign = parse_campaign(doc)
    problems = semantic_problems(campaign)
    if problems:
        raise SpecError(problems)
    return campaign
