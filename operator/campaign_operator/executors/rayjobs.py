"""`rayjobs` executor: the Ray Job Submission REST API of an existing Ray cluster.

We speak the REST API with aiohttp instead of importing `ray` (hundreds of MB in the operator for
four HTTP calls). Ray >= 2.59 turns token auth on by default: the token comes from the Secret named
in spec.executor.tokenSecretRef and goes out as `Authorization: Bearer`.

The submission id is the attempt's deterministic job name (from the Trial's uid: one Ray cluster may
serve the same campaign in many namespaces, and outlive a deleted campaign's jobs), and the job's
`metadata` carries the Trial's identity. A repeated submit after a crash finds the job instead of
starting it twice, and adopts it only when that metadata names this very Trial uid and attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.trial import ExecutorRef, Trial
from campaign_operator.lifecycle.outcomes import from_ray_job, identity_mismatch, job_lost
from campaign_operator.lifecycle.transitions import attempt_over
from campaign_operator.lifecycle.wire import JOB_ATTEMPT, JOB_TRIAL_UID, TRIAL_ENV, job_identity
from campaign_operator.planner.naming import job_name

from .base import JobOutcome, adopted
from .common import TrainerSettings, entrypoint, trial_document, trial_uid

log = logging.getLogger(__name__)

KIND = "RaySubmission"
TIMEOUT = aiohttp.ClientTimeout(total=30)
ACTIVE = frozenset({"PENDING", "RUNNING"})
LEFTOVER_AFTER_S = 60.0
"""A trainer reports its verdict before its driver exits: a job of a trial that ended this long ago
and still runs is a leftover (the operator recorded a stop, then died before it stopped the job)."""


def _now() -> datetime:
    return datetime.now(UTC)


class RayJobsError(RuntimeError):
    pass


def claimed_identity(details: dict[str, Any]) -> dict[str, str]:
    """The identity a Ray job's metadata claims (empty for a job that is not the operator's)."""
    metadata = details.get("metadata")
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


class RayJobsExecutor:
    """One campaign's view of an existing Ray cluster's Jobs API."""

    kind = "rayjobs"

    def __init__(
        self,
        campaign: TrainingCampaign,
        settings: TrainerSettings,
        session: aiohttp.ClientSession,
        token: str | None,
        now: Callable[[], datetime] = _now,
    ):
        address = campaign.spec.executor.address
        if not address:
            raise ValueError("spec.executor.address is required for kind rayjobs")
        self.address = address.rstrip("/")
        self.campaign = campaign
        self.settings = settings
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.now = now
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
        """One GET /api/jobs/ per reconcile instead of one per running trial; also stops the jobs of
        this campaign's attempts that are over but still run: an earlier attempt of a running trial,
        or a trial that ended more than LEFTOVER_AFTER_S ago (the operator recorded the trial's end
        and died before it stopped the job)."""
        status, data = await self._call("GET", "/api/jobs/")
        if status != 200 or not isinstance(data, list):
            raise RayJobsError(f"GET {self.address}/api/jobs/ answered HTTP {status}: {str(data)[:300]}")
        self._jobs = {j["submission_id"]: j for j in data if j.get("submission_id")}
        by_uid = {t.metadata.uid: t for t in trials if t.metadata.uid}
        for sid, job in self._jobs.items():
            claimed = claimed_identity(job)
            trial = by_uid.get(claimed.get(JOB_TRIAL_UID, ""))
            if trial is None or job.get("status") not in ACTIVE:
                continue
            attempt = claimed.get(JOB_ATTEMPT, "")
            if (not attempt.isdigit() or attempt_over(trial.status, int(attempt))) and self._leftover(trial):
                log.info("stopping Ray job %s: its attempt of trial %s is over", sid, trial.name)
                await self._stop(sid)

    def _leftover(self, trial: Trial) -> bool:
        ended = trial.status.completion_time
        if not trial.status.state.is_terminal or ended is None:
            return True
        return (self.now() - ended).total_seconds() > LEFTOVER_AFTER_S

    async def _job(self, sid: str) -> dict[str, Any] | None:
        """The job's JobDetails, None when the Ray cluster does not know it."""
        status, data = await self._call("GET", f"/api/jobs/{sid}")
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise RayJobsError(f"GET job {sid}: HTTP {status}: {str(data)[:300]}")
        return data

    async def submit(self, trial: Trial, attempt: int) -> ExecutorRef:
        uid = trial_uid(trial)
        sid = job_name(trial.name, attempt, uid)
        ref = ExecutorRef(kind=KIND, name=sid, namespace=trial.metadata.namespace, attempt=attempt)
        existing = await self._job(sid)
        if existing is None:
            res = trial.spec.resources
            local = res.workers == 0  # Ray Train local mode trains in the driver: it needs the resources
            identity = job_identity(trial.name, trial.metadata.namespace, uid, attempt)
            body: dict[str, Any] = {
                "entrypoint": entrypoint(self.settings),
                "submission_id": sid,
                "runtime_env": {"env_vars": {TRIAL_ENV: trial_document(trial), **self.settings.env}},
                "metadata": {"campaign": trial.spec.campaign, "phase": trial.spec.phase, **identity},
                "entrypoint_num_cpus": float(res.cpu) if local else 0.0,
                "entrypoint_num_gpus": float(res.gpu) if local else 0.0,
            }
            status, data = await self._call("POST", "/api/jobs/", body)
            if status == 200:
                return ref
            if not (status in (400, 409, 500) and "already exists" in str(data)):
                raise RayJobsError(f"submitting {sid} to {self.address}: HTTP {status}: {str(data)[:500]}")
            existing = await self._job(sid)  # submitted meanwhile, by us or by someone else
            if existing is None:
                raise RayJobsError(f"{self.address} says job {sid} exists, then that it does not")
        # Submitted before a crash: adopt it, if it is this very attempt's.
        return adopted(f"Ray job {sid} on {self.address}", claimed_identity(existing), uid, attempt, ref)

    async def poll(self, trial: Trial) -> JobOutcome | None:
        ref = trial.status.executor_ref
        if ref is None:
            return None
        details = (self._jobs or {}).get(ref.name) or await self._job(ref.name)
        if details is None:
            return job_lost(f"Ray job {ref.name}", f"is unknown to {self.address}")
        return from_ray_job(details)

    async def stop(self, trial: Trial) -> None:
        ref = trial.status.executor_ref
        if ref is None or not trial.metadata.uid:
            return
        details = (self._jobs or {}).get(ref.name) or await self._job(ref.name)
        if details is None:
            return
        if identity_mismatch(ref.name, claimed_identity(details), trial.metadata.uid, ref.attempt):
            log.warning(
                "not stopping Ray job %s: it is not attempt %d of trial %s", ref.name, ref.attempt, trial.name
            )
            return
        await self._stop(ref.name)

    async def _stop(self, sid: str) -> None:
        status, data = await self._call("POST", f"/api/jobs/{sid}/stop")
        if status not in (200, 404):
            raise RayJobsError(f"stopping {sid}: HTTP {status}: {str(data)[:300]}")
