"""Bad input through the real apiserver.

What the CRD can express (schema, CEL) is rejected at the door with a message naming the field;
what only the operator can judge (CEL syntax in user expressions, sweep sizes, ...) becomes a
Failed condition with reason InvalidSpec. Either way the operator keeps serving other campaigns.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from campaign_operator.api import API_VERSION
from invalid_corpus import CORPUS, FILES, header

from .opkit import FakeKubeRay, Kube, condition, wait_for

pytestmark = pytest.mark.integration


def semantic_corpus() -> dict[str, tuple[dict[str, Any], str]]:
    """The shared corpus's `layer: semantic` files: valid to the apiserver, invalid to the operator.
    (The schema/rule layers are the apiserver's: tests/integration/api/test_crds_on_apiserver.py.)"""
    cases = {}
    for path in FILES:
        h = header(path)
        if h.get("layer") == "semantic":
            (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
            cases[doc["metadata"]["name"]] = (doc, h["expect"])
    if len(cases) < 3:
        pytest.fail(f"expected the semantic cases of the invalid corpus in {CORPUS}", pytrace=False)
    return cases


def good(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [{"name": "p", "sweep": {"seeds": {"count": 3}}}],
        },
    }


def operator_only() -> dict[str, tuple[dict[str, Any], str]]:
    cases = semantic_corpus()
    local = {
        "apiVersion": API_VERSION,
        "kind": "TrainingCampaign",
        **good("local-executor-under-the-operator"),
    }
    local["spec"]["executor"] = {"kind": "local"}
    cases[local["metadata"]["name"]] = (local, "spec.executor.kind 'local'")
    return cases


def test_operator_only_problems_become_invalid_spec_while_others_progress(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=0.5)
    op = operator_factory(namespace)
    try:
        bad = operator_only()
        for name, (doc, _) in bad.items():
            r = kube.call("POST", kube.path(namespace, "trainingcampaigns") + "?fieldValidation=Strict", doc)
            assert r.status_code == 201, f"{name}: the apiserver should accept it: {r.text[:500]}"
        kube.create_campaign(namespace, good("fine"))
        for name, (_, expected) in bad.items():
            wait_for(
                lambda n=name: kube.state(namespace, n) == "Failed", 30, f"{name} Failed\n{op.log_tail()}"
            )
            campaign = kube.campaign(namespace, name)
            failed = condition(campaign, "Failed")
            assert failed and failed["status"] == "True" and failed["reason"] == "InvalidSpec", campaign[
                "status"
            ]
            assert expected in failed["message"], failed["message"]
            assert kube.trials(namespace, name) == [], "an invalid campaign created trials"
        wait_for(
            lambda: kube.state(namespace, "fine") == "Succeeded", 60, f"the valid campaign\n{op.log_tail()}"
        )
        time.sleep(6)  # a resync later: still Failed, still one Event each, no crash-loop
        for name in bad:
            assert [e["reason"] for e in kube.events(namespace, name)].count("InvalidSpec") == 1, name
            assert kube.state(namespace, name) == "Failed"
        assert op.popen is not None and op.popen.poll() is None and op.starts == 1
        # An invalid spec is a verdict, not an error of the operator: every campaign's count is 0.
        errors = [x for x in op.metrics().splitlines() if x.startswith("campaign_reconcile_errors_total{")]
        assert errors and all(float(x.rsplit(" ", 1)[1]) == 0 for x in errors), errors
    finally:
        fake.close()


def test_a_fix_to_an_invalid_spec_is_picked_up(kube: Kube, namespace: str, operator_factory: Any) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=0.3)
    operator_factory(namespace)
    try:
        spec = good("fixme")["spec"]
        spec["phases"] = [{"name": "p", "gate": {"expression": "phase.succeeded >> 1"}}]
        kube.create_campaign(namespace, {"metadata": {"name": "fixme"}, "spec": spec})
        wait_for(lambda: kube.state(namespace, "fixme") == "Failed", 30, "Failed/InvalidSpec")
        fixed = [{"name": "p", "gate": {"expression": "phase.succeeded == 1"}}]
        kube.ok(
            "PATCH",
            kube.path(namespace, "trainingcampaigns", "fixme"),
            {"spec": {"phases": fixed}},
            "application/merge-patch+json",
        )
        wait_for(lambda: kube.state(namespace, "fixme") == "Succeeded", 60, "Succeeded after the fix")
        assert condition(kube.campaign(namespace, "fixme"), "Failed")["status"] == "False"
    finally:
        fake.close()


def test_invalid_spec_messages_are_short_and_the_status_lands(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    """Once a misspelt gate variable made a ~4,200-character message that the CRD's 4,096 bound
    refused on every reconcile, leaving the campaign at "Running 0/1" with nothing to see."""
    op = operator_factory(namespace)
    spec = good("many-problems")["spec"]
    spec["phases"] = [
        {"name": f"p{i}", "gate": {"expression": f"phse.best.metrics.r2 > 0.{i} && phase.counts.failed == 0"}}
        for i in range(12)
    ]
    kube.create_campaign(namespace, {"metadata": {"name": "many-problems"}, "spec": spec})
    wait_for(lambda: kube.state(namespace, "many-problems") == "Failed", 30, f"Failed\n{op.log_tail()}")
    status = kube.campaign(namespace, "many-problems")["status"]
    message = status["message"]
    assert status["reason"] == "InvalidSpec"
    assert message.startswith(
        "spec.phases[0].gate.expression: unknown variable 'phse' (did you mean phase?);"
        " this expression can use: phase; spec.phases[0].gate.expression: phase has no field 'counts'"
    ), message
    assert len(message) <= 1024 and message.endswith("more (campaign validate lists them all)"), message
    assert condition(kube.campaign(namespace, "many-problems"), "Failed")["message"] == message
    rejected = condition(kube.campaign(namespace, "many-problems"), "ReconcileError")
    assert rejected is None or rejected["status"] == "False", rejected
    assert kube.trials(namespace, "many-problems") == []
    assert "status rejected" not in op.log_tail()


def test_a_gate_that_fails_at_run_time_names_its_field(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    """What no check can know in advance (no trial succeeded, so `phase.best` is absent) fails the
    phase with GateError, and the message says which expression and why, in a few words."""
    fake = FakeKubeRay(kube, namespace, lambda job: "AppFailed", run_seconds=0.3)
    op = operator_factory(namespace)
    try:
        spec = good("gate-at-run-time")["spec"]
        spec["phases"] = [
            {
                "name": "p",
                "failurePolicy": {"maxFailureRate": 1.0},
                "gate": {"expression": "phase.best.value > 0.1"},
            }
        ]
        kube.create_campaign(namespace, {"metadata": {"name": "gate-at-run-time"}, "spec": spec})
        wait_for(
            lambda: kube.state(namespace, "gate-at-run-time") == "Failed", 60, f"Failed\n{op.log_tail()}"
        )
        (phase,) = kube.campaign(namespace, "gate-at-run-time")["status"]["phases"]
        assert phase["reason"] == "GateError", phase
        assert phase["message"].startswith(
            "spec.phases[0].gate.expression: could not be evaluated: no key 'best'"
        ), phase["message"]
        assert len(phase["message"]) < 400
    finally:
        fake.close()
