"""Reading a campaign manifest from a file (the embedded runner's only input)."""

from __future__ import annotations

from pathlib import Path

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import DatasetSpec
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.admission import load_campaign


def load_campaign_file(path: str | Path) -> TrainingCampaign:
    """The one TrainingCampaign in a YAML/JSON file (documents of other kinds are ignored), judged
    exactly as `campaign validate` and the apiserver judge it, its local dataset paths anchored at
    the file's directory."""
    docs = parse_manifests(Path(path).read_text(encoding="utf-8"))
    campaigns = [d for d in docs if d.get("kind") == "TrainingCampaign"]
    if len(campaigns) != 1:
        raise SpecError([f"{path}: expected exactly one TrainingCampaign document, found {len(campaigns)}"])
    return anchored(load_campaign(campaigns[0]), Path(path).resolve().parent)


def _anchored_dataset(dataset: DatasetSpec | None, base: Path) -> DatasetSpec | None:
    path = dataset.path if dataset is not None else None
    if dataset is None or path is None or path.startswith("s3://") or Path(path).is_absolute():
        return dataset
    # The base is text inside a possible `{param}` template: its own braces are literal.
    prefix = str(base).replace("{", "{{").replace("}", "}}")
    return dataset.model_copy(update={"path": f"{prefix}/{path.removeprefix('./')}"})


def anchored(campaign: TrainingCampaign, base: Path) -> TrainingCampaign:
    """Relative local dataset paths (template and phases) resolved against `base`, the manifest's
    directory, as docker compose and kustomize resolve theirs: `campaign run examples/x.yaml` reads
    examples/data/... from any working directory, and the trials' specs hold where it really read."""
    spec = campaign.spec
    template = spec.template.model_copy(update={"dataset": _anchored_dataset(spec.template.dataset, base)})
    phases = [p.model_copy(update={"dataset": _anchored_dataset(p.dataset, base)}) for p in spec.phases]
    new_spec = spec.model_copy(update={"template": template, "phases": phases})
    return campaign.model_copy(update={"spec": new_spec})
