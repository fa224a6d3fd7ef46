"""`rayjobs` executor: the Ray Job Submission REST API of an existing Ray cluster.

We speak the REST API with aiohttp instead of importing `ray` (hundreds of MB in the operator for
four HTTP calls). Ray >= 2.59 turns token auth on by default: the token comes from the Secret named
in spec.executor.tokenSecretRef and goes out as `Authorization: Bearer`. The submission id is the
deterministic job name, so a repeated submit after a crash finds the job instead of starting it twice.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.lifecycle.outcomes import from_ray_job
from campaign_operator.lifecycle.wire import TRIAL_ENV
from campaign_operator.planner.naming import job_name

from .base import JobOutcome
from .common import TrainerSettings, entrypoint, trial_document

log = logging.getLogger(__name__)

KIND = "RaySubmission"
TIMEOUT = aiohttp.ClientTimeout(total=30)


class RayJobsError(RuntimeError):
    pass


class RayJobsExecutor:
    """One campaign's view of an existing Ray cluster's Jobs API."""

    kind = "rayjobs"

    def __init__(
        self,
        campaign: TrainingCampaign,
        settings: TrainerSettings,
        session: aiohttp.ClientSession,
        token: str | None,
    ):
        address = campaign.spec.executor.address
        if not address:
            raise ValueError("spec.executor.address is required for kind rayjobs")
        self.address = address.rstrip("/")
        self.campaign = campaign
        self.settings = settings
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._jobs: dict[str, dict[str, Any]] | None = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.session.request(
            method, f"{self.address}{path}", json=body, headers=self.headers, timeout=TIMEOUT
        ) as resp:
            text = await resp.text()
            if resp.status in (401, 403):
                raise RayJobsError(
                    f"Ray Jobs API at {self.address} refused us (HTTP {resp.status}): check the token in"
                    " spec.executor.tokenSecretRef"
                )
            try:
                data = await resp.json(content_type=None) if text else None
            except ValueError:
                data = text
            return resp.status, data

    async def observe(self, trials: list[Trial]) -> None:
        """One GET /api/jobs/ per reconcile instead of one per running trial."""
        status, data = await self._call("GET", "/api/jobs/")
        if status != 200 or not isinstance(data, list):
            raise RayJobsError(f"GET {self.address}/api/jobs/ answered HTTP {status}: {str(data)[:300]}")
        self._jobs = {j["submission_id"]: j for j in data if j.get("submission_id")}

    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        sid = job_name(trial.name, attempt)
        ref = ExecutorRef(kind=KIND, name=sid, namespace=trial.metadata.namespace, attempt=attempt)
        status, _ = await self._call("GET", f"/api/jobs/{sid}")
        if status == 200:
            return ref  # submitted before a crash: adopt it
        res = trial.spec.resources
        local = res.workers == 0  # Ray Train local mode trains in the driver: it needs the resources
        body: dict[str, Any] = {
            "entrypoint": entrypoint(self.settings),
            "submission_id": sid,
            "runtime_env": {"env_vars": {TRIAL_ENV: trial_document(trial), **self.settings.env}},
            "metadata": {"campaign": trial.spec.campaign, "phase": trial.spec.phase, "trial": trial.name},
            "entrypoint_num_cpus": float(res.cpu) if local else 0.0,
            "entrypoint_num_gpus": float(res.gpu) if local else 0.0,
        }
        status, data = await self._call("POST", "/api/jobs/", body)
        if status == 200 or (status in (400, 409, 500) and "already exists" in str(data)):
            return ref
        raise RayJobsError(f"submitting {sid} to {self.address}: HTTP {status}: {str(data)[:500]}")

    async def poll(self, trial: Trial) -> JobOutcome | None:
        ref = trial.status.executor_ref
        if ref is None:
            return None
        details = (self._jobs or {}).get(ref.name)
        if details is None:
            status, data = await self._call("GET", f"/api/jobs/{ref.name}")
            if status == 404:
                return JobOutcome(
                    TrialState.FAILED, "JobLost", f"Ray job {ref.name} is unknown to {self.address}"
                )
            if status != 200 or not isinstance(data, dict):
                raise RayJobsError(f"GET job {ref.name}: HTTP {status}: {str(data)[:300]}")
            details = data
        return from_ray_job(details)

    async def stop(self, trial: Trial) -> None:
        ref = trial.status.executor_ref
        if ref is None:
            return
        status, data = await self._call("POST", f"/api/jobs/{ref.name}/stop")
        if status not in (200, 404):
            raise RayJobsError(f"stopping {ref.name}: HTTP {status}: {str(data)[:300]}")
