"""Every RayJob the kuberay executor builds is accepted by the real apiserver with KubeRay's CRD,
stored without losing a field (no pruning), and its pods pass the `restricted` Pod Security Standard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.api import TrainingCampaign, Trial
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import build_rayjob
from campaign_operator.planner import CreateTrial, plan
from campaign_operator.planner.naming import RAYJOB_NAME_LIMIT

from .opkit import RAY_PATH, Kube

pytestmark = pytest.mark.integration

LONG = "x" * 40  # the longest campaign/phase names the API allows

POOL = {
    "name": "a100",
    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100", "pool": "a100"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "ml",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        },
    ],
    "gpus": 8,
    "image": "registry.example/trainer:pool",
}

CASES: dict[str, dict[str, Any]] = {
    "minimal": {"template": {"task": "regression"}, "phases": [{"name": "only"}]},
    "local-mode-on-a-gpu-pool": {
        "template": {"task": "regression", "resources": {"cpu": 0.5, "gpu": 1, "memory": "12Gi"}},
        "nodePools": [POOL],
        "phases": [{"name": "p", "nodePool": "a100", "priorityClassName": "training-high"}],
    },
    "workers-kueue-priorities": {
        "template": {
            "task": "cql",
            "image": "registry.example/trainer:1",
            "resources": {"workers": 4, "gpu": 1},
        },
        "queueName": "team-a",
        "nodePools": [POOL, {"name": "mig", "gpuResource": "nvidia.com/mig-1g.5gb", "gpus": 2}],
        "phases": [
            {
                "name": "p",
                "nodePool": "a100",
                "workloadPriorityClass": "high",
                "sweep": {"grid": {"lr": [1, 2]}},
            },
            {"name": "q", "nodePool": "mig", "resources": {"workers": 1, "cpu": 3}},
        ],
        "executor": {
            "activeDeadlineSeconds": 3600,
            "preRunningDeadlineSeconds": 120,
            "ttlSecondsAfterFinished": 0,
        },
    },
    "longest-names": {
        "template": {"task": "regression"},
        "phases": [{"name": LONG, "sweep": {"seeds": {"count": 3}}}],
    },
}


def trials_of(ns: str, name: str, spec: dict[str, Any]) -> tuple[TrainingCampaign, list[Trial]]:
    campaign = TrainingCampaign.model_validate(
        {"metadata": {"name": name, "namespace": ns, "uid": "u"}, "spec": spec}
    )
    created = [a.trial for a in plan(campaign, [], datetime.now(UTC)).actions if isinstance(a, CreateTrial)]
    return campaign, created


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= leaves(v, f"{path}.{k}")
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out |= leaves(v, f"{path}[{i}]")
        return out
    return {path: value}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rayjobs_are_accepted_and_stored_whole(kube: Kube, namespace: str, case: str) -> None:
    name = LONG if case == "longest-names" else f"c-{case}"[:40]
    campaign, trials = trials_of(namespace, name, CASES[case])
    assert trials
    for trial in trials:
        # A real Trial, so the RayJob's owner reference points at something that exists.
        body = trial.to_wire()
        body.pop("status", None)
        stored = kube.ok("POST", kube.path(namespace, "trials"), body)
        trial.metadata.uid = stored["metadata"]["uid"]
        for attempt in (1, 99):  # the widest attempt suffix naming allows
            rayjob = build_rayjob(trial, attempt, campaign, TrainerSettings())
            assert len(rayjob["metadata"]["name"]) <= RAYJOB_NAME_LIMIT
            r = kube.call("POST", RAY_PATH.format(ns=namespace), rayjob)
            assert r.status_code == 201, f"{case}: HTTP {r.status_code}: {r.text[:3000]}"
            created = r.json()
            sent, kept = leaves(rayjob["spec"]), leaves(created["spec"])
            lost = {k: v for k, v in sent.items() if kept.get(k) != v}
            assert not lost, f"{case}: the apiserver pruned or changed {lost}"


def test_pool_scheduling_and_kueue_labels_land_where_kuberay_reads_them(kube: Kube, namespace: str) -> None:
    campaign, trials = trials_of(namespace, "sched", CASES["workers-kueue-priorities"])
    p_trial = next(t for t in trials if t.spec.phase == "p")
    job = build_rayjob(p_trial, 1, campaign, TrainerSettings())
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a"
    assert labels["kueue.x-k8s.io/priority-class"] == "high"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert (
        spec["activeDeadlineSeconds"],
        spec["preRunningDeadlineSeconds"],
        spec["ttlSecondsAfterFinished"],
    ) == (
        3600,
        120,
        0,
    )
    worker = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert worker["replicas"] == 4
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"] == POOL["nodeSelector"]
    assert pod["tolerations"][1] == POOL["tolerations"][1]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert pod["containers"][0]["image"] == POOL["image"]
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    q_trial = next(t for t in trials if t.spec.phase == "q")
    mig = build_rayjob(q_trial, 1, campaign, TrainerSettings())["spec"]["rayClusterSpec"]["workerGroupSpecs"][
        0
    ]
    assert mig["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.5gb"] == "2"


def test_every_pod_we_build_passes_the_restricted_pod_security_standard(kube: Kube, namespace: str) -> None:
    # The Priority admission plugin resolves priorityClassName: the class must exist.
    pc = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "training-high"},
        "value": 1000,
    }
    assert kube.call("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", pc).status_code in (201, 409)
    # The apiserver's own PodSecurity admission, enforced on this namespace, judges the pods.
    kube.ok(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
        "application/merge-patch+json",
    )
    for checked, (case, spec) in enumerate(CASES.items()):
        campaign, trials = trials_of(namespace, f"psa-{case}"[:40], spec)
        job = build_rayjob(trials[0], 1, campaign, TrainerSettings())
        cluster = job["spec"]["rayClusterSpec"]
        templates = [cluster["headGroupSpec"]["template"], job["spec"]["submitterPodTemplate"]]
        templates += [g["template"] for g in cluster.get("workerGroupSpecs", [])]
        for i, template in enumerate(templates):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"psa-{checked}-{i}", "namespace": namespace},
                "spec": template["spec"],
            }
            r = kube.call("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod)
            assert r.status_code == 201, f"{case} template {i}: {r.text[:2000]}"
            assert not r.headers.get("Warning"), f"{case} template {i}: {r.headers.get('Warning')}"
    # ...and a pod that is not restricted really is refused here, so the check above means something.
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    assert kube.call("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", bad).status_code == 403
