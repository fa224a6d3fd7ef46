"""Deterministic trial names.

A trial's name is a pure function of (campaign, phase, sweep point), so every process that plans
the same manifest names the same trials, and re-planning finds what exists instead of duplicating it.
Names are DNS-1035 labels short enough that a job name (`job_name`) stays <= 47 characters (KubeRay
appends 6 characters for its submitter Job).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

RAYJOB_NAME_LIMIT = 47
ATTEMPT_SUFFIX_LIMIT = 4  # "-a" + up to two digits
TRIAL_NAME_LIMIT = RAYJOB_NAME_LIMIT - ATTEMPT_SUFFIX_LIMIT
HASH_LENGTH = 10
UID_HASH_LENGTH = 8
"""Hex digits of the Trial uid's hash in a job name: 32 bits, so two Trials of the same name (two
namespaces, a re-created campaign) practically never share a job name; where they do anyway, the job's
identity metadata tells them apart and nothing is adopted (`lifecycle.outcomes.identity_mismatch`)."""
_JOB_PREFIX_LIMIT = RAYJOB_NAME_LIMIT - ATTEMPT_SUFFIX_LIMIT - UID_HASH_LENGTH - 1
_PREFIX_LIMIT = TRIAL_NAME_LIMIT - HASH_LENGTH - 1
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, numbers as the apiserver stores them, other
    floats as Python repr. The same manifest names its trials alike embedded and on a cluster."""
    return json.dumps(as_stored(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def as_stored(value: Any) -> Any:
    """JSON has one number type: a manifest's 100.0 comes back from the apiserver as 100."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_stored(v) for v in value]
    return value


def trial_name(campaign: str, phase: str, point: dict[str, Any]) -> str:
    return _named(campaign, phase, canonical_json(point))


def search_trial_name(campaign: str, phase: str, index: int) -> str:
    """A search's trial `index`: named by its place in the search, not by the parameters suggested
    for it (which depend on what had finished when its slot freed)."""
    return _named(campaign, phase, f"search:{index}")


def _named(campaign: str, phase: str, identity: str) -> str:
    digest = hashlib.sha256(f"{campaign}\x00{phase}\x00{identity}".encode()).hexdigest()
    prefix = _NOT_DNS.sub("-", f"{campaign}-{phase}".lower()).strip("-")
    if not prefix or not prefix[0].isalpha():
        prefix = f"t{prefix}"
    prefix = prefix[:_PREFIX_LIMIT].rstrip("-")
    return f"{prefix}-{digest[:HASH_LENGTH]}"


def job_name(trial: str, attempt: int, uid: str | None = None) -> str:
    """Name of the executor job (RayJob name, Ray submission id, local Ray task) of one attempt of a
    trial: deterministic, unique per attempt, <= 47 characters.

    With the Trial's uid (every Trial on a cluster has one): `<trial prefix>-<uid hash>-a<attempt>`.
    A Trial's name is the same in every namespace and for every incarnation of a campaign; its uid is
    not, so the same campaign in two namespaces, or re-created after a deletion, never finds the other
    one's job on a shared Ray cluster. Without a uid (the embedded runner: its local Ray belongs to
    one state directory): `<trial>-a<attempt>`.
    """
    if uid is None:
        return f"{trial}-a{attempt}"
    digest = hashlib.sha256(uid.encode()).hexdigest()[:UID_HASH_LENGTH]
    return f"{trial[:_JOB_PREFIX_LIMIT].rstrip('-')}-{digest}-a{attempt}"
