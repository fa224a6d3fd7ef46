"""What kubectl and the apiserver do with the bad input that `campaign validate` catches offline:
a dependsOn message that names the phase, the name and the cycle (the same text both ways), a NaN
threshold kubectl cannot send, a duplicated key kubectl silently resolves to its last value, and
`kubectl explain` with something to say about every status field."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.admission import load_campaign
from invalid_corpus import CORPUS
from rig.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DEPENDS_ON = ["depends-on-cycle", "depends-on-later-phase", "depends-on-unknown-phase", "self-dependency"]


def embedded_problems(path: Path) -> list[str]:
    (doc,) = parse_manifests(path.read_text())
    with pytest.raises(SpecError) as err:
        load_campaign(doc)
    return err.value.problems


@pytest.mark.parametrize("name", DEPENDS_ON)
def test_dependency_messages_are_the_same_from_the_apiserver_and_offline(
    control_plane: ControlPlane, name: str
) -> None:
    path = CORPUS / f"{name}.yaml"
    r = control_plane.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert r.returncode != 0, r.stdout
    (problem,) = [p for p in embedded_problems(path) if p.startswith("spec.phases: ")]
    message = problem.removeprefix("spec.phases: ")
    assert message.startswith("phases[") and "dependsOn may only name phases listed earlier" in message
    # kubectl: `... is invalid: spec.phases: Invalid value: <message>`
    assert f"spec.phases: Invalid value: {message}" in r.stderr, r.stderr


def test_a_nan_threshold_cannot_even_be_sent(control_plane: ControlPlane, tmp_path: Path) -> None:
    path = CORPUS / "stop-rule-threshold-nan.yaml"
    r = control_plane.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert r.returncode != 0 and "NaN" in r.stderr, (r.stdout, r.stderr)
    (problem,) = embedded_problems(path)
    assert problem.startswith("spec.phases[0].stopRules[0].threshold: must be a finite number, got nan")


def test_kubectl_keeps_the_last_of_duplicated_keys(control_plane: ControlPlane) -> None:
    path = REPO / "tests" / "data" / "duplicate-keys.yaml"
    r = control_plane.kubectl("apply", "--dry-run=server", "-o", "json", "-f", str(path), check=False)
    assert r.returncode == 0, r.stderr  # accepted: the first `epochs: 3` and `grid: {alpha}` are gone
    stored = json.loads(r.stdout)["spec"]
    assert stored["template"]["epochs"] == 300
    assert stored["phases"][0]["sweep"]["grid"] == {"lr": [0.001, 0.01]}
    with pytest.raises(SpecError) as err:
        parse_manifests(path.read_text())
    assert "found duplicate key 'epochs' (first at line 10)" in err.value.problems[0]


def _explain(control_plane: ControlPlane, field: str) -> str:
    deadline = time.monotonic() + 60  # the aggregated OpenAPI trails CRD establishment
    while True:
        r = control_plane.kubectl("explain", field, "--recursive=false", check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            assert r.returncode == 0, r.stderr
            return r.stdout
        time.sleep(1)


@pytest.mark.parametrize(
    "field",
    [
        "campaigntrial.status",
        "campaigntrial.status.executorRef",
        "campaigntrial.status.best",
        "trainingcampaign.status",
        "trainingcampaign.status.phases",
        "trainingcampaign.status.phases.gate",
        "trainingcampaign.status.phases.best",
        "trainingcampaign.status.trials",
        "trainingcampaign.status.conditions",
    ],
)
def test_kubectl_explain_describes_every_status_field(control_plane: ControlPlane, field: str) -> None:
    out = _explain(control_plane, field)
    assert "FIELDS:" in out and "<no description>" not in out, out


def test_kubectl_explain_shows_defaults_and_bounds(control_plane: ControlPlane) -> None:
    out = _explain(control_plane, "trainingcampaign.spec.phases.failurePolicy")
    assert "Default: 0.0. Range: 0.0 <= value <= 1.0." in " ".join(out.split()), out
    assert "Default: true." in out
