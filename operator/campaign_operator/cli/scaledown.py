"""--smoke, --epochs-scale, --max-trials-per-phase: spec.scaleDown set from the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from campaign_operator.api.campaign import ScaleDown, TrainingCampaign

F = TypeVar("F", bound=Callable[..., Any])


def scale_down_options(command: F) -> F:
    """The three flags; each overrides the same field of the manifest's own spec.scaleDown."""
    options = [
        click.option(
            "--smoke",
            is_flag=True,
            help="A smoke test of the whole campaign: every phase with a sample of 2 trials of at most "
            "2 epochs (unless set below); gates are reported, not enforced.",
        ),
        click.option(
            "--epochs-scale",
            type=click.FloatRange(min=0, max=1, min_open=True),
            default=None,
            help="Each trial's epochs times this, rounded up (at least 1): a partial run.",
        ),
        click.option(
            "--max-trials-per-phase",
            type=click.IntRange(min=1),
            default=None,
            help="A deterministic sample of at most this many trials per phase (the same points in "
            "phases with the same sweep).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def scaled(
    campaign: TrainingCampaign, smoke: bool, epochs_scale: float | None, max_trials_per_phase: int | None
) -> TrainingCampaign:
    """`campaign` with the flags given merged over its spec.scaleDown; unchanged without flags."""
    flags: dict[str, Any] = {
        "smoke": smoke or None,
        "epochsScale": epochs_scale,
        "maxTrialsPerPhase": max_trials_per_phase,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return campaign
    base = campaign.spec.scale_down.to_wire() if campaign.spec.scale_down else {}
    # Valid by construction: the manifest's own fields were judged, click range-checks the flags.
    scale_down = ScaleDown.model_validate({**base, **given})
    spec = campaign.spec.model_copy(update={"scale_down": scale_down})
    return campaign.model_copy(update={"spec": spec})
