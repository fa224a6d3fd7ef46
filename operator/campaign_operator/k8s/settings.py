"""Every kopf setting, in one startup function, plus the operator's own configuration."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf

from campaign_operator import metrics
from campaign_operator.api.base import GROUP
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.kube.client import KubeClient

from .drain import drain
from .reconcile import Reconciler

ANNOTATION_PREFIX = "campaign-operator.io"
FINALIZER = f"{GROUP}/finalizer"
ENV_PREFIX = "CAMPAIGN_OPERATOR_"


@dataclass
class OperatorConfig:
    """Set by `campaign-operator` flags, or by CAMPAIGN_OPERATOR_* variables under `kopf run`."""

    kubeconfig: str | None = None
    metrics_port: int = 9090
    metrics_addr: str = "0.0.0.0"
    resync_seconds: float = 30.0
    trainer: TrainerSettings = field(default_factory=TrainerSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)

        def get(key: str, default: str | None = None) -> str | None:
            return env.get(ENV_PREFIX + key, default)

        defaults = TrainerSettings()
        return cls(
            kubeconfig=get("KUBECONFIG") or None,
            metrics_port=int(get("METRICS_PORT", "9090") or 9090),
            metrics_addr=get("METRICS_ADDR", "0.0.0.0") or "0.0.0.0",
            resync_seconds=float(get("RESYNC_SECONDS", "30") or 30),
            trainer=TrainerSettings(
                image=get("TRAINER_IMAGE", defaults.image) or defaults.image,
                python=get("TRAINER_PYTHON", defaults.python) or defaults.python,
                service_account=get("TRAINER_SERVICE_ACCOUNT", defaults.service_account)
                or defaults.service_account,
                cluster_role=get("TRAINER_CLUSTER_ROLE") or None,
                image_pull_policy=get("TRAINER_IMAGE_PULL_POLICY") or defaults.image_pull_policy,
                env=json.loads(get("TRAINER_ENV", "{}") or "{}"),
            ),
        )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    config: OperatorConfig = memo.get("config") or OperatorConfig.from_env()
    memo["config"] = config
    # Our own annotation prefix and finalizer: nothing of ours hides under kopf's defaults, and a
    # second kopf operator in the cluster cannot mistake our progress for its own.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # A watch that silently stops delivering (load balancers, kopf #847/#957) is restarted.
    settings.watching.inactivity_timeout = 70.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 360
    # Our Events are the planner's (specific reasons); kopf's per-handler ones would only be noise.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 4  # all our handlers are async; the pool is only kopf's own
    settings.networking.error_backoffs = (1, 2, 4, 8, 16, 30)

    client = await KubeClient.connect(config.kubeconfig)
    http = aiohttp.ClientSession()
    memo["client"], memo["http"] = client, http
    memo["reconciler"] = Reconciler(client, config.trainer, http)
    memo.setdefault("pokes", {})
    if config.metrics_port:
        metrics.start(config.metrics_port, config.metrics_addr)
        logger.info("metrics on %s:%s/metrics", config.metrics_addr, config.metrics_port)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await drain()  # reconciles in progress finish their plans with the client still open
    if "http" in memo:
        await memo["http"].close()
    if "client" in memo:
        await memo["client"].close()
