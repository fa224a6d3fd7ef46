"""What every cluster executor shares: how a trial reaches the trainer, and its settings."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from campaign_operator.api.trial import Trial

TRIAL_ENV = "CAMPAIGN_TRIAL"
"""The trial document travels in this environment variable (Ray's runtime_env.env_vars): a RayJob
entrypoint has no stdin of its own, and an env var needs no ConfigMap to create and clean up."""


@dataclass(frozen=True)
class TrainerSettings:
    """How the operator starts trainers; set from the operator's command line."""

    image: str = "campaign-trainer:latest"
    """Default trainer image when neither the node pool nor the template names one."""
    python: str = "python"
    """Interpreter on the Ray nodes that has campaign_trainer installed."""
    reporter: str = "kubernetes"
    service_account: str = "campaign-trainer"
    """ServiceAccount of the Ray pods (kuberay): it may patch trials/status and nothing else."""
    cluster_role: str | None = None
    """ClusterRole (the chart's <release>-trainer) that the operator binds `service_account` to in a
    namespace before its first RayJob there; None: the cluster's admin provides both."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of the Ray containers where the node pool sets none."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the trainer (e.g. KUBECONFIG for a Ray head outside the cluster)."""


def trial_document(trial: Trial) -> str:
    """The trial as the trainer reads it (`--trial -`): the wire form with name and namespace."""
    wire = trial.to_wire()
    wire.pop("status", None)
    return json.dumps(wire, separators=(",", ":"), sort_keys=True)


def entrypoint(settings: TrainerSettings) -> str:
    python = shlex.quote(settings.python)
    return (
        f'printf "%s" "${TRIAL_ENV}" | {python} -m campaign_trainer run --trial -'
        f" --reporter {shlex.quote(settings.reporter)}"
    )
