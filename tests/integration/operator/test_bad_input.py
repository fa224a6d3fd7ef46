"""Bad input through the real apiserver.

What the CRD can express (schema, CEL) is rejected at the door with a message naming the field;
what only the operator can judge (CEL syntax in user expressions, sweep sizes, ...) becomes a
Failed condition with reason InvalidSpec. Either way the operator keeps serving other campaigns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .opkit import FakeKubeRay, Kube, condition, wait_for

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[2] / "data" / "invalid"
PLURALS = {"TrainingCampaign": "trainingcampaigns", "Trial": "trials"}


def corpus() -> list[Path]:
    files = sorted(CORPUS.glob("*.yaml"))
    if not files:
        pytest.fail(f"no invalid manifests in {CORPUS} (the shared corpus of bad input)", pytrace=False)
    return files


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect:"), f"{path.name}: first line must be '# expect: <substring>'"
    return first.split(":", 1)[1].strip()


def good(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [{"name": "p", "sweep": {"seeds": {"count": 3}}}],
        },
    }


def only_the_operator_can_tell() -> dict[str, tuple[dict[str, Any], str]]:
    """Specs the apiserver accepts (valid schema, valid CRD CEL) that the operator must reject."""
    cases: dict[str, tuple[dict[str, Any], str]] = {}
    spec = good("x")["spec"]
    cases["gate-cel-syntax"] = (
        {**spec, "phases": [{"name": "p", "gate": {"expression": "phase.best.metrics.r2 >> 0.1"}}]},
        "spec.phases[0].gate.expression",
    )
    cases["beyond-max-trials"] = (
        {
            **spec,
            "maxTrials": 10,
            "phases": [{"name": "p", "sweep": {"grid": {"a": [1, 2, 3, 4], "b": [1, 2, 3]}}}],
        },
        "spec.maxTrials: the sweeps expand to 12 trials",
    )
    cases["skip-when-cel-syntax"] = (
        {**spec, "phases": [{"name": "p", "skipWhen": [{"expression": "params.x ==", "reason": "Nope"}]}]},
        "spec.phases[0].skipWhen[0].expression",
    )
    cases["local-executor-under-the-operator"] = (
        {**spec, "executor": {"kind": "local"}},
        "spec.executor.kind 'local'",
    )
    return cases


def test_operator_only_problems_become_invalid_spec_while_others_progress(
    kube: Kube, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=0.5)
    op = operator_factory(namespace)
    try:
        bad = only_the_operator_can_tell()
        for name, (spec, _) in bad.items():
            kube.create_campaign(namespace, {"metadata": {"name": name}, "spec": spec})
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
            assert "InvalidSpec" in {e["reason"] for e in kube.events(namespace, name)}
        wait_for(
            lambda: kube.state(namespace, "fine") == "Succeeded", 60, f"the valid campaign\n{op.log_tail()}"
        )
        # Still Failed, not crash-looping: one Event, the operator process never restarted.
        for name in bad:
            assert [e["reason"] for e in kube.events(namespace, name)].count("InvalidSpec") == 1
        assert op.popen is not None and op.popen.poll() is None
        # An invalid spec is a verdict, not an error of the operator.
        assert "campaign_reconcile_errors_total{" not in op.metrics()
    finally:
        fake.close()


def test_a_fix_to_an_invalid_spec_is_picked_up(kube: Kube, namespace: str, operator_factory: Any) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=0.3)
    operator_factory(namespace)
    try:
        spec, _ = only_the_operator_can_tell()["gate-cel-syntax"]
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


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_invalid_corpus(kube: Kube, namespace: str, path: Path, operator_factory: Any) -> None:
    expected = expectation(path)
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path.name}: empty"
    doc = docs[0]
    doc.setdefault("metadata", {})["namespace"] = namespace
    plural = PLURALS.get(doc.get("kind", ""), "trainingcampaigns")
    # Strict field validation, as kubectl applies by default: unknown fields are errors, not pruned.
    r = kube.call("POST", kube.path(namespace, plural) + "?fieldValidation=Strict", doc)
    if r.status_code >= 400:
        message = r.json().get("message", r.text)
        assert expected in message, f"{path.name}: apiserver said {message!r}"
        return
    # Accepted by the apiserver: only the operator can reject it.
    assert plural == "trainingcampaigns", f"{path.name}: the apiserver accepted an invalid {doc.get('kind')}"
    op = operator_factory(namespace)
    name = doc["metadata"]["name"]
    wait_for(lambda: kube.state(namespace, name) == "Failed", 30, f"{path.name}: Failed\n{op.log_tail()}")
    failed = condition(kube.campaign(namespace, name), "Failed")
    assert failed and failed["reason"] == "InvalidSpec" and expected in failed["message"], failed
