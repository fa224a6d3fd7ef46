"""No status string can exceed its CRD bound, and `kubectl explain` has something to say about every
field: its meaning, its default and its bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.api import crdgen
from campaign_operator.api.base import CONDITION_MESSAGE_MAX_LENGTH, TEXT_MAX_LENGTH, bounded
from campaign_operator.api.campaign import GateStatus, PhaseStatus, TrainingCampaignStatus
from campaign_operator.api.common import Condition
from campaign_operator.api.trial import TrialStatus

pytestmark = pytest.mark.unit


def test_bounded_keeps_the_head_and_marks_the_cut() -> None:
    assert bounded("short", 10) == "short"
    cut = bounded("a" * 50, 10)
    assert len(cut) == 10 and cut.startswith("aaaaaaaa") and cut.endswith("…")
    assert bounded("abc", 1) == "a"


def _schema_max(crd: dict[str, Any], *path: str) -> int:
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in path:
        node = node["items"] if key == "[]" else node["properties"][key]
    limit: int = node["maxLength"]
    return limit


def test_status_strings_are_cut_to_the_crd_bound_however_they_are_set() -> None:
    crd = crdgen.campaign_crd()
    assert _schema_max(crd, "status", "message") == TEXT_MAX_LENGTH
    assert _schema_max(crd, "status", "phases", "[]", "message") == TEXT_MAX_LENGTH
    assert _schema_max(crd, "status", "conditions", "[]", "message") == CONDITION_MESSAGE_MAX_LENGTH
    assert _schema_max(crdgen.trial_crd(), "status", "message") == TEXT_MAX_LENGTH
    huge = "x" * 100_000
    phase = PhaseStatus(name="p", message=huge, gate=GateStatus(expression="true", message=huge))
    assert len(phase.message or "") == TEXT_MAX_LENGTH  # set from data
    phase.message = huge  # set by assignment (as the planner does): cut when written out
    status = TrainingCampaignStatus(phases=[phase], message=huge)
    status.message = huge
    status.conditions = [
        Condition(
            type="Failed",
            status="True",
            reason="InvalidSpec",
            message=huge,
            last_transition_time=datetime.now(UTC),
        )
    ]
    wire = status.to_wire()
    assert len(wire["message"]) == TEXT_MAX_LENGTH
    assert len(wire["phases"][0]["message"]) == TEXT_MAX_LENGTH
    assert len(wire["phases"][0]["gate"]["message"]) == TEXT_MAX_LENGTH
    assert len(wire["conditions"][0]["message"]) == CONDITION_MESSAGE_MAX_LENGTH
    trial = TrialStatus(message=huge)
    trial.reason = huge
    assert len(trial.to_wire()["message"]) == len(trial.to_wire()["reason"]) == TEXT_MAX_LENGTH


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    missing = []
    for key, child in (node.get("properties") or {}).items():
        if not child.get("description"):
            missing.append(f"{path}.{key}")
        missing += _undescribed(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        missing += _undescribed(node["items"], f"{path}[]")
    return missing


@pytest.mark.parametrize("crd", [crdgen.campaign_crd(), crdgen.trial_crd()], ids=["campaign", "trial"])
def test_every_field_is_described(crd: dict[str, Any]) -> None:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _undescribed(root["properties"]["status"], "status") == []
    assert _undescribed(root["properties"]["spec"], "spec") == []


def test_defaults_and_bounds_are_in_the_descriptions() -> None:
    spec = crdgen.campaign_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    policy = spec["properties"]["phases"]["items"]["properties"]["failurePolicy"]["properties"]
    assert policy["maxFailureRate"]["description"].endswith("Default: 0.0. Range: 0.0 <= value <= 1.0.")
    assert policy["failFast"]["description"].endswith("Default: true.")
    assert policy["retries"]["description"].endswith("Default: 0. Range: 0 <= value <= 20.")
    assert spec["properties"]["phases"]["description"].endswith("1 to 32 items.")
    cpu = spec["properties"]["template"]["properties"]["resources"]["properties"]["cpu"]["description"]
    assert cpu.endswith("Default: 1.0. Range: 0 < value <= 512.")
    executor = spec["properties"]["executor"]["properties"]["kind"]["description"]
    assert executor.endswith("Default: kuberay. One of: kuberay, rayjobs, local.")
