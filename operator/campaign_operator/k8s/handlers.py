"""kopf registrations, kept thin: a level-based reconcile loop per campaign, poked by events.

`kopf run -m campaign_operator.k8s.handlers` works as well as `campaign-operator`.

- one daemon per TrainingCampaign runs `Reconciler.reconcile` whenever something changed (a poke) or
  the resync interval passed, or the planner asked to be called back (a retry backoff);
- Trial and RayJob events only poke their campaign's loop: bursts (2,000 Trials created) coalesce
  into one reconcile, and nothing is decided from an event's content;
- the finalizer (our own name) stops running jobs when a campaign is deleted; Trials then go with
  their owner (garbage collection), RayJobs with their Trials.
"""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from campaign_operator.executors.kuberay import LABEL_MANAGED_BY, MANAGER
from campaign_operator.kube.client import RAY_GROUP, RAY_VERSION, RAYJOBS
from campaign_operator.lifecycle.wire import CAMPAIGNS, GROUP, TRIALS, VERSION
from campaign_operator.planner.trials import LABEL_CAMPAIGN

from . import settings as _settings  # noqa: F401  (registers the startup/cleanup handlers)
from .drain import to_the_end
from .reconcile import Reconciler

SETTLE_SECONDS = 0.2
"""After a poke, wait this long so a burst of events becomes one reconcile."""
FINISHED_RESYNC = 300.0
MAX_ERROR_BACKOFF = 60.0

_last_event: dict[str, float] = {"at": time.time()}


def _poke(memo: Any, namespace: str | None, campaign: str | None) -> None:
    _last_event["at"] = time.time()
    if campaign:
        event = memo.setdefault("pokes", {}).get((namespace, campaign))
        if event is not None:
            event.set()


async def _sleep(poke: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    waiters = [asyncio.ensure_future(poke.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@kopf.daemon(GROUP, VERSION, CAMPAIGNS, id="reconcile", cancellation_timeout=10.0)
async def reconcile_campaign(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    memo: Any,
    logger: Any,
    **_: Any,
) -> None:
    reconciler: Reconciler = memo["reconciler"]
    resync: float = memo["config"].resync_seconds
    key = (namespace, name)
    poke = memo.setdefault("pokes", {}).setdefault(key, asyncio.Event())
    generations: dict[Any, Any] = memo.setdefault("generations", {})
    failures = 0
    try:
        while not stopped:
            poke.clear()
            # `body` is kopf's live view of the latest campaign; reconcile a stable copy of it.
            snapshot = copy.deepcopy(dict(body))
            if snapshot.get("metadata", {}).get("deletionTimestamp"):
                return
            generations[key] = snapshot["metadata"].get("generation")
            try:
                outcome = await to_the_end(reconciler.reconcile(snapshot))  # SIGTERM: drain.py
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one campaign's trouble never takes the operator down
                failures += 1
                logger.exception("reconcile failed (%d in a row)", failures)
                await reconciler.report_error(snapshot, e)
                delay = min(MAX_ERROR_BACKOFF, 2.0**failures)
            else:
                failures = 0
                finished = outcome.state in ("Succeeded", "Failed")
                delay = FINISHED_RESYNC if finished else resync
                if outcome.requeue_after is not None:
                    delay = min(delay, max(outcome.requeue_after, 0.5))
            await _sleep(poke, stopped, delay)
            if not stopped and poke.is_set():
                await _sleep(asyncio.Event(), stopped, SETTLE_SECONDS)
    finally:
        memo["pokes"].pop(key, None)


@kopf.on.event(GROUP, VERSION, CAMPAIGNS)
async def campaign_changed(body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    # Only spec changes (generation) matter; our own status writes must not wake the loop again.
    if body.get("metadata", {}).get("generation") != memo.get("generations", {}).get((namespace, name)):
        _poke(memo, namespace, name)


@kopf.on.event(GROUP, VERSION, TRIALS, labels={LABEL_CAMPAIGN: kopf.PRESENT})
async def trial_changed(labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    _poke(memo, namespace, labels.get(LABEL_CAMPAIGN))


@kopf.on.event(
    RAY_GROUP, RAY_VERSION, RAYJOBS, labels={LABEL_CAMPAIGN: kopf.PRESENT, LABEL_MANAGED_BY: MANAGER}
)
async def rayjob_changed(labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    _poke(memo, namespace, labels.get(LABEL_CAMPAIGN))


@kopf.on.delete(GROUP, VERSION, CAMPAIGNS, id="stop-jobs")
async def campaign_deleted(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    stopped = await memo["reconciler"].stop_all(copy.deepcopy(dict(body)))
    if stopped:
        logger.info("stopped the jobs of %d running trial(s)", stopped)


@kopf.on.probe(id="lastEventTime")
async def last_event_time(**_: Any) -> str:
    """Liveness: a watch that froze shows as a lastEventTime that stops moving."""
    return datetime.fromtimestamp(_last_event["at"], UTC).isoformat()
