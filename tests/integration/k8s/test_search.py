"""A search phase on a real apiserver with the operator: TPE's trials are created two at a time as
slots free (RayJobs played by FakeKubeRay; this test reports each trial's objective into its Trial's
status through the real Kubernetes reporter, as its trainer would), named by index; the operator is
killed mid-search and a new one carries on without creating or changing any trial twice."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from campaign_operator.planner.naming import canonical_json, search_trial_name
from campaign_trainer.reporters import ClusterConnection, KubernetesReporter
from rig.controlplane import ControlPlane

from .opkit import FakeKubeRay, Kube

pytestmark = pytest.mark.integration

TRIALS, PARALLEL = 5, 2


def manifest() -> dict[str, Any]:
    space = {"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}}
    search = {"algorithm": "tpe", "trials": TRIALS, "seed": 2, "startupTrials": 2, "space": space}
    return {
        "metadata": {"name": "tpe"},
        "spec": {
            "template": {"task": "objective", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [{"name": "explore", "maxParallelTrials": PARALLEL, "sweep": {"search": search}}],
        },
    }


def branin(p: dict[str, float]) -> float:
    x, y = p["x1"], p["x2"]
    return (y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2 + 9.602 * math.cos(x) + 10


def test_the_operator_runs_a_search_slot_by_slot_across_a_restart(
    kube: Kube, control_plane: ControlPlane, namespace: str, operator_factory: Any
) -> None:
    fake = FakeKubeRay(kube, namespace, lambda job: "Succeeded", run_seconds=2)
    op = operator_factory(namespace)
    conn = ClusterConnection.from_kubeconfig(str(control_plane.kubeconfig_path))
    specs: dict[str, Any] = {}
    reported: set[str] = set()
    restarted = False
    try:
        kube.create_campaign(namespace, manifest())
        deadline = time.monotonic() + 240
        while kube.state(namespace, "tpe") != "Succeeded":
            assert time.monotonic() < deadline, f"search did not finish\n{op.log_tail()}"
            trials = kube.trials(namespace, "tpe")
            for t in trials:
                assert specs.setdefault(t["metadata"]["name"], t["spec"]) == t["spec"], "a trial changed"
            running = [t for t in trials if (t.get("status") or {}).get("state") == "Running"]
            assert len(running) <= PARALLEL, [t["metadata"]["name"] for t in running]
            for t in running:
                name = t["metadata"]["name"]
                if name not in reported:
                    KubernetesReporter(name, namespace, conn).report_epoch(
                        1, {"val_loss": branin(t["spec"]["sweepPoint"])}
                    )
                    reported.add(name)
            if len(trials) >= 3 and not restarted:
                op.kill()  # mid-search: a new operator re-plans from the Trials alone
                op = operator_factory(namespace)
                restarted = True
            time.sleep(0.3)
    finally:
        fake.close()

    assert restarted
    trials = {t["metadata"]["name"]: t for t in kube.trials(namespace, "tpe")}
    assert sorted(trials) == sorted(search_trial_name("tpe", "explore", i) for i in range(TRIALS))
    assert len({canonical_json(t["spec"]["sweepPoint"]) for t in trials.values()}) == TRIALS
    assert all(t["status"]["state"] == "Succeeded" and t["status"]["attempt"] == 1 for t in trials.values())
    phase = kube.campaign(namespace, "tpe")["status"]["phases"][0]
    values = {n: branin(t["spec"]["sweepPoint"]) for n, t in trials.items()}
    assert phase["best"]["trial"] == min(values, key=values.__getitem__)
