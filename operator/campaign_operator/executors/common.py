"""What every cluster executor shares: how a trial reaches the trainer, and its settings."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle.wire import TRIAL_ENV


@dataclass(frozen=True)
class TrainerSettings:
    """How the operator starts trainers; set from the operator's command line."""

    image: str = "campaign-trainer:latest"
    """Default trainer image when neither the node pool nor the template names one."""
    python: str = "python"
    """Interpreter on the Ray nodes that has campaign_trainer installed."""
    reporter: str = "kubernetes"
    service_account: str = "campaign-trainer"
    """ServiceAccount of the Ray pods (kuberay): it may patch campaigntrials/status and nothing else."""
    cluster_role: str | None = None
    """ClusterRole (the chart's <fullname>-trainer) that the operator binds `service_account` to in a
    namespace before its first RayJob there; None: the cluster's admin provides both."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of the Ray containers where the node pool sets none."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the trainer (e.g. KUBECONFIG for a Ray head outside the cluster)."""


def trial_document(trial: Trial) -> str:
    """The trial as the trainer reads it: the wire form with name and namespace, no status (the
    trainer reports its verdict only; attempt and lifecycle stay with the operator).

    ASCII JSON with `$` and backquote written as JSON escapes: KubeRay pastes the runtime env into
    the submitter's shell script inside double quotes, where those two would still expand."""
    wire = trial.to_wire()
    wire.pop("status", None)
    text = json.dumps(wire, separators=(",", ":"), sort_keys=True)  # ensure_ascii: no raw bytes to quote
    return text.replace("$", "\\u0024").replace("`", "\\u0060")  # only inside JSON strings: valid JSON


def trial_uid(trial: Trial) -> str:
    """The uid a cluster executor names and marks the trial's jobs with. Every Trial the operator
    launches was read from (or created by) the apiserver, which gave it one."""
    if not trial.metadata.uid:
        raise ValueError(f"trial {trial.name} has no uid: its jobs could not be told from another's")
    return trial.metadata.uid


def entrypoint(settings: TrainerSettings) -> str:
    """Plain words only (quoted only if a setting needs it): it passes through KubeRay's submitter
    shell and `ray job submit` unchanged."""
    python = shlex.quote(settings.python)
    reporter = shlex.quote(settings.reporter)
    return f"{python} -m campaign_trainer run --trial-env {TRIAL_ENV} --reporter {reporter}"
