"""Every RayJob the kuberay executor builds is accepted by the real apiserver with the CRDs of every
supported KubeRay release under strict field validation (a field a release lacks is never sent), stored
without losing a field (no pruning), and its pods pass the `restricted` Pod Security Standard."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from campaign_operator.api import TrainingCampaign, Trial
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import build_rayjob
from campaign_operator.planner import CreateTrial, plan
from campaign_operator.planner.naming import RAYJOB_NAME_LIMIT
from rig.controlplane import ControlPlane
from rig.versions import kuberay_crds, kuberay_versions

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

# A pool with every pod-template addition, as the local rig uses it (a locally loaded image).
LOCAL_POOL = {
    "name": "local",
    "nodeSelector": {"campaign-operator.io/pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "gpus": 1,
    "image": "localhost/campaign-trainer:abc123",
    "imagePullPolicy": "Never",
    "podTemplate": {
        "env": [
            {"name": "HF_HOME", "value": "/cache/hf"},
            {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "token"}}},
            {
                "name": "REGION",
                "valueFrom": {"configMapKeyRef": {"name": "site", "key": "region", "optional": True}},
            },
        ],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}},
            {"name": "cache", "emptyDir": {"sizeLimit": "20Gi"}},
            {"name": "certs", "secret": {"secretName": "ca-bundle"}},
            {"name": "site", "configMap": {"name": "site", "optional": True}},
        ],
        "volumeMounts": [
            {"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "cache", "mountPath": "/cache"},
            {"name": "certs", "mountPath": "/etc/ssl/extra", "subPath": "certs"},
        ],
        "serviceAccountName": "team-a-trainer",
        "labels": {"team": "a", "example.com/cost-center": "ml-42"},
        "annotations": {"sidecar.istio.io/inject": "false"},
    },
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
    "pod-template-additions": {
        "template": {"task": "regression", "resources": {"workers": 2, "cpu": 2}},
        "nodePools": [LOCAL_POOL],
        "phases": [
            {"name": "workers", "nodePool": "local"},
            {"name": "local-mode", "nodePool": "local", "resources": {"workers": 0}},
        ],
    },
    "s3-checkpoints": {
        "template": {"task": "regression", "resources": {"workers": 1}},
        "storage": {
            "s3": {
                "uri": "s3://ckpt/runs",
                "endpoint": "http://minio.storage:9000",
                "credentialsSecret": "s3",
            }
        },
        "phases": [{"name": "workers"}, {"name": "local-mode", "resources": {"workers": 0}}],
    },
}
STRICT = "?fieldValidation=Strict"


def trials_of(ns: str, name: str, spec: dict[str, Any]) -> tuple[TrainingCampaign, list[Trial]]:
    campaign = TrainingCampaign.model_validate(
        {"metadata": {"name": name, "namespace": ns, "uid": "u"}, "spec": spec}
    )
    created = [a.trial for a in plan(campaign, [], datetime.now(UTC)).actions if isinstance(a, CreateTrial)]
    return campaign, created


def rayjobs_of(ns: str, case: str) -> list[dict[str, Any]]:
    """One RayJob per trial of the case and phase, at the widest attempt suffix naming allows."""
    name = LONG if case == "longest-names" else f"c-{case}"[:40]
    campaign, trials = trials_of(ns, name, CASES[case])
    seen: set[str] = set()
    jobs = []
    for trial in trials:
        if trial.spec.phase not in seen:
            seen.add(trial.spec.phase)
            trial.metadata.uid = "00000000-0000-0000-0000-000000000001"
            jobs.append(build_rayjob(trial, 99, campaign, TrainerSettings()))
    return jobs


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


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in `value` that an OpenAPI schema (a CRD's) has no field for."""
    if isinstance(value, list):
        return [
            p for i, v in enumerate(value) for p in unknown_fields(v, schema.get("items", {}), f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return []
    props = schema.get("properties")
    if props is None:  # a free-form map (labels, rayStartParams) or preserved unknown fields
        extra = schema.get("additionalProperties")
        sub = extra if isinstance(extra, dict) else {}
        return [p for k, v in value.items() for p in unknown_fields(v, sub, f"{path}.{k}")]
    out = []
    for k, v in value.items():
        if k in props:
            out += unknown_fields(v, props[k], f"{path}.{k}")
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.append(f"{path}.{k}")
    return out


def rayjob_schema(version: str) -> dict[str, Any]:
    (path,) = [p for p in kuberay_crds(version) if p.name == "ray.io_rayjobs.yaml"]
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return dict(v1["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("version", kuberay_versions())
def test_every_field_we_send_is_in_each_supported_kuberay_schema(version: str) -> None:
    schema = rayjob_schema(version)
    for case in sorted(CASES):
        for job in rayjobs_of("ns", case):
            assert unknown_fields(job, schema) == [], f"KubeRay {version} lacks these fields ({case})"
    # The check sees a missing field: KubeRay master's preRunningDeadlineSeconds, which 1.4/1.5 drop.
    job = rayjobs_of("ns", "minimal")[0]
    job["spec"]["preRunningDeadlineSeconds"] = 60
    assert unknown_fields(job, schema) == [".spec.preRunningDeadlineSeconds"]


@pytest.fixture(scope="module", params=kuberay_versions())
def release_apiserver(request: pytest.FixtureRequest) -> Iterator[tuple[str, Kube]]:
    """A fresh apiserver with only one supported KubeRay release's CRDs."""
    cp = ControlPlane(controller_manager=False)
    cp.start()
    try:
        cp.install_crds(kuberay_crds(request.param))
        yield request.param, Kube(cp)
    finally:
        cp.stop()


def test_each_supported_kuberay_accepts_our_rayjobs_under_strict_validation(
    release_apiserver: tuple[str, Kube],
) -> None:
    version, kube = release_apiserver
    for case in sorted(CASES):
        for job in rayjobs_of("default", case):
            r = kube.call("POST", RAY_PATH.format(ns="default") + STRICT + "&dryRun=All", job)
            assert r.status_code == 201, f"KubeRay {version}, {case}: HTTP {r.status_code}: {r.text[:3000]}"
    # Strict validation is on: a field this release lacks is refused, not dropped.
    job = rayjobs_of("default", "minimal")[0]
    job["spec"]["preRunningDeadlineSeconds"] = 60
    r = kube.call("POST", RAY_PATH.format(ns="default") + STRICT + "&dryRun=All", job)
    assert r.status_code == 400, r.text[:2000]
    assert 'unknown field "spec.preRunningDeadlineSeconds"' in r.json()["message"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_rayjobs_are_accepted_and_stored_whole(kube: Kube, namespace: str, case: str) -> None:
    name = LONG if case == "longest-names" else f"c-{case}"[:40]
    campaign, trials = trials_of(namespace, name, CASES[case])
    assert trials
    for trial in trials:
        # A real Trial, so the RayJob's owner reference points at something that exists.
        body = trial.to_wire()
        body.pop("status", None)
        stored = kube.ok("POST", kube.path(namespace, "campaigntrials") + STRICT, body)
        trial.metadata.uid = stored["metadata"]["uid"]
        for attempt in (1, 99):  # the widest attempt suffix naming allows
            rayjob = build_rayjob(trial, attempt, campaign, TrainerSettings())
            assert len(rayjob["metadata"]["name"]) <= RAYJOB_NAME_LIMIT
            r = kube.call("POST", RAY_PATH.format(ns=namespace) + STRICT, rayjob)
            assert r.status_code == 201, f"{case}: HTTP {r.status_code}: {r.text[:3000]}"
            created = r.json()
            sent, kept = leaves(rayjob["spec"]), leaves(created["spec"])
            lost = {k: v for k, v in sent.items() if kept.get(k) != v}
            assert not lost, f"{case}: the apiserver pruned or changed {lost}"


def pod_templates(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    out = {"head": cluster["headGroupSpec"]["template"], "submitter": job["spec"]["submitterPodTemplate"]}
    out |= {f"worker-{g['groupName']}": g["template"] for g in cluster.get("workerGroupSpecs", [])}
    return out


def test_pool_scheduling_and_kueue_labels_land_where_kuberay_reads_them(kube: Kube, namespace: str) -> None:
    campaign, trials = trials_of(namespace, "sched", CASES["workers-kueue-priorities"])
    p_trial = next(t for t in trials if t.spec.phase == "p")
    job = build_rayjob(p_trial, 1, campaign, TrainerSettings())
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a"
    assert labels["kueue.x-k8s.io/priority-class"] == "high"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert (spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (3600, 0)
    assert "preRunningDeadlineSeconds" not in spec  # ours to enforce: KubeRay 1.4/1.5 have no such field
    worker = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert worker["replicas"] == 4
    pod = worker["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert pod["containers"][0]["image"] == POOL["image"]
    # Every pod of the trial goes to the pool: on a cluster whose nodes are all tainted, a head or
    # submitter without the pool's tolerations would stay Pending.
    for role, template in pod_templates(job).items():
        assert template["spec"]["nodeSelector"] == POOL["nodeSelector"], role
        assert template["spec"]["tolerations"][1] == POOL["tolerations"][1], role
        assert template["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent", role
        assert template["spec"]["serviceAccountName"] == "campaign-trainer", role
        assert template["metadata"]["labels"]["trial"] == p_trial.name, role
        assert template["metadata"]["labels"]["attempt"] == "1", role
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    q_trial = next(t for t in trials if t.spec.phase == "q")
    mig = build_rayjob(q_trial, 1, campaign, TrainerSettings())["spec"]["rayClusterSpec"]["workerGroupSpecs"][
        0
    ]
    assert mig["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.5gb"] == "2"


def test_pod_template_additions_reach_the_pods_they_are_for() -> None:
    campaign, trials = trials_of("ns", "adds", CASES["pod-template-additions"])
    settings = TrainerSettings(image_pull_policy="Always")
    extra = LOCAL_POOL["podTemplate"]
    for trial in trials:
        templates = pod_templates(build_rayjob(trial, 1, campaign, settings))
        assert set(templates) == (
            {"head", "submitter", "worker-trainers"}
            if trial.spec.phase == "workers"
            else {"head", "submitter"}
        )
        for role, template in templates.items():
            pod, (container,) = template["spec"], template["spec"]["containers"]
            assert container["imagePullPolicy"] == "Never", role  # the pool's, over the operator's
            assert container["image"] == LOCAL_POOL["image"], role
            assert pod["serviceAccountName"] == "team-a-trainer", role
            assert template["metadata"]["labels"]["team"] == "a", role
            assert template["metadata"]["annotations"] == extra["annotations"], role
            assert pod["tolerations"] == LOCAL_POOL["tolerations"], role
            if role == "submitter":  # it runs `ray job submit` only: no trainer env or data
                assert "env" not in container and "volumes" not in pod, role
                continue
            assert container["env"] == extra["env"], role
            assert [v["name"] for v in pod["volumes"]] == ["shm", "data", "cache", "certs", "site"], role
            assert container["volumeMounts"] == [
                {"name": "shm", "mountPath": "/dev/shm"},
                *extra["volumeMounts"],
            ]
    # Without a pool setting, the operator's default pull policy applies.
    _, plain = trials_of("ns", "plain", CASES["minimal"])
    job = build_rayjob(plain[0], 1, campaign, settings)
    assert {t["spec"]["containers"][0]["imagePullPolicy"] for t in pod_templates(job).values()} == {"Always"}


def test_s3_storage_reaches_the_ray_pods_by_reference_only() -> None:
    campaign, trials = trials_of("ns", "ckpt", CASES["s3-checkpoints"])
    want = [
        {"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"},
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}},
        },
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}},
        },
    ]
    roles = set()
    for trial in trials:
        for role, template in pod_templates(build_rayjob(trial, 1, campaign, TrainerSettings())).items():
            roles.add(role)
            (container,) = template["spec"]["containers"]
            if role == "submitter":  # it never touches checkpoints
                assert "env" not in container
            else:
                assert container["env"] == want, role
    assert roles == {"head", "submitter", "worker-trainers"}


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
    checked = 0
    for case in CASES:
        for job in rayjobs_of(namespace, case):
            for role, template in pod_templates(job).items():
                checked += 1
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"psa-{checked}", "namespace": namespace, **template["metadata"]},
                    "spec": template["spec"],
                }
                r = kube.call(
                    "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All&fieldValidation=Strict", pod
                )
                assert r.status_code == 201, f"{case} {role}: {r.text[:2000]}"
                assert not r.headers.get("Warning"), f"{case} {role}: {r.headers.get('Warning')}"
    # ...and a pod that is not restricted really is refused here, so the check above means something.
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    assert kube.call("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", bad).status_code == 403
