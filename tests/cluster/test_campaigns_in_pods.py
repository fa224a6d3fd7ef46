"""Campaigns on a real cluster: `kubectl apply` a manifest, the operator (a pod from our image,
installed by our chart) creates RayJobs, the real KubeRay operator turns them into RayClusters whose
head pods run our trainer image, the trainer trains and reports into Trial status, gates judge the
reported metrics. Counts are exact; every trial trained in a pod."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from campaign_operator.planner.naming import search_trial_name
from integration.k8s.opkit import Kube, wait_for
from rig.cluster import GPU_CAPACITY, GPU_POOL, GPU_POOL_LABEL, GPU_TAINT_KEY, LocalCluster
from rig.controlplane import free_port
from rig.kueue import queue_manifests, workload_priority_class
from rig.node import NODE_IP, NODE_NAME
from rig.product import NODE_SIZED_RESOURCES, Images, fit_to_node

from .conftest import diagnostics, operator_pod, wait_campaign_done

REPO = Path(__file__).resolve().parents[2]
# Set-up (a first trainer-image import takes minutes) and a dozen RayJobs on two cores outlast the
# suite's default 600 s.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(2400)]

SMALL = NODE_SIZED_RESOURCES


class PodRecorder:
    """Every pod of a namespace as last seen, polled in the background: RayJobs and their pods are
    deleted once a trial is over, and the test asserts on what ran."""

    def __init__(self, kube: Kube, ns: str) -> None:
        self.kube, self.ns = kube, ns
        self.pods: dict[str, dict[str, Any]] = {}
        self.rayjobs: dict[str, dict[str, Any]] = {}
        self.admitted: dict[str, float] = {}  # RayJob -> when first seen unsuspended
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for pod in self.kube.ok("GET", f"/api/v1/namespaces/{self.ns}/pods")["items"]:
                    self.pods[pod["metadata"]["name"]] = pod
                for job in self.kube.ok("GET", f"/apis/ray.io/v1/namespaces/{self.ns}/rayjobs")["items"]:
                    self.rayjobs[job["metadata"]["name"]] = job
                    if not job["spec"].get("suspend"):
                        self.admitted.setdefault(job["metadata"]["name"], time.monotonic())
            except Exception:  # the apiserver may be busy; the next poll catches up
                pass
            self._stop.wait(1.0)

    def ray_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.pods.values() if "ray.io/node-type" in p["metadata"].get("labels", {})]


def apply(cluster: LocalCluster, ns: str, manifest: dict[str, Any]) -> None:
    """As a user would: kubectl apply of the YAML."""
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / name).read_text())


def counts(campaign: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {p["name"]: p["counts"] for p in campaign["status"]["phases"]}


def assert_trained_in_pods(kube: Kube, ns: str, name: str, rec: PodRecorder, images: Images) -> None:
    """Every trial that ran was a RayJob whose head pod ran our trainer image and whose trainer
    reported every epoch into the Trial."""
    refused = [
        j["metadata"]["name"]
        for j in rec.rayjobs.values()
        if (j.get("status") or {}).get("jobDeploymentStatus") == "ValidationFailed"
    ]
    assert not refused, f"KubeRay refused our RayJobs: {refused}"
    trials = kube.trials(ns, name)
    ran = [
        t
        for t in trials
        if t["status"]["state"] in ("Succeeded", "Failed") and t["status"].get("executorRef")
    ]
    assert ran
    heads = {
        p["metadata"]["labels"].get("ray.io/cluster", ""): p
        for p in rec.ray_pods()
        if p["metadata"]["labels"].get("ray.io/node-type") == "head"
    }
    for t in ran:
        ref = t["status"]["executorRef"]
        assert ref["kind"] == "RayJob", ref
        job = rec.rayjobs.get(ref["name"])
        assert job is not None, f"RayJob {ref['name']} of {t['metadata']['name']} never seen"
        head = heads.get((job.get("status") or {}).get("rayClusterName", "?"))
        assert head is not None, f"no head pod seen for {ref['name']}"
        assert {c["image"] for c in head["spec"]["containers"]} == {images.trainer}
        assert head["spec"]["serviceAccountName"] == "campaign-trainer"
        if t["status"]["state"] == "Succeeded":
            assert t["status"]["epoch"] >= 1 and t["status"]["metrics"], t["status"]


def small_campaign(
    name: str,
    phases: list[dict[str, Any]],
    *,
    epochs: int = 2,
    samples: int = 256,
    batch_size: int = 64,
    hyperparameters: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A small regression campaign sized for the node; `spec` adds or replaces spec fields."""
    return {
        "apiVersion": "training.campaign-operator.io/v1alpha1",
        "kind": "TrainingCampaign",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "val_loss", "mode": "min"},
            "template": {
                "task": "regression",
                "epochs": epochs,
                "batchSize": batch_size,
                "dataset": {"synthetic": {"samples": samples, "seed": 1}},
                "hyperparameters": hyperparameters or {"hidden_dims": [16], "lr": 0.01},
                "resources": dict(SMALL),
            },
            "phases": phases,
            **spec,
        },
    }


@pytest.fixture
def recorder(kube: Kube, ns: str) -> Iterator[PodRecorder]:
    with PodRecorder(kube, ns) as rec:
        yield rec


def test_demo_campaign_succeeds_with_every_trial_trained_in_a_pod(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    manifest = fit_to_node(example("demo.yaml"))
    manifest["spec"]["template"]["epochs"] = 2
    t0 = time.monotonic()
    apply(cluster, ns, manifest)
    follower = follow_smoke_log(cluster, kube, ns)
    c = wait_campaign_done(kube, cluster, ns, "demo", 1500)
    wall = time.monotonic() - t0
    assert c["status"]["state"] == "Succeeded", json.dumps(c["status"], indent=1)[:4000] + diagnostics(
        cluster, ns
    )
    got = counts(c)
    assert (got["smoke"]["succeeded"], got["smoke"]["total"]) == (1, 1)
    # 4 x 2 grid: one point skipped by skipWhen (lr 100.0 came back from the apiserver as 100), the
    # other lr=100 point diverges (NonFiniteLoss, not retried), six succeed.
    explore = got["explore"]
    assert (explore["total"], explore["skipped"], explore["failed"], explore["succeeded"]) == (8, 1, 1, 6)
    assert (got["ensemble"]["succeeded"], got["ensemble"]["total"]) == (4, 4)
    assert_trained_in_pods(kube, ns, "demo", recorder, images)
    gate = next(p for p in c["status"]["phases"] if p["name"] == "explore")["gate"]
    assert gate["passed"] is True and gate["values"]["best"]["metrics"]["r2"] > 0.5
    (diverged,) = [t for t in kube.trials(ns, "demo") if t["status"]["state"] == "Failed"]
    assert diverged["status"]["reason"] == "NonFiniteLoss", diverged["status"]
    print(f"cluster demo: {wall:.0f}s wall")
    (smoke,) = [t for t in kube.trials(ns, "demo") if t["spec"]["phase"] == "smoke"]
    assert_plugin_showed_the_log(cluster, ns, follower, smoke)


def follow_smoke_log(cluster: LocalCluster, kube: Kube, ns: str) -> subprocess.Popen[str]:
    """`kubectl campaign logs TRIAL -f` from the moment the smoke trial exists: it waits for the
    attempt's pods, then streams the driver's output until the submitter ends."""
    wait_for(
        lambda: any(t["spec"]["phase"] == "smoke" for t in kube.trials(ns, "demo")), 120, "the smoke trial"
    )
    (smoke,) = [t for t in kube.trials(ns, "demo") if t["spec"]["phase"] == "smoke"]
    return subprocess.Popen(
        [*plugin(), "logs", smoke["metadata"]["name"], "-n", ns, "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"KUBECONFIG": str(cluster.kubeconfig_path), "PATH": "/usr/bin:/bin"},
    )


def plugin() -> list[str]:
    return [str(Path(sys.executable).parent / "kubectl-campaign")]


def assert_plugin_showed_the_log(
    cluster: LocalCluster, ns: str, follower: subprocess.Popen[str], smoke: dict[str, Any]
) -> None:
    try:
        out, err = follower.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        follower.kill()
        out, err = follower.communicate()
        raise AssertionError(
            f"kubectl campaign logs -f did not end with its pod:\n{out[-2000:]}\n{err}"
        ) from None
    job = smoke["status"]["executorRef"]["name"]
    assert follower.returncode == 0, (out[-2000:], err)
    assert f"submitter pod {job}" in err and f"of RayJob {job}" in err, err
    # KubeRay's submitter runs `ray job submit --no-wait` then `ray job logs --follow`; a submitter
    # pod that failed (the Job retries it) is followed by the next one.
    assert f"Job '{job}" in out and "submitted successfully" in out, (out[-3000:], err)
    # Once the attempt is over the operator deletes its RayJob: the plugin says so, with the status.
    env = {"KUBECONFIG": str(cluster.kubeconfig_path), "PATH": "/usr/bin:/bin"}
    later = subprocess.run(
        [*plugin(), "logs", smoke["metadata"]["name"], "-n", ns],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert later.returncode == 3 and "the operator deletes an attempt's RayJob" in later.stderr, later.stderr
    n = smoke["status"]["attempt"]
    absent = subprocess.run(
        [*plugin(), "logs", smoke["metadata"]["name"], "-n", ns, f"--attempt={n + 1}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert absent.returncode == 3 and f"has attempts 1..{n}, not {n + 1}" in absent.stderr, absent.stderr


def test_a_phase_over_its_failure_threshold_fails_the_campaign_with_rate_and_threshold(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    phase = {
        "name": "explore",
        # SGD at lr 100 diverges in the first epoch: a real failure the trainer finds itself.
        "sweep": {"grid": {"lr": [0.01, 100.0]}},
        "failurePolicy": {"maxFailureRate": 0.3, "retries": 0, "failFast": True},
    }
    manifest = small_campaign(
        "too-many-failures",
        [phase],
        hyperparameters={"hidden_dims": [32], "lr": 0.01, "optimizer": "sgd"},
        maxParallelTrials=2,
    )
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "too-many-failures", 900)
    assert c["status"]["state"] == "Failed", c["status"]
    failed = next(x for x in c["status"]["conditions"] if x["type"] == "Failed")
    assert failed["status"] == "True"
    assert "explore" in failed["message"] and "50.0%" in failed["message"] and "30.0%" in failed["message"], (
        failed
    )
    assert_trained_in_pods(kube, ns, "too-many-failures", recorder, images)


def test_a_trial_whose_trainer_dies_is_retried_as_attempt_2_and_succeeds(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    manifest = small_campaign(
        "retry",
        [{"name": "once", "failurePolicy": {"retries": 1, "backoffSeconds": 1}}],
        epochs=40,
        samples=2048,
        batch_size=32,
        hyperparameters={"hidden_dims": [32], "lr": 0.01},
    )
    apply(cluster, ns, manifest)

    def first_attempt_training() -> dict[str, Any] | None:
        (t,) = kube.trials(ns, "retry") or [None]
        return t if t and (t.get("status") or {}).get("epoch", 0) >= 1 else None

    trial = wait_for(
        first_attempt_training, 600, f"attempt 1 to report an epoch\n{diagnostics(cluster, ns)}", 1
    )
    assert trial["status"]["attempt"] == 1
    # The trainer process dies (as an OOM kill would do it) in the head pod of attempt 1.
    job = recorder.rayjobs[trial["status"]["executorRef"]["name"]]
    head = wait_for(
        lambda: next(
            (
                p
                for p in recorder.ray_pods()
                if p["metadata"]["labels"].get("ray.io/cluster")
                == (job.get("status") or {}).get("rayClusterName")
                and p["metadata"]["labels"].get("ray.io/node-type") == "head"
            ),
            None,
        ),
        60,
        "the head pod of attempt 1",
    )
    cluster.kubectl(
        "exec", "-n", ns, head["metadata"]["name"], "--", "pkill", "-9", "-f", "campaign_trainer run"
    )
    c = wait_campaign_done(kube, cluster, ns, "retry", 900)
    assert c["status"]["state"] == "Succeeded", c["status"]
    (t,) = kube.trials(ns, "retry")
    assert (t["status"]["state"], t["status"]["attempt"]) == ("Succeeded", 2), t["status"]
    assert t["status"]["epoch"] == 40
    attempts = sorted(int(j["metadata"]["labels"]["attempt"]) for j in recorder.rayjobs.values())
    assert attempts == [1, 2], "exactly one RayJob per attempt"


def test_deleting_a_campaign_removes_its_rayjobs_rayclusters_and_pods(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    manifest = fit_to_node(example("demo.yaml"), parallel=1)
    apply(cluster, ns, manifest)
    wait_for(lambda: recorder.ray_pods(), 300, f"a Ray pod\n{diagnostics(cluster, ns)}", 1)
    cluster.kubectl("delete", "trainingcampaign", "demo", "-n", ns, "--wait=true", "--timeout=180s")

    def gone() -> bool:
        left = {
            kind: json.loads(cluster.kubectl("get", kind, "-n", ns, "-o", "json").stdout)["items"]
            for kind in ("campaigntrials", "rayjobs", "rayclusters")
        }
        pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
        return not any(left.values()) and not pods

    wait_for(gone, 240, f"everything of the campaign to be gone\n{diagnostics(cluster, ns)}", 2)


def test_killing_the_operator_pod_mid_campaign_changes_no_final_count(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    manifest = small_campaign(
        "survivor",
        [{"name": "seeds", "sweep": {"seeds": {"count": 4}}}],
        epochs=3,
        samples=512,
        maxParallelTrials=2,
    )
    apply(cluster, ns, manifest)
    wait_for(
        lambda: any((t.get("status") or {}).get("state") == "Running" for t in kube.trials(ns, "survivor")),
        300,
        "a running trial",
        1,
    )
    victim = operator_pod(cluster)["metadata"]["name"]
    cluster.kubectl("delete", "pod", "-n", "campaign-system", victim, "--wait=false")
    c = wait_campaign_done(kube, cluster, ns, "survivor", 900)
    assert operator_pod(cluster)["metadata"]["name"] != victim
    assert c["status"]["state"] == "Succeeded", c["status"]
    assert counts(c)["seeds"]["succeeded"] == 4 and c["status"]["trials"]["total"] == 4
    trials = kube.trials(ns, "survivor")
    assert len(trials) == 4 and all(t["status"]["attempt"] == 1 for t in trials), [
        t["status"] for t in trials
    ]
    # One RayJob per trial: the restarted operator adopted, it did not submit again.
    assert sorted(recorder.rayjobs) == sorted(t["status"]["executorRef"]["name"] for t in trials)


def gpu_campaign(name: str, gpus: int) -> dict[str, Any]:
    pool = {
        "name": "a100",
        "nodeSelector": {GPU_POOL_LABEL: GPU_POOL},
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "gpus": gpus,
    }
    return small_campaign(name, [{"name": "train", "nodePool": "a100"}], nodePools=[pool])


@pytest.fixture
def gpu_node_tainted(cluster: LocalCluster) -> Iterator[None]:
    """The node as a dedicated GPU pool (NoSchedule) for one test: only pods that tolerate the
    taint land on it. Pods already running (the operator) stay."""
    cluster.taint_gpu_node("NoSchedule")
    try:
        yield
    finally:
        cluster.taint_gpu_node(None)


def test_a_phase_on_the_gpu_pool_runs_on_the_gpu_node_with_its_selector_tolerations_and_limits(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder, gpu_node_tainted: None
) -> None:
    manifest = gpu_campaign("on-gpus", gpus=1)
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "on-gpus", 600)
    assert c["status"]["state"] == "Succeeded", c["status"]
    pods = [p for p in recorder.pods.values() if p["metadata"]["labels"].get("campaign") == "on-gpus"]
    kinds = {p["metadata"]["labels"].get("ray.io/node-type", "submitter") for p in pods}
    assert kinds == {"head", "submitter"}, kinds  # workers 0: the head trains and carries the GPU
    for pod in pods:
        spec = pod["spec"]
        assert spec["nodeName"] == NODE_NAME
        assert spec["nodeSelector"] == {GPU_POOL_LABEL: GPU_POOL}
        assert {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    (head,) = [p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "head"]
    assert head["spec"]["containers"][0]["resources"]["limits"][GPU_TAINT_KEY] == "1"
    assert_trained_in_pods(kube, ns, "on-gpus", recorder, images)


def test_a_gpu_request_that_cannot_fit_waits_with_the_schedulers_reason(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    manifest = gpu_campaign("too-big", gpus=GPU_CAPACITY + 4)
    apply(cluster, ns, manifest)

    def waiting() -> dict[str, Any] | None:
        (t,) = kube.trials(ns, "too-big") or [None]
        status = (t or {}).get("status") or {}
        return status if status.get("reason") == "Unschedulable" else None

    status = wait_for(waiting, 300, f"the trial to say it is unschedulable\n{diagnostics(cluster, ns)}", 1)
    assert status["state"] == "Running"
    assert "Insufficient nvidia.com/gpu" in status["message"], status
    c = kube.campaign(ns, "too-big")
    assert c["status"]["state"] == "Running" and c["status"]["trials"].get("failed", 0) == 0


def shared_raycluster(name: str, image: str) -> dict[str, Any]:
    """A user's long-lived RayCluster from the trainer image (restricted pod security), whose pods run
    as the trainer ServiceAccount so its jobs may report into Trial status."""
    container = {
        "name": "ray-head",
        "image": image,
        "imagePullPolicy": "Never",
        "resources": {"requests": {"cpu": "500m", "memory": "3Gi"}, "limits": {"cpu": "1", "memory": "3Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name},
        "spec": {
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0"},
                "template": {
                    "spec": {
                        "serviceAccountName": "campaign-trainer",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                    }
                },
            }
        },
    }


def test_the_rayjobs_executor_runs_trials_on_a_raycluster_in_the_cluster(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, operator_release: str
) -> None:
    # What a user does for an existing cluster: a ServiceAccount bound to the chart's trainer role.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "campaign-trainer", "namespace": ns},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "campaign-trainer", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{operator_release}-campaign-operator-trainer",  # the chart's <fullname>-trainer
            },
            "subjects": [{"kind": "ServiceAccount", "name": "campaign-trainer", "namespace": ns}],
        },
    )
    apply(cluster, ns, shared_raycluster("shared", images.trainer))
    cluster.kubectl(
        "wait", "-n", ns, "pod", "-l", "ray.io/cluster=shared", "--for=condition=Ready", "--timeout=300s"
    )
    manifest = small_campaign(
        "on-shared",
        [{"name": "seeds", "sweep": {"seeds": {"count": 2}}}],
        executor={"kind": "rayjobs", "address": f"http://shared-head-svc.{ns}.svc.cluster.local:8265"},
        maxParallelTrials=1,
    )
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "on-shared", 600)
    assert c["status"]["state"] == "Succeeded", c["status"]
    trials = kube.trials(ns, "on-shared")
    assert len(trials) == 2
    for t in trials:
        s = t["status"]
        assert s["executorRef"]["kind"] == "RaySubmission" and s["epoch"] == 2 and s["metrics"], s
    assert not kube.rayjobs(ns), "the rayjobs executor creates no RayJob"


def test_the_nba_deep_campaign_scaled_down_succeeds_in_pods(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    """Seed 001's three phases, each cut to two trials of two epochs (the manifest's structure,
    priorities, promotion and gates as written; the quality gate's 0.08 is for 2,000 epochs)."""
    manifest = fit_to_node(example("nba-deep-campaign.yaml"))
    quality, exploration, robustness = manifest["spec"]["phases"]
    quality["sweep"]["trials"] = quality["sweep"]["trials"][:2]
    exploration["sweep"]["grid"] = {"alpha": [0.2, 0.3], "hidden_dims": [[64, 32]]}
    robustness["sweep"]["seeds"]["count"] = 2
    for phase in manifest["spec"]["phases"]:
        phase["epochs"] = 2
    quality["gate"]["expression"] = "phase.best.metrics.val_loss < 1000.0"
    manifest["spec"]["template"]["checkpoint"] = {"everyEpochs": 1, "keep": 1}
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "nba-deep", 1200)
    assert c["status"]["state"] == "Succeeded", c["status"]
    assert {name: n["succeeded"] for name, n in counts(c).items()} == {
        "quality": 2,
        "exploration": 2,
        "robustness": 2,
    }
    best = next(p for p in c["status"]["phases"] if p["name"] == "exploration")["best"]
    for t in kube.trials(ns, "nba-deep"):
        if t["spec"]["phase"] == "robustness":  # promoted from exploration's best
            assert t["spec"]["parameters"]["alpha"] == best["parameters"]["alpha"]
    assert_trained_in_pods(kube, ns, "nba-deep", recorder, images)


def test_the_adaptive_nba_deep_campaign_searches_in_the_operator_pod_and_promotes_its_best(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder
) -> None:
    """Seed 001 with its exploration a TPE search (examples/nba-deep-adaptive.yaml), cut to two
    searched trials and two seeds of two epochs: the operator pod's planner (Optuna in our operator
    image, non-root, read-only root) suggests the trials as slots free, names them by index, and the
    ensemble takes the search's best."""
    manifest = fit_to_node(example("nba-deep-adaptive.yaml"))
    exploration, robustness = manifest["spec"]["phases"]
    exploration["sweep"]["search"]["trials"] = 2
    exploration["sweep"]["search"]["space"]["hidden_dims"]["choice"] = [[64, 32], [32, 16]]
    exploration.pop("earlyTermination")  # its rungs are for 500 epochs
    robustness["sweep"]["seeds"]["count"] = 2
    for phase in manifest["spec"]["phases"]:
        phase["epochs"] = 2
    manifest["spec"]["template"]["checkpoint"] = {"everyEpochs": 1, "keep": 1}
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "nba-deep-adaptive", 1200)
    assert c["status"]["state"] == "Succeeded", c["status"]
    assert {name: n["succeeded"] for name, n in counts(c).items()} == {"exploration": 2, "robustness": 2}
    trials = kube.trials(ns, "nba-deep-adaptive")
    searched = sorted(t["metadata"]["name"] for t in trials if t["spec"]["phase"] == "exploration")
    assert searched == sorted(search_trial_name("nba-deep-adaptive", "exploration", i) for i in range(2))
    best = next(p for p in c["status"]["phases"] if p["name"] == "exploration")["best"]
    for t in trials:
        if t["spec"]["phase"] == "robustness":
            assert t["spec"]["parameters"]["alpha"] == best["parameters"]["alpha"]
            assert t["spec"]["parameters"]["lr"] == best["parameters"]["lr"]
    assert_trained_in_pods(kube, ns, "nba-deep-adaptive", recorder, images)


@pytest.fixture
def gpu_queue(cluster: LocalCluster, ns: str) -> Iterator[str]:
    """A ClusterQueue whose GPU quota admits one trial at a time (the GPU pool's flavor), the
    namespace's LocalQueue on it, and two WorkloadPriorityClasses for the phases."""
    docs = [
        workload_priority_class("campaign-high", 1000),
        workload_priority_class("campaign-low", 10),
        *queue_manifests(
            ns,
            f"gpus-{ns}",
            "team",
            cpu=4,
            gpus=1,
            flavor=f"pool-{ns}",
            node_labels={GPU_POOL_LABEL: GPU_POOL},
        ),
    ]
    cluster.apply(*docs)
    yield "team"
    for doc in reversed(docs):
        if doc["kind"] in ("ResourceFlavor", "ClusterQueue", "WorkloadPriorityClass"):
            cluster.kubectl(
                "delete", doc["kind"].lower(), doc["metadata"]["name"], "--wait=false", check=False
            )


def test_kueue_admits_queued_trials_within_quota_in_phase_priority_order(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder, gpu_queue: str
) -> None:
    manifest = gpu_campaign("queued", gpus=1)
    spec = manifest["spec"]
    spec["queueName"] = gpu_queue
    spec["maxParallelTrials"] = 4  # more than the queue's one GPU admits at a time
    spec["phases"] = [
        {
            "name": "low",
            "nodePool": "a100",
            "priority": 1,
            "workloadPriorityClass": "campaign-low",
            "sweep": {"seeds": {"count": 2}},
        },
        {
            "name": "high",
            "nodePool": "a100",
            "priority": 9,
            "workloadPriorityClass": "campaign-high",
            "sweep": {"seeds": {"count": 2}},
        },
    ]
    apply(cluster, ns, manifest)

    def all_queued() -> bool:
        return len(recorder.rayjobs) == 4

    wait_for(all_queued, 300, f"four RayJobs in Kueue's queue\n{diagnostics(cluster, ns)}", 1)

    def waiting() -> list[dict[str, Any]]:  # once the operator's next reconcile has seen Kueue hold them
        return [t for t in kube.trials(ns, "queued") if (t.get("status") or {}).get("reason") == "Suspended"]

    wait_for(
        waiting,
        120,
        f"trials beyond the GPU quota wait suspended, with a reason\n{diagnostics(cluster, ns)}",
        1,
    )
    c = wait_campaign_done(kube, cluster, ns, "queued", 900)
    assert c["status"]["state"] == "Succeeded", c["status"]
    trials = kube.trials(ns, "queued")
    assert len(trials) == 4 and all(t["status"]["attempt"] == 1 for t in trials)
    # One RayJob per trial, never a second beside one Kueue would resume.
    assert sorted(recorder.rayjobs) == sorted(t["status"]["executorRef"]["name"] for t in trials)
    phase_of = {j: job["metadata"]["labels"]["phase"] for j, job in recorder.rayjobs.items()}
    order = [phase_of[j] for j in sorted(recorder.admitted, key=recorder.admitted.__getitem__)]
    # The first job may be admitted the moment it enters the empty queue, whatever its phase; from
    # then on Kueue admits by workload priority: the remaining high-phase jobs before any low one.
    rest = order[1:]
    assert rest == sorted(rest, key=lambda phase: phase != "high"), order
    assert sorted(order) == ["high", "high", "low", "low"]


@pytest.fixture
def s3_on_node() -> Iterator[str]:
    """moto's S3 server on the node's IP (pods reach it like any in-cluster service), with a bucket."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", NODE_IP, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://{NODE_IP}:{port}"
    client = s3_client(endpoint)
    try:
        wait_for(lambda: _bucket_created(client), 30, "moto_server on the node IP")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    """A client of the moto server (which takes any credentials)."""
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )


def _bucket_created(client: Any) -> bool:
    try:
        client.create_bucket(Bucket="ckpt")
        return True
    except Exception:  # not listening yet
        return False


def test_checkpoints_go_to_s3_with_credentials_by_reference(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder, s3_on_node: str
) -> None:
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "s3-creds",
        "-n",
        ns,
        "--from-literal=AWS_ACCESS_KEY_ID=campaign",
        "--from-literal=AWS_SECRET_ACCESS_KEY=not-logged-anywhere",
    )
    manifest = small_campaign(
        "to-s3",
        [{"name": "train"}],
        epochs=3,
        storage={"s3": {"uri": "s3://ckpt/runs", "endpoint": s3_on_node, "credentialsSecret": "s3-creds"}},
    )
    manifest["spec"]["template"]["checkpoint"] = {"everyEpochs": 1, "keep": 2}
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "to-s3", 600)
    assert c["status"]["state"] == "Succeeded", c["status"]
    (t,) = kube.trials(ns, "to-s3")
    uri = t["status"]["checkpoint"]
    assert uri.startswith(f"s3://ckpt/runs/to-s3/{t['metadata']['name']}"), uri
    client = s3_client(s3_on_node)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="ckpt", Prefix="runs/to-s3/").get("Contents", [])]
    assert keys, "the trainer in the pod wrote its checkpoints to S3"
    # The secret's value never appears in what the operator created.
    assert all("not-logged-anywhere" not in json.dumps(j) for j in recorder.rayjobs.values())
    assert all("not-logged-anywhere" not in json.dumps(p["spec"]) for p in recorder.pods.values())


def test_teacher_student_smoke_on_s3_hands_each_student_its_teachers_outputs_across_pods(
    cluster: LocalCluster, kube: Kube, ns: str, images: Images, recorder: PodRecorder, s3_on_node: str
) -> None:
    """Seed 002 as shipped, run as the manifest-level smoke test (spec.scaleDown) on the CPU node,
    with storage on S3: LightGBM teachers read their symbol's file from the trainer image and
    publish their outputs to S3; each student, in another pod, reads its own teacher's outputs."""
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "nifty-s3",
        "-n",
        ns,
        "--from-literal=AWS_ACCESS_KEY_ID=campaign",
        "--from-literal=AWS_SECRET_ACCESS_KEY=not-logged-anywhere",
    )
    manifest = fit_to_node(example("teacher-student.yaml"))
    spec = manifest["spec"]
    spec.pop("nodePools")  # the rig's GPU pool is tested on its own; the seed's T4 pool is not here
    for phase in spec["phases"]:
        phase.pop("nodePool")
    spec["scaleDown"] = {"smoke": True}
    spec["storage"] = {"s3": {"uri": "s3://ckpt/ts", "endpoint": s3_on_node, "credentialsSecret": "nifty-s3"}}
    apply(cluster, ns, manifest)
    c = wait_campaign_done(kube, cluster, ns, "nifty100-ts", 1200)
    assert c["status"]["state"] == "Succeeded", c["status"]
    assert c["status"]["run"] == "smoke"
    assert {name: (n["succeeded"], n["skipped"], n["failed"]) for name, n in counts(c).items()} == {
        "teacher": (1, 1, 0),
        "student": (1, 1, 0),
    }
    trials = kube.trials(ns, "nifty100-ts")
    by_point = {(t["spec"]["phase"], json.dumps(t["spec"]["sweepPoint"], sort_keys=True)): t for t in trials}
    client = s3_client(s3_on_node)
    ran = [t for t in trials if t["status"]["state"] == "Succeeded"]
    (teacher,) = [t for t in ran if t["spec"]["phase"] == "teacher"]
    student = by_point[("student", json.dumps(teacher["spec"]["sweepPoint"], sort_keys=True))]
    outputs = teacher["status"]["outputs"]
    assert outputs.startswith(f"s3://ckpt/ts/nifty100-ts/{teacher['metadata']['name']}"), outputs
    assert student["spec"]["inputs"] == {"teacher": outputs}
    assert student["status"]["state"] == "Succeeded", student["status"]
    prefix = outputs.removeprefix("s3://ckpt/").rstrip("/") + "/"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="ckpt", Prefix=prefix).get("Contents", [])}
    assert prefix + "predictions.parquet" in keys and prefix + "outputs.json" in keys, keys
    assert teacher["spec"]["task"] == "gbm" and student["spec"]["task"] == "regression"
    assert_trained_in_pods(kube, ns, "nifty100-ts", recorder, images)
    assert all("not-logged-anywhere" not in json.dumps(p["spec"]) for p in recorder.pods.values())
