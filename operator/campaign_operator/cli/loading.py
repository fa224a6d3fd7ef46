"""Reading a manifest file for the commands: every TrainingCampaign in it, judged and previewed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from campaign_operator.api.base import GROUP
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.admission import load_campaign
from campaign_operator.planner.semantics import semantic_warnings

from .errors import BadInput, Infrastructure
from .preview import CampaignPreview, preview


@dataclass(frozen=True)
class Judged:
    """One campaign document of a file: its preview, or the problems that reject it."""

    label: str
    """Where it came from: the file, plus the document number when the file holds several."""
    preview: CampaignPreview | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What may be wrong but does not reject it (a user task's metric no built-in task reports)."""


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise click.FileError(path, e.strerror) from None


def _ours(doc: dict[str, object]) -> bool:
    api_version = doc.get("apiVersion")
    return doc.get("kind") == "TrainingCampaign" or (
        isinstance(api_version, str) and api_version.startswith(f"{GROUP}/")
    )


def judge_file(path: str) -> list[Judged]:
    """Every TrainingCampaign document in `path` ("-": stdin); documents of other API groups (a
    Secret next to the campaign, say) are left alone, as `kubectl apply` would apply them as-is."""
    label = "<stdin>" if path == "-" else path
    try:
        docs = parse_manifests(_read(path))
    except SpecError as e:
        return [Judged(label, problems=e.problems)]
    ours = [(i, doc) for i, doc in enumerate(docs) if _ours(doc)]
    if not ours:
        return [Judged(label, problems=[f"no TrainingCampaign in {label} (kind: TrainingCampaign)"])]
    out = []
    for i, doc in ours:
        where = f"{label} (document {i + 1})" if len(docs) > 1 else label
        try:
            campaign = load_campaign(doc)
            out.append(Judged(where, preview=preview(campaign), warnings=semantic_warnings(campaign)))
        except SpecError as e:
            out.append(Judged(where, problems=e.problems))
    return out


def report_problems(judged: Judged) -> None:
    """Every problem on its own line on stderr, under a header naming the document."""
    n = len(judged.problems)
    click.echo(f"{judged.label}: invalid ({n} problem{'s' if n != 1 else ''}):", err=True)
    for problem in judged.problems:
        click.echo(f"  {problem}", err=True)
    report_warnings(judged)


def report_warnings(judged: Judged) -> None:
    """Each warning on its own line on stderr."""
    for warning in judged.warnings:
        click.echo(f"  warning: {warning}", err=True)


F = TypeVar("F", bound=Callable[..., Any])


def campaign_state(command: F) -> F:
    """The CAMPAIGN argument and --state option of the commands that read a campaign's state."""
    command = click.argument("campaign", required=False)(command)
    return click.option(
        "--state",
        "state_dir",
        type=click.Path(exists=True, file_okay=False),
        default=None,
        help="The state directory itself (what `campaign run --state` was given).",
    )(command)


CAMPAIGN_HELP = (
    "CAMPAIGN is the manifest `campaign run` was given, a campaign name (as `campaign list` shows "
    "it, e.g. NAME-smoke for a smoke run) or a state directory; or pass --state DIR."
)


def resolve_state(campaign: str | None, state_dir: str | None) -> Path:
    """The state dir a reading command should open: --state as given, else the one CAMPAIGN names
    (found as `campaign run` names it). Bad input (exit 2) when neither or both are given, or when
    CAMPAIGN names no state."""
    from campaign_operator.embedded.locate import NotFound, find_state_dir

    if (campaign is None) == (state_dir is None):
        raise BadInput(
            "name the campaign: a manifest, a campaign name or a state dir as CAMPAIGN, or --state DIR "
            "(not both); `campaign list` shows the campaigns on this machine"
        )
    if state_dir is not None:
        return Path(state_dir)
    assert campaign is not None
    try:
        return find_state_dir(campaign)
    except NotFound as e:
        raise BadInput(str(e)) from None


def store_failure(error: Exception) -> click.ClickException:
    """A reading command's store error as its exit status: a directory without state is bad input
    (2); a damaged or unreadable one is the machine's (3)."""
    from campaign_operator.embedded.store import NoState

    message = " ".join(str(error).split())
    return BadInput(message) if isinstance(error, NoState) else Infrastructure(message)
