"""A campaign and its Trials as the apiserver hands them back plan like the manifest itself.

The apiserver stores a float written `1.0` (or `100.0`) in an untyped field as the integer `1`
(`100`): Go decodes JSON numbers into float64 and encodes whole ones without a fraction. Sweep
values and reported metrics are untyped, so skipWhen rules and gates must compare numbers across
int and double the way CEL (and cel-go) does, or a manifest `campaign validate` accepts fails on a
cluster with SkipWhenError.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.api import TrainingCampaign, Trial, TrialState
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.planner import CreateTrial, evaluate_stop_rules, plan
from campaign_operator.planner.admission import load_campaign
from rig.controlplane import ControlPlane

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, tzinfo=UTC)

# examples/demo.yaml's explore phase, on its own, with one more rule on a whole-number float.
MANIFEST = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: numbers}
spec:
  objective: {metric: val_loss, mode: min}
  template:
    task: regression
    hyperparameters: {lr: 0.01, hidden_dims: [32, 16], seed: 0}
    epochs: 4
  phases:
    - name: explore
      sweep:
        grid:
          lr: [0.01, 1.0, 100.0]
          hidden_dims: [[32], [64, 32]]
      skipWhen:
        - expression: "params.lr > 1.0 && size(params.hidden_dims) > 1"
          reason: KnownDivergent
        - expression: "params.lr == 1.0 && size(params.hidden_dims) == 1"
          reason: OneIsEnough
      gate:
        expression: "phase.best.parameters.lr > 1.0 && phase.best.metrics.r2 >= 1 && phase.succeeded == 4.0"
    - name: exploit
      dependsOn: [explore]
      when: "phases.explore.best.parameters.lr == 100.0 && phases.explore.metrics.r2.max >= 1.0"
      hyperparameters: {lr: 2.0}
      stopRules:
        - {metric: val_loss, comparison: ">=", threshold: 1.0, action: Stop, reason: NoBetterThanBaseline}
"""


def kubectl_json(cp: ControlPlane, *args: str, input: str | None = None) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json", input=input).stdout)


def point(trial: Trial) -> tuple[float, int]:
    """A sweep point independent of how its numbers are spelled."""
    params = trial.spec.parameters
    return float(params["lr"]), len(params["hidden_dims"])


def decisions(campaign: TrainingCampaign) -> dict[tuple[float, int], tuple[TrialState, str | None]]:
    created = [a.trial for a in plan(campaign, [], NOW).actions if isinstance(a, CreateTrial)]
    return {point(t): (t.status.state, t.status.reason) for t in created}


def test_stored_campaign_skips_and_gates_like_the_manifest(
    control_plane: ControlPlane, namespace: str
) -> None:
    doc = parse_manifests(MANIFEST)[0]
    doc["metadata"]["namespace"] = namespace
    original = load_campaign(doc)  # what `campaign validate` / `campaign run` plan
    stored_doc = kubectl_json(control_plane, "create", "-f", "-", input=json.dumps(doc))
    grid = stored_doc["spec"]["phases"][0]["sweep"]["grid"]["lr"]
    assert grid == [0.01, 1, 100] and [type(v) for v in grid] == [float, int, int]  # the premise
    stored = TrainingCampaign.model_validate(stored_doc)  # what the operator plans

    expected = decisions(original)
    assert decisions(stored) == expected
    assert expected == {
        (0.01, 1): (TrialState.PENDING, None),
        (0.01, 2): (TrialState.PENDING, None),
        (1.0, 1): (TrialState.SKIPPED, "OneIsEnough"),
        (1.0, 2): (TrialState.PENDING, None),
        (100.0, 1): (TrialState.PENDING, None),
        (100.0, 2): (TrialState.SKIPPED, "KnownDivergent"),
    }

    # The trials the operator creates, their trainers' metrics written through the status subresource.
    created = [a.trial for a in plan(stored, [], NOW).actions if isinstance(a, CreateTrial)]
    raw = [
        observe(control_plane, namespace, t, r2=1.0, val_loss=0.5 if point(t) == (100.0, 1) else 1.0)
        for t in created
    ]
    assert {"r2": 1, "val_loss": 1} in [
        (r.get("status") or {}).get("metrics") for r in raw
    ]  # 1.0 came back as 1
    phase = plan(stored, [Trial.model_validate(r) for r in raw], NOW).status.phases[0]
    assert (
        phase.best is not None
        and phase.best.parameters["lr"] == 100
        and type(phase.best.parameters["lr"]) is int
    )
    assert phase.gate is not None and phase.gate.passed is True, phase
    assert (phase.state.value, phase.reason) == ("Succeeded", "GatePassed")

    # `when` over the stored phase: true, so the next phase's trial is created (not WhenNotMet).
    after = plan(stored, [Trial.model_validate(r) for r in raw], NOW)
    (exploit,) = [a.trial for a in after.actions if isinstance(a, CreateTrial)]
    assert exploit.spec.phase == "exploit" and exploit.status.state == TrialState.PENDING
    # Its stop rule's threshold `1.0` came back as `1`; a reported `1.0` came back as `1`: it fires
    # the same as on the manifest's numbers.
    raw_exploit = observe(control_plane, namespace, exploit, val_loss=1.0)
    assert type(raw_exploit["spec"]["stopRules"][0]["threshold"]) is int  # the premise
    stored_exploit = Trial.model_validate(raw_exploit)
    reported = stored_exploit.status.metrics
    decision = evaluate_stop_rules(stored_exploit.spec.stop_rules, None, [(1, reported)])
    assert decision is not None and decision.reason == "NoBetterThanBaseline", reported
    assert decision == evaluate_stop_rules(exploit.spec.stop_rules, None, [(1, {"val_loss": 1.0})])


def observe(cp: ControlPlane, namespace: str, trial: Trial, **metrics: float) -> dict[str, Any]:
    """Create the Trial; if it is to run, record it Succeeded with `metrics`; read it back (raw)."""
    body = trial.to_wire()
    status = body.pop("status", None) or {}
    body["metadata"]["namespace"] = namespace
    kubectl_json(cp, "create", "-f", "-", input=json.dumps(body))
    if trial.status.state == TrialState.PENDING:
        status = {"state": "Succeeded", "attempt": 1, "epoch": 4, "metrics": metrics}
    patch = json.dumps({"status": status})
    cp.kubectl(
        "patch", "ctrial", trial.name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch
    )
    stored: dict[str, Any] = kubectl_json(cp, "get", "ctrial", trial.name, "-n", namespace)
    return stored
