"""spec.scaleDown is fixed once a campaign exists: the apiserver refuses `kubectl apply` of an update
that adds, changes or removes it (the spec's transition rule), with the message embedded mode gives
for a state dir holding another scale (validation.transition_violations)."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator.api.campaign import SCALE_DOWN_FIXED, TrainingCampaign
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import transition_violations
from campaign_operator.planner.admission import load_campaign
from rig.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _demo(name: str, scale_down: dict[str, Any] | None) -> dict[str, Any]:
    (doc,) = parse_manifests((REPO / "examples" / "demo.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": "default"}
    if scale_down is not None:
        doc["spec"]["scaleDown"] = scale_down
    return doc


def _apply(cp: ControlPlane, tmp_path: Path, doc: dict[str, Any]) -> tuple[int, str]:
    path = tmp_path / f"{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(doc))
    r = cp.kubectl("apply", "-f", str(path), check=False)
    return r.returncode, r.stderr


def _embedded(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return transition_violations(load_campaign(copy.deepcopy(old)), load_campaign(copy.deepcopy(new)))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, {"smoke": True}),
        ({"smoke": True}, {"smoke": True, "maxEpochs": 3}),
        ({"maxTrialsPerPhase": 3}, None),
    ],
    ids=["added", "changed", "removed"],
)
def test_an_update_of_scale_down_is_refused_with_the_embedded_message(
    control_plane: ControlPlane, tmp_path: Path, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    created, updated = _demo(name, before), _demo(name, after)
    code, err = _apply(control_plane, tmp_path, created)
    assert code == 0, err
    try:
        code, err = _apply(control_plane, tmp_path, updated)
        assert code != 0
        (problem,) = _embedded(created, updated)
        assert problem == f"spec.scaleDown: {SCALE_DOWN_FIXED}"
        # kubectl: `... is invalid: spec.scaleDown: Invalid value: "object": <message>`
        assert "spec.scaleDown: Invalid value" in err and SCALE_DOWN_FIXED in " ".join(err.split()), err
        stored = control_plane.kubectl("get", "tc", name, "-n", "default", "-o", "yaml").stdout
        assert TrainingCampaign.model_validate(yaml.safe_load(stored)).spec.scale_down == (
            load_campaign(copy.deepcopy(created)).spec.scale_down
        )
    finally:
        control_plane.kubectl("delete", "tc", name, "-n", "default", "--wait=false", check=False)


def test_other_updates_of_a_scaled_down_campaign_are_accepted(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    created = _demo(name, {"smoke": True})
    suspended = copy.deepcopy(created)
    suspended["spec"]["suspend"] = True
    code, err = _apply(control_plane, tmp_path, created)
    assert code == 0, err
    try:
        code, err = _apply(control_plane, tmp_path, suspended)
        assert code == 0, err
        assert _embedded(created, suspended) == []
    finally:
        control_plane.kubectl("delete", "tc", name, "-n", "default", "--wait=false", check=False)
