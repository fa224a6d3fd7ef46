"""A multi-objective phase on a real apiserver with the operator: three trials run (RayJobs played by
FakeKubeRay), their trainers report sharpe and rmse into their Trials' status (the real Kubernetes
reporter); the operator writes the phase's Pareto front into the campaign status (through the CRD's
structural schema, which prunes any field it does not declare), gates over it, and promotes the
weighted pick of the front into the next phase."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_trainer.reporters import ClusterConnection, KubernetesReporter
from rig.controlplane import ControlPlane

from .opkit import FakeKubeRay, Kube, wait_for

pytestmark = pytest.mark.integration

# risk -> (sharpe, rmse): 0 and 2 are the front's ends, 1 its knee, 3 is dominated by 1
REPORTS = {0: (0.1, 0.1), 1: (0.8, 0.3), 2: (1.5, 0.8), 3: (0.7, 0.4)}


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": "mo"},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "explore",
                    "objectives": [{"metric": "sharpe", "mode": "max"}, {"metric": "rmse", "mode": "min"}],
                    "sweep": {"grid": {"risk": list(REPORTS)}},
                    "gate": {"expression": "phase.front.exists(t, t.sharpe > 1.0 && t.rmse < 0.85)"},
                },
                {
                    "name": "final",
                    "dependsOn": ["explore"],
                    "fromPhase": {"phase": "explore", "weights": {"sharpe": 1, "rmse": 1}},
                },
            ],
        },
    }


def test_the_operator_reports_the_front_gates_over_it_and_promotes_from_it(
    kube: Kube, control_plane: ControlPlane, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=6)
    op = operator_factory(namespace)
    conn = ClusterConnection.from_kubeconfig(str(control_plane.kubeconfig_path))
    try:
        kube.create_campaign(namespace, manifest())

        def running(phase: str, n: int) -> list[dict[str, Any]]:
            trials = [t for t in kube.trials(namespace, "mo") if t["spec"]["phase"] == phase]
            ok = len(trials) == n and all((t.get("status") or {}).get("state") == "Running" for t in trials)
            return trials if ok else []

        explore = wait_for(lambda: running("explore", 4), 60, f"four Running trials\n{op.log_tail()}")
        by_risk = {t["spec"]["parameters"]["risk"]: t["metadata"]["name"] for t in explore}
        assert {t["spec"]["objective"]["metric"] for t in explore} == {"sharpe"}  # the first objective
        for risk, (sharpe, rmse) in REPORTS.items():
            KubernetesReporter(by_risk[risk], namespace, conn).report_epoch(
                1, {"sharpe": sharpe, "rmse": rmse}
            )
        (final,) = wait_for(lambda: running("final", 1), 90, f"the final trial Running\n{op.log_tail()}")
        KubernetesReporter(final["metadata"]["name"], namespace, conn).report_epoch(1, {"val_loss": 0.5})
        wait_for(lambda: kube.state(namespace, "mo") == "Succeeded", 90, f"the end\n{op.log_tail()}")
    finally:
        fake.close()

    status = kube.campaign(namespace, "mo")["status"]
    explore_status, final_status = status["phases"]
    front = explore_status["front"]
    assert [t["trial"] for t in front] == [by_risk[2], by_risk[1], by_risk[0]], front
    assert front[0]["values"] == {"sharpe": 1.5, "rmse": 0.8}
    assert explore_status["frontSize"] == 3
    assert explore_status["best"]["trial"] == by_risk[2] and explore_status["best"]["metric"] == "sharpe"
    assert explore_status["gate"]["passed"] is True
    assert [t["trial"] for t in explore_status["gate"]["values"]["front"]] == [t["trial"] for t in front]
    # the knee: (0.8-0.1)/1.4 + (0.8-0.3)/0.7 = 1.21, against 1.0 at either end
    assert final_status["promoted"] == {"risk": 1}
    assert final["spec"]["parameters"]["risk"] == 1
