"""What every cluster executor shares: how a trial reaches the trainer, and its settings."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial

from .base import JobOutcome

TRIAL_ENV = "CAMPAIGN_TRIAL"
"""The trial document travels in this environment variable (Ray's runtime_env.env_vars), and the
trainer reads it from there itself (`--trial-env`): a RayJob entrypoint has no stdin of its own, an
env var needs no ConfigMap to create and clean up, and the entrypoint stays free of the quotes,
expansions and pipes that KubeRay's submitter shell would evaluate instead of passing on."""


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


OUTCOME_NOT_REPORTED = "OutcomeNotReported"


def outcome_not_reported(job: str) -> JobOutcome:
    """A job that succeeded while its Trial is still Running: the trainer never wrote its verdict
    (no RBAC, an entrypoint that never ran it, ...). Without that verdict there are no metrics for
    gates or promotion, so the attempt failed, whatever the job's exit code says."""
    return JobOutcome(
        TrialState.FAILED,
        OUTCOME_NOT_REPORTED,
        f"{job} succeeded but the trainer never reported its outcome into the Trial's status:"
        " check the trainer's ServiceAccount and RBAC (patch trials/status) and its logs",
    )


def trial_document(trial: Trial) -> str:
    """The trial as the trainer reads it: the wire form with name and namespace, no status (the
    trainer reports its verdict only; attempt and lifecycle stay with the operator).

    ASCII JSON with `$` and backquote written as JSON escapes: KubeRay pastes the runtime env into
    the submitter's shell script inside double quotes, where those two would still expand."""
    wire = trial.to_wire()
    wire.pop("status", None)
    text = json.dumps(wire, separators=(",", ":"), sort_keys=True)  # ensure_ascii: no raw bytes to quote
    return text.replace("$", "\\u0024").replace("`", "\\u0060")  # only inside JSON strings: valid JSON


def entrypoint(settings: TrainerSettings) -> str:
    """Plain words only (quoted only if a setting needs it): it passes through KubeRay's submitter
    shell and `ray job submit` unchanged."""
    python = shlex.quote(settings.python)
    reporter = shlex.quote(settings.reporter)
    return f"{python} -m campaign_trainer run --trial-env {TRIAL_ENV} --reporter {reporter}"
