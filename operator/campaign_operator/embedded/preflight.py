"""What `campaign validate` warns about for a run on this machine (warnings, not errors: the same
manifest may be right for the cluster): local dataset files that are not there (where `campaign run`
reads them: relative paths beside the manifest), S3 without credentials here, and per-trial
requests larger than this machine (the fit a run would make)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import DatasetSpec
from campaign_operator.planner.expressions import ExpressionError
from campaign_operator.planner.sweeps import search_of, typical_points
from campaign_operator.planner.templates import DatasetTemplateError
from campaign_operator.planner.trials import dataset_field, merged_parameters, phase_trials, trial_dataset

from .fit import Fit, Machine, fit
from .manifest import anchored

CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")
CONTAINER_ENV = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, ~/.aws/credentials) before "
    "`campaign run`"
)


def s3_credentials_found(env: Mapping[str, str], home: Path) -> bool:
    """Whether boto3 would find credentials here without asking a cloud metadata service: the
    environment, a shared credentials/config file, a web identity or container credentials."""
    if any(env.get(k) for k in (*CREDENTIAL_ENV, *CONTAINER_ENV)):
        return True
    files = [env.get("AWS_SHARED_CREDENTIALS_FILE"), env.get("AWS_CONFIG_FILE")]
    files += [str(home / ".aws" / "credentials"), str(home / ".aws" / "config")]
    return any(f and Path(f).is_file() for f in files)


def _datasets(campaign: TrainingCampaign) -> Iterator[tuple[str, DatasetSpec]]:
    """(field, dataset) of every planned trial, its `{param}` references resolved; one per distinct
    dataset. Trials whose references do not resolve yet (promoted parameters) are left to the plan."""
    seen: set[str] = set()
    for i, phase in enumerate(campaign.spec.phases):
        field = dataset_field(campaign, i)
        for params in _planned_parameters(campaign, i):
            try:
                dataset = trial_dataset(campaign, phase, params)
            except DatasetTemplateError:
                continue
            if dataset is not None and dataset.model_dump_json() not in seen:
                seen.add(dataset.model_dump_json())
                yield field, dataset


def _planned_parameters(campaign: TrainingCampaign, index: int) -> list[dict[str, Any]]:
    """The merged parameters of the trials a run creates for the phase (its sample under scaleDown);
    every sweep point when a skipWhen cannot be evaluated before promotion (the plan judges it)."""
    phase = campaign.spec.phases[index]
    if search_of(phase) is None:  # a search's trials are not known before it runs: typical draws
        try:
            return [t.parameters for t in phase_trials(campaign, index)]
        except ExpressionError:
            pass
    return [merged_parameters(campaign, phase, None, p.params) for p in typical_points(phase)]


def dataset_warnings(campaign: TrainingCampaign, s3_ok: bool) -> list[str]:
    """Local dataset files that are not there (paths as a run reads them: anchored at the manifest's
    directory, else relative to the working directory); S3 datasets when no credentials are found
    here. One line per field, missing files counted rather than all listed."""
    missing: dict[str, list[str]] = {}
    s3: dict[str, str] = {}
    for field, dataset in _datasets(campaign):
        path = dataset.path
        if path is None:
            continue
        if path.startswith("s3://"):
            s3.setdefault(field, path)
        elif not Path(path).is_file():
            missing.setdefault(field, []).append(path)
    out = []
    for field, paths in missing.items():
        more = f" and {len(paths) - 1} more of its trials' files" if len(paths) > 1 else ""
        where = "" if Path(paths[0]).is_absolute() else f" in {Path.cwd()}"
        out.append(
            f"{field}.path: {paths[0]}{more} not found{where}; ship the file there, or point path at "
            "it (absolute, or relative to the manifest)"
        )
    if not s3_ok:
        out += [
            f"{field}.path: {uri} is on S3 and no S3 credentials are set here; {CREDENTIALS_HINT}"
            for field, uri in s3.items()
        ]
    return out


def storage_warnings(campaign: TrainingCampaign, s3_ok: bool) -> list[str]:
    storage = campaign.spec.storage
    if storage is None or storage.s3 is None or s3_ok:
        return []
    endpoint = f" at {storage.s3.endpoint}" if storage.s3.endpoint else ""
    return [
        f"spec.storage.s3.uri: checkpoints go to {storage.s3.uri}{endpoint} and no S3 credentials are set "
        f"here ({storage.s3.credentials_secret or 'no credentialsSecret'} is a cluster Secret); "
        f"{CREDENTIALS_HINT}, or drop spec.storage to keep checkpoints in the state dir"
    ]


def fit_warnings(result: Fit) -> list[str]:
    return [
        f"{p.field}: phase {p.phase} asks {p.asks()} per trial, more than this machine "
        f"({result.machine.describe()}); `campaign run` here scales it to {p.scaled()} "
        "(--strict-resources refuses it)"
        for p in result.phases
    ]


def local_warnings(
    campaign: TrainingCampaign,
    manifest_dir: Path | None,
    machine: Machine,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> list[str]:
    """Everything that would go wrong running `campaign` embedded here, one line each. Local paths
    are anchored at `manifest_dir` as `campaign run` anchors them (None: a manifest from stdin,
    relative to the working directory)."""
    env = os.environ if env is None else env
    s3_ok = s3_credentials_found(env, Path.home() if home is None else home)
    if manifest_dir is not None:
        campaign = anchored(campaign, manifest_dir)
    return [
        *dataset_warnings(campaign, s3_ok),
        *storage_warnings(campaign, s3_ok),
        *fit_warnings(fit(campaign, machine)),
    ]
