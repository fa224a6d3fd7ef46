"""One active operator: Lease-based leader election, as controller-runtime's managers do it.

Every replica competes for one `coordination.k8s.io` Lease; only its holder runs kopf's handlers,
the others wait. The holder renews the Lease every `retry_s`; one that cannot renew within
`renew_deadline_s` stops (the process exits and its pod restarts as a standby) before its Lease
can expire, so two replicas never act at once. A replica takes over a Lease whose record it has
seen unchanged for `lease_s` on its own clock (never by comparing another host's timestamps), or
at once when the holder released it on a clean shutdown.

`claim` is the pure decision; `LeaderElector` does the I/O through the KubeClient.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campaign_operator.kube.client import AlreadyExists, ApiError, Conflict, KubeClient, NotFound

log = logging.getLogger(__name__)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


@dataclass(frozen=True)
class Timing:
    lease_s: float = 15.0
    """How long a Lease record may stay unchanged before another replica takes it."""
    renew_deadline_s: float = 10.0
    """A holder that could not renew for this long stops leading (shorter than lease_s)."""
    retry_s: float = 2.0
    """How often the holder renews and a standby looks."""

    @classmethod
    def for_lease(cls, lease_s: float) -> Timing:
        """controller-runtime's proportions (15 s / 10 s / 2 s)."""
        return cls(lease_s, lease_s * 2 / 3, max(1.0, lease_s * 2 / 15))


@dataclass(frozen=True)
class Lease:
    namespace: str
    name: str
    timing: Timing = Timing()


@dataclass(frozen=True)
class Observed:
    """A Lease record as this replica last saw it, and when (its own monotonic clock)."""

    spec: dict[str, Any]
    resource_version: str
    since: float


def claim(observed: Observed | None, identity: str, now: float, timing: Timing) -> bool:
    """Whether this replica may write itself into the Lease now: no Lease yet, it holds it already,
    the holder released it, or the record has not changed for a whole lease duration."""
    if observed is None:
        return True
    holder = observed.spec.get("holderIdentity") or ""
    if holder in ("", identity):
        return True
    duration = float(observed.spec.get("leaseDurationSeconds") or timing.lease_s)
    return now - observed.since >= duration


def _micro_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        lease: Lease,
        identity: str,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client, self.identity, self.clock = client, identity, clock
        self.namespace, self.name, self.timing = lease.namespace, lease.name, lease.timing
        self._observed: Observed | None = None

    @property
    def path(self) -> str:
        return LEASES.format(namespace=self.namespace)

    async def acquire(self) -> None:
        """Returns once this replica holds the Lease."""
        logged = False
        while not await self._try():
            if not logged:
                holder = (self._observed.spec if self._observed else {}).get("holderIdentity")
                log.info("standby: lease %s/%s is held by %s", self.namespace, self.name, holder)
                logged = True
            await asyncio.sleep(self.timing.retry_s)
        log.info("leading: %s holds lease %s/%s", self.identity, self.namespace, self.name)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renews until cancelled; sets `lost` (and returns) when renewal failed past the deadline."""
        last_renewal = self.clock()
        while True:
            await asyncio.sleep(self.timing.retry_s)
            try:
                renewed = await self._try()
            except (ApiError, OSError, TimeoutError) as e:
                log.warning("lease renewal failed: %s", e)
                renewed = False
            if renewed:
                last_renewal = self.clock()
            elif self.clock() - last_renewal >= self.timing.renew_deadline_s or self._lost_to_another():
                log.error(
                    "lost lease %s/%s: stopping so that only one operator acts", self.namespace, self.name
                )
                lost.set()
                return

    async def release(self) -> None:
        """On a clean shutdown: hands the Lease back so a standby takes over at once."""
        if self._observed is None or self._observed.spec.get("holderIdentity") != self.identity:
            return
        spec = dict(self._observed.spec, holderIdentity="", leaseDurationSeconds=1)
        try:
            await self._write(spec, self._observed.resource_version)
        except ApiError as e:  # it expires on its own then
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, e)

    def _lost_to_another(self) -> bool:
        holder = (self._observed.spec if self._observed else {}).get("holderIdentity")
        return bool(holder) and holder != self.identity

    async def _read(self) -> None:
        try:
            lease = await self.client.request("GET", f"{self.path}/{self.name}")
        except NotFound:
            self._observed = None
            return
        spec = dict(lease.get("spec") or {})
        version = str(lease["metadata"]["resourceVersion"])
        if self._observed is None or self._observed.spec != spec:
            self._observed = Observed(spec, version, self.clock())  # the record changed: its clock restarts
        else:
            self._observed = Observed(spec, version, self._observed.since)

    async def _try(self) -> bool:
        await self._read()
        if not claim(self._observed, self.identity, self.clock(), self.timing):
            return False
        now = _micro_time(datetime.now(UTC))
        old = self._observed.spec if self._observed else {}
        ours = old.get("holderIdentity") == self.identity
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_s),
            "acquireTime": old.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if ours or not old else 1),
        }
        try:
            await self._write(spec, self._observed.resource_version if self._observed else None)
        except (Conflict, AlreadyExists):
            return False  # another replica wrote first; look again next time
        return True

    async def _write(self, spec: dict[str, Any], resource_version: str | None) -> None:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}
        if resource_version is None:
            lease = await self.client.request("POST", self.path, body=body, retries=2)
        else:
            meta["resourceVersion"] = resource_version
            lease = await self.client.request("PUT", f"{self.path}/{self.name}", body=body, retries=2)
        self._observed = Observed(
            dict(lease.get("spec") or {}), str(lease["metadata"]["resourceVersion"]), self.clock()
        )
