"""The only code that talks to the Kubernetes API (kopf's own watches aside).

A thin layer over kubernetes_asyncio's ApiClient: it handles configuration (kubeconfig or
in-cluster), authentication and TLS; we send plain dicts and choose the patch content type
ourselves. Transient failures (429, 5xx, connection errors) are retried with backoff; 409 on a
create is reported as AlreadyExists (creation is idempotent by deterministic names), and a failed
JSON-patch `test` (422/409) as Conflict, so callers can re-plan instead of overwriting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from campaign_operator import metrics
from campaign_operator.lifecycle.retry import RETRY_STATUSES, backoff_delays, retry_after
from campaign_operator.lifecycle.wire import CAMPAIGNS, GROUP, TRIALS, VERSION

log = logging.getLogger(__name__)

RAY_GROUP, RAY_VERSION, RAYJOBS, RAYCLUSTERS = "ray.io", "v1", "rayjobs", "rayclusters"

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
RETRIES = 6
RELISTS = 3
T = TypeVar("T")
LIST_PAGE = 500  # pages keep the peak memory of a 10,000-trial list bounded


class ApiError(Exception):
    def __init__(self, status: int, reason: str, body: str = ""):
        self.status, self.reason, self.body = status, reason, body
        super().__init__(f"HTTP {status} {reason}: {body[:500]}")


class NotFound(ApiError):
    pass


class AlreadyExists(ApiError):
    pass


class Expired(ApiError):
    """410 Gone: a list's continue token (or a watch's resourceVersion) is older than etcd keeps;
    the list must start over from a fresh snapshot."""


class Conflict(ApiError):
    """A precondition failed (resourceVersion, or a JSON-patch `test`): someone else wrote first."""


def _error(e: ApiException) -> ApiError:
    body = e.body.decode() if isinstance(e.body, bytes) else str(e.body or "")
    status = int(e.status or 0)
    if status == 404:
        return NotFound(status, str(e.reason), body)
    if status == 410:
        return Expired(status, str(e.reason), body)
    if status == 409 and "AlreadyExists" in body:
        return AlreadyExists(status, str(e.reason), body)
    # A stale resourceVersion answers 409 Conflict; a JSON patch that no longer applies (a `test`
    # that fails, a `remove` of a path that is gone) answers 422 with no causes: the apiserver drops
    # jsonpatch's own error and sends only "the server rejected our request due to an error in our
    # request". A body the schema rejects is 422 too, but names its fields in causes.
    if status == 409 or (status == 422 and not _causes(body)):
        return Conflict(status, str(e.reason), body)
    return ApiError(status, str(e.reason), body)


def _causes(body: str) -> list[Any]:
    try:
        details = json.loads(body).get("details") or {}
    except (ValueError, AttributeError):
        return []
    causes: list[Any] = details.get("causes") or []
    return causes


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str | None = None


async def relisting(list_once: Callable[[], Awaitable[T]], what: str) -> T:
    """`list_once()` again from a fresh snapshot when its paged list expired between pages (410),
    up to RELISTS times in all."""
    for _ in range(RELISTS - 1):
        with suppress(Expired):
            return await list_once()
        log.info("the list of %s expired between pages: listing again", what)
    return await list_once()


def resource_of(path: str) -> str:
    """The resource a request path names: `campaigntrials`, `campaigntrials/status`, `leases`, ...
    (a bounded label)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    at = parts.index("namespaces") + 2 if "namespaces" in parts else (2 if parts[:1] == ["api"] else 3)
    if at >= len(parts):  # a namespace itself, or a cluster-wide collection
        return "namespaces" if "namespaces" in parts else parts[-1]
    return "/".join([parts[at], *parts[at + 2 : at + 3]])


def instance_identity() -> str:
    """Who this process is to the apiserver (Events' reportingInstance, the leader Lease's holder):
    the pod's name in a cluster (POD_NAME from the downward API, else HOSTNAME, which kubelet sets
    to it); elsewhere host and process, so two local operators are told apart too."""
    pod = os.environ.get("POD_NAME") or (
        os.environ.get("HOSTNAME") if os.environ.get("KUBERNETES_SERVICE_HOST") else None
    )
    return pod or f"{socket.gethostname()}-{os.getpid()}"


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeClient:
    """Async API client for campaigns, trials, RayJobs, events and secrets."""

    def __init__(
        self, api: k8s.ApiClient, *, component: str = "campaign-operator", instance: str | None = None
    ):
        self.api = api
        self.component = component
        self.instance = instance or instance_identity()

    @classmethod
    async def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, component: str = "campaign-operator"
    ) -> KubeClient:
        """In-cluster service account when present, else the kubeconfig (KUBECONFIG, ~/.kube/config)
        and its current context, or `context`."""
        configuration = k8s.Configuration()
        if (
            kubeconfig is None
            and context is None
            and os.environ.get("KUBERNETES_SERVICE_HOST")
            and os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token")
        ):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        # The default pool (4) serialises the parallel creates of a large sweep.
        configuration.connection_pool_maxsize = 32
        return cls(k8s.ApiClient(configuration), component=component)

    async def close(self) -> None:
        await self.api.close()

    # -- transport ------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str | int] | None = None,
        content_type: str = "application/json",
        retries: int = RETRIES,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        attempt = 0
        delays = backoff_delays(retries + 1)
        while True:
            metrics.API_REQUESTS.labels(method, resource_of(path)).inc()
            try:
                return await self.api.call_api(
                    path,
                    method,
                    query_params=list((query or {}).items()),
                    header_params=headers,
                    body=body,
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=60,
                )
            except ApiException as e:
                err = _error(e)
                if err.status not in RETRY_STATUSES or attempt >= retries:
                    raise err from None
                delay = retry_after(e.headers, delays[attempt])
            except (TimeoutError, aiohttp.ClientError) as e:
                if attempt >= retries:
                    raise ApiError(0, type(e).__name__, str(e)) from e
                delay = delays[attempt]
            attempt += 1
            log.debug("%s %s: retrying in %.1fs", method, path, delay)
            await asyncio.sleep(delay)

    async def stream(
        self, path: str, query: Mapping[str, str | int], timeout_s: float | None = None, verb: str = "GET"
    ) -> AsyncIterator[bytes]:
        """The body of one long GET (a watch, a followed log) as it arrives, in chunks. Not retried:
        the caller knows where to resume from."""
        metrics.API_REQUESTS.labels(verb, resource_of(path)).inc()
        try:
            response = await self.api.call_api(
                path,
                "GET",
                query_params=list(query.items()),
                header_params={"Accept": "application/json, */*"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout_s,
            )
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ApiError(0, type(e).__name__, str(e)) from e
        try:
            if response.status >= 400:
                failed = ApiException(status=response.status, reason=response.reason)
                failed.body = await response.text()
                raise _error(failed)
            async for chunk in response.content.iter_any():
                yield chunk
        finally:
            response.release()

    async def watch(
        self, path: str, resource_version: str, selector: Mapping[str, str], timeout_s: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """The events ({type, object}) of one watch from `resource_version` until the server ends it
        (after `timeout_s`). A 410 (the version is older than etcd keeps) raises Expired: list again."""
        query: dict[str, str | int] = {
            "watch": 1,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_s,
            **selector,
        }
        pending = b""
        # Line by line, whatever the chunking: one event can be a 128 KiB Trial.
        async for chunk in self.stream(path, query, timeout_s + 30, verb="WATCH"):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event: dict[str, Any] = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code, message = int(status.get("code") or 0), str(status.get("message") or "")
                    raise (Expired if code == 410 else ApiError)(code, str(status.get("reason")), message)
                yield event

    # -- generic custom objects ---------------------------------------------------------------
    @staticmethod
    def _path(group: str, version: str, plural: str, namespace: str, name: str | None = None) -> str:
        root = f"/apis/{group}/{version}" if group else f"/api/{version}"  # "": the core group
        base = f"{root}/namespaces/{namespace}/{plural}"
        return f"{base}/{name}" if name else base

    async def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", self._path(group, version, plural, namespace, name)
        )
        return result

    async def list_pages(
        self, group: str, version: str, plural: str, namespace: str, label_selector: str | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of one consistent snapshot. Raises Expired when the snapshot expired between pages
        (a long list on a busy etcd): what was yielded is stale, the caller lists again."""
        query: dict[str, str | int] = {"limit": LIST_PAGE}
        if label_selector:
            query["labelSelector"] = label_selector
        while True:
            page = await self.request("GET", self._path(group, version, plural, namespace), query=query)
            yield page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = token

    async def list_objects(
        self, group: str, version: str, plural: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return await relisting(
            lambda: self._list_once(group, version, plural, namespace, label_selector),
            f"{namespace}/{plural}",
        )

    async def _list_once(
        self, group: str, version: str, plural: str, namespace: str, label_selector: str | None
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        async for page in self.list_pages(group, version, plural, namespace, label_selector):
            items.extend(page)
        return items

    async def create(
        self, group: str, version: str, plural: str, namespace: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", self._path(group, version, plural, namespace), body=body
        )
        return result

    async def ensure(
        self, group: str, version: str, plural: str, namespace: str, body: Mapping[str, Any]
    ) -> bool:
        """Create `body` unless an object of its name is there (get, then create); True if created.

        Get first: a caller allowed to read but not to create (an admin pre-made the object) passes."""
        name = body["metadata"]["name"]
        try:
            await self.get(group, version, plural, namespace, name)
            return False
        except NotFound:
            pass
        try:
            await self.create(group, version, plural, namespace, body)
        except AlreadyExists:  # someone else was first
            return False
        return True

    async def patch(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        path = self._path(group, version, plural, namespace, name)
        if subresource:
            path = f"{path}/{subresource}"
        result: dict[str, Any] = await self.request("PATCH", path, body=body, content_type=content_type)
        return result

    async def delete(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> None:
        """Gone already is fine. With `uid`, only that very object goes: one that replaced it under
        the same name answers Conflict (a failed precondition)."""
        body: dict[str, Any] = {"propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        with suppress(NotFound):
            await self.request("DELETE", self._path(group, version, plural, namespace, name), body=body)

    # -- our resources --------------------------------------------------------------------------
    async def trial_pages(self, namespace: str, campaign: str) -> AsyncIterator[list[dict[str, Any]]]:
        """A campaign's Trials a page at a time: 10,000 raw bodies are never held at once."""
        async for page in self.list_pages(GROUP, VERSION, TRIALS, namespace, f"campaign={campaign}"):
            yield page

    async def create_trial(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The created Trial, or None when it already exists (a repeat after a crash)."""
        try:
            return await self.create(GROUP, VERSION, TRIALS, namespace, body)
        except AlreadyExists:
            return None

    async def patch_trial_status(
        self, namespace: str, name: str, body: Any, *, json_patch: bool = False
    ) -> dict[str, Any]:
        return await self.patch(
            GROUP,
            VERSION,
            TRIALS,
            namespace,
            name,
            body,
            subresource="status",
            content_type=JSON_PATCH if json_patch else MERGE_PATCH,
        )

    async def patch_campaign_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        # Replacing the whole status with a merge patch would merge lists element-wise by position
        # for nothing and keep stale keys; a JSON patch `replace` of /status is exact.
        return await self.patch(
            GROUP,
            VERSION,
            CAMPAIGNS,
            namespace,
            name,
            [{"op": "add", "path": "/status", "value": status}],
            subresource="status",
            content_type=JSON_PATCH,
        )

    async def get_secret_key(self, namespace: str, name: str, key: str) -> str:
        import base64

        secret = await self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        data = (secret.get("data") or {}).get(key)
        if data is None:
            raise KeyError(f"secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data).decode().strip()

    async def emit_event(
        self, involved: ObjectRef, type_: str, reason: str, message: str, now: datetime | None = None
    ) -> None:
        """A core/v1 Event. Best effort: losing an Event must never fail a reconcile."""
        stamp = rfc3339(now or datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved.name}.", "namespace": involved.namespace},
            "involvedObject": {
                "apiVersion": involved.api_version,
                "kind": involved.kind,
                "name": involved.name,
                "namespace": involved.namespace,
                **({"uid": involved.uid} if involved.uid else {}),
            },
            "type": type_,
            "reason": reason,
            # Event messages are capped at 1 KiB by convention (kubectl describe stays readable).
            "message": message[:1024],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        try:
            await self.request(
                "POST", f"/api/v1/namespaces/{involved.namespace}/events", body=body, retries=2
            )
        except ApiError as e:
            log.warning("could not post event %s on %s: %s", reason, involved.name, e)


@asynccontextmanager
async def connected(kubeconfig: str | None = None) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(kubeconfig)
    try:
        yield client
    finally:
        await client.close()
