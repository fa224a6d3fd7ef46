"""Reading a campaign manifest from a file (the embedded runner's only input)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.validation import SpecError, parse_model


def load_campaign_file(path: str | Path) -> TrainingCampaign:
    """The one TrainingCampaign in a YAML file (other documents are ignored)."""
    # TODO(cli merge): switch to campaign_operator.api.manifest.load_campaign once it lands.
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if isinstance(d, dict)]
    campaigns: list[dict[str, Any]] = [d for d in docs if d.get("kind") == "TrainingCampaign"]
    if len(campaigns) != 1:
        raise SpecError([f"{path}: expected exactly one TrainingCampaign document, found {len(campaigns)}"])
    return parse_model(TrainingCampaign, campaigns[0])
