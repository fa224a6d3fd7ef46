"""Helpers for the Kueue tests: a control plane with Kueue (and optionally the real KubeRay operator),
queues, and RayJobs as our planner and executor make them."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from campaign_operator.api import TrainingCampaign, Trial
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import build_rayjob
from campaign_operator.planner import CreateTrial, plan
from rig.controlplane import REPO_ROOT, ControlPlane, _local_session, free_port
from rig.kueue import PRIORITY_LABEL, QUEUE_LABEL, queue_manifests, start_kueue
from rig.versions import kuberay_crds, kuberay_version

from ..k8s.opkit import RAY_PATH, Kube

POOL_LABEL = "campaign-operator.io/pool"
FLAVOR_LABEL = "example.com/gpu-flavor"
KUEUE_PATH = "/apis/kueue.x-k8s.io/v1beta2"
ADMIT_TIMEOUT = 60.0
KUBERAY_PACKAGE = "github.com/ray-project/kuberay/ray-operator"


def start_kuberay(cp: ControlPlane) -> None:
    """The real KubeRay operator (the rig's pinned release) against `cp`, stopped with it."""
    build = [str(REPO_ROOT / "hack" / "build-go-tool.sh"), "kuberay-ray-operator", KUBERAY_PACKAGE]
    out = subprocess.run(["bash", *build, kuberay_version()], stdout=subprocess.PIPE, text=True, check=True)
    health = free_port()
    proc = cp._spawn(
        "kuberay-operator",
        [
            out.stdout.strip().splitlines()[-1],
            "--enable-leader-election=false",
            "--use-kubernetes-proxy",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{health}",
        ],
        env={"KUBECONFIG": str(cp.kubeconfig_path)},
    )

    def ready() -> tuple[bool, str]:
        with _local_session() as s:
            r = s.get(f"http://127.0.0.1:{health}/readyz", timeout=2)
        return r.status_code == 200, r.text[-300:]

    cp._wait_until(proc, "the KubeRay operator /readyz", ready)


@contextlib.contextmanager
def kueue_plane(*, kuberay: bool = False, webhooks: bool = False) -> Iterator[Kube]:
    """A control plane of its own (Kueue watches cluster-wide; GC runs) with KubeRay's CRDs, ours and
    Kueue's, Kueue running (`webhooks`: its admission webhooks registered), and with `kuberay` the
    KubeRay operator too (no node: pods stay Pending)."""
    cp = ControlPlane()
    cp.start()
    try:
        cp.install_crds([*kuberay_crds(kuberay_version()), *sorted((REPO_ROOT / "crds").glob("*.yaml"))])
        t0 = time.monotonic()
        start_kueue(cp, webhooks=webhooks)
        print(f"\nKueue ready {time.monotonic() - t0:.1f}s after start_kueue (its CRDs included)")
        if kuberay:
            start_kuberay(cp)
        yield Kube(cp)
    finally:
        cp.stop()


def apply(kube: Kube, *docs: dict[str, Any]) -> None:
    for doc in docs:
        kind = doc["kind"].lower()
        kind += "es" if kind.endswith("s") else "s"
        ns = doc["metadata"].get("namespace")
        path = f"{KUEUE_PATH}/namespaces/{ns}/{kind}" if ns else f"{KUEUE_PATH}/{kind}"
        kube.ok("POST", path, doc)


def queue(kube: Kube, ns: str, flavor_labels: dict[str, str] | None = None) -> tuple[str, str]:
    """A fresh ClusterQueue with quota for one GPU (CPU and memory to spare) and the namespace's
    LocalQueue on it; returns (cluster queue, local queue)."""
    suffix = ns.removeprefix("kq-")
    cq, lq, flavor = f"cq-{suffix}", "team-a", f"gpu-{suffix}"
    apply(kube, *queue_manifests(ns, cq, lq, cpu=8, gpus=1, flavor=flavor, node_labels=flavor_labels))
    return cq, lq


def trial_jobs(
    kube: Kube, ns: str, name: str, count: int, local_queue: str, priority_class: str | None = None
) -> list[tuple[Trial, dict[str, Any]]]:
    """`count` one-GPU trials of a campaign as our planner makes them (created, so that each RayJob's
    controller owner exists, as in production), each with our executor's RayJob for its first
    attempt, suspended as our operator must create them for Kueue."""
    phase: dict[str, Any] = {"name": "p", "nodePool": "gpu", "sweep": {"seeds": {"count": count}}}
    if priority_class:
        phase["workloadPriorityClass"] = priority_class
    spec = {
        "template": {"task": "regression", "resources": {"cpu": 1, "gpu": 1, "memory": "2Gi"}},
        "queueName": local_queue,
        "nodePools": [{"name": "gpu", "nodeSelector": {POOL_LABEL: "gpu"}, "gpus": 1}],
        "phases": [phase],
    }
    campaign = TrainingCampaign.model_validate({"metadata": {"name": name, "namespace": ns}, "spec": spec})
    trials = [a.trial for a in plan(campaign, [], datetime.now(UTC)).actions if isinstance(a, CreateTrial)]
    assert len(trials) == count
    jobs = []
    for trial in trials:
        body = trial.to_wire()
        body.pop("status", None)
        trial.metadata.uid = kube.ok("POST", kube.path(ns, "campaigntrials"), body)["metadata"]["uid"]
        job = build_rayjob(trial, 1, campaign, TrainerSettings())
        assert job["metadata"]["labels"][QUEUE_LABEL] == local_queue
        assert job["metadata"]["labels"].get(PRIORITY_LABEL) == priority_class
        # No webhook defaults it: a queued RayJob must be created suspended (build_rayjob may do it).
        assert job["spec"].get("suspend", True) is True
        job["spec"]["suspend"] = True
        jobs.append((trial, job))
    return jobs


def rayjobs(
    kube: Kube, ns: str, name: str, count: int, local_queue: str, priority_class: str | None = None
) -> list[dict[str, Any]]:
    return [job for _, job in trial_jobs(kube, ns, name, count, local_queue, priority_class)]


def create(kube: Kube, ns: str, job: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = kube.ok("POST", RAY_PATH.format(ns=ns), job)
    return created


def get_job(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    job: dict[str, Any] = kube.ok("GET", f"{RAY_PATH.format(ns=ns)}/{name}")
    return job


def workload_of(kube: Kube, ns: str, job: dict[str, Any]) -> dict[str, Any] | None:
    """The Workload Kueue made for the RayJob (it is the Workload's controller owner)."""
    uid = get_job(kube, ns, job["metadata"]["name"])["metadata"]["uid"]
    for wl in kube.ok("GET", f"{KUEUE_PATH}/namespaces/{ns}/workloads")["items"]:
        if any(o["uid"] == uid and o.get("controller") for o in wl["metadata"].get("ownerReferences", [])):
            return dict(wl)
    return None


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def suspended(kube: Kube, ns: str, job: dict[str, Any]) -> bool:
    return bool(get_job(kube, ns, job["metadata"]["name"])["spec"].get("suspend"))


def waiting_for_quota(kube: Kube, ns: str, job: dict[str, Any]) -> dict[str, Any] | None:
    """The job's Workload once Kueue has tried it and found no quota, else None."""
    wl = workload_of(kube, ns, job)
    if wl is None:
        return None
    reserved = condition(wl, "QuotaReserved")
    return wl if reserved.get("status") == "False" and reserved.get("reason") == "Pending" else None


def admitted(kube: Kube, ns: str, job: dict[str, Any]) -> bool:
    wl = workload_of(kube, ns, job)
    return wl is not None and condition(wl, "Admitted").get("status") == "True"


def templates(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = job["spec"]
    return {
        "head": spec["rayClusterSpec"]["headGroupSpec"]["template"],
        "submitter": spec["submitterPodTemplate"],
    }
