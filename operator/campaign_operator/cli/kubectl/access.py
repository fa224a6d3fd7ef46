"""The apiserver's refusals, said as what is missing: which verb on which resource, where, for whom,
and what would grant it."""

from __future__ import annotations

import json
import re

from campaign_operator.kube.client import ApiError, NotFound

_FORBIDDEN = re.compile(
    r'(?P<user>User "[^"]*"|[\w:.-]+) cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<namespace>[^"]+)")?'
)


def _message(e: ApiError) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.body)
    except (ValueError, AttributeError):
        return e.body or e.reason


def explain(e: ApiError, what: str) -> str:
    """One line for a failed `what` (e.g. "campaign demo in namespace ml")."""
    message = " ".join(_message(e).split())
    if e.status == 403:
        m = _FORBIDDEN.search(message)
        if m is None:
            return f"forbidden to read {what}: {message[:300]}"
        group = m["group"] or "core"
        where = f"in namespace {m['namespace']}" if m["namespace"] else "cluster-wide"
        return (
            f"{m['user']} may not {m['verb']} {m['resource']} ({group} API group) {where}: ask your cluster "
            f"admin for a Role granting `{m['verb']}` on `{m['resource']}` there (the chart's viewer "
            "ClusterRole has every read this plugin needs)"
        )
    if e.status == 401:
        return "the cluster did not accept your credentials (401): log in again or check --context"
    if isinstance(e, NotFound):
        return f"no {what} ({message[:200]})"
    if e.status == 0:
        return f"cannot reach the cluster for {what}: {message[:300]}"
    return f"{what}: HTTP {e.status} {e.reason}: {message[:300]}"
