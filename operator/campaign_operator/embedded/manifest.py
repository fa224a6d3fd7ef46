"""Reading a campaign manifest from a file (the embedded runner's only input)."""

from __future__ import annotations

from pathlib import Path

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.admission import load_campaign


def load_campaign_file(path: str | Path) -> TrainingCampaign:
    """The one TrainingCampaign in a YAML/JSON file (documents of other kinds are ignored), judged
    exactly as `campaign validate` and the apiserver judge it."""
    docs = parse_manifests(Path(path).read_text(encoding="utf-8"))
    campaigns = [d for d in docs if d.get("kind") == "TrainingCampaign"]
    if len(campaigns) != 1:
        raise SpecError([f"{path}: expected exactly one TrainingCampaign document, found {len(campaigns)}"])
    return load_campaign(campaigns[0])
