"""The demo campaign on the local cluster rig vs the same manifest on embedded Ray, in one run.

On the real single-node cluster (tests/rig/cluster.py: kubelet, containerd, the real KubeRay
operator; our images; our chart's operator as a pod) it applies examples/demo.yaml sized for the
node (rig.product.fit_to_node: half-CPU trials, two at a time, 2 epochs) and records, polling the
apiserver every 0.5 s:

- per trial: Trial created -> its RayJob Running (KubeRay's jobDeploymentStatus) -> first metric in
  Trial status (epoch >= 1); p50/p90 over the demo's trials that ran;
- the operator pod's peak RSS (its cgroup's memory.stat `rss`, cgroup v1, sampled);
- the campaign's wall time, `kubectl apply` to Succeeded.

Then `campaign run` of the same manifest on embedded Ray, and prints the ratio cluster / embedded.

    .venv/bin/python bench/cluster_demo.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the rig lives with the tests

from rig.cluster import LocalCluster  # noqa: E402
from rig.product import RELEASE_NS, fit_to_node, install_operator, load_images  # noqa: E402

POLL_S = 0.5


def demo_manifest() -> dict[str, Any]:
    m = fit_to_node(yaml.safe_load((REPO / "examples" / "demo.yaml").read_text()))
    m["spec"]["template"]["epochs"] = 2
    return m


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _get(cluster: LocalCluster, path: str) -> Any:
    r = cluster.request("GET", path, timeout=30)
    r.raise_for_status()
    return r.json()


def operator_rss_bytes(cluster: LocalCluster) -> int:
    pods = _get(cluster, f"/api/v1/namespaces/{RELEASE_NS}/pods")["items"]
    total = 0
    for pod in pods:
        uid = pod["metadata"]["uid"]
        for stat in Path("/sys/fs/cgroup/memory/kubepods").glob(f"**/pod{uid}/memory.stat"):
            for line in stat.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "total_rss":
                    total += int(value)
    return total


def run_on_cluster(cluster: LocalCluster, manifest: dict[str, Any]) -> dict[str, Any]:
    ns = "bench-demo"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    name = manifest["metadata"]["name"]
    job_running: dict[str, float] = {}
    first_metric: dict[str, float] = {}
    peak_rss = 0
    t0 = time.time()
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    state = None
    while state not in ("Succeeded", "Failed"):
        time.sleep(POLL_S)
        now = time.time()
        for job in _get(cluster, f"/apis/ray.io/v1/namespaces/{ns}/rayjobs")["items"]:
            trial = job["metadata"]["labels"].get("trial", "")
            attempt = job["metadata"]["labels"].get("attempt")
            if attempt == "1" and (job.get("status") or {}).get("jobDeploymentStatus") == "Running":
                job_running.setdefault(trial, now)
        trials_path = f"/apis/training.campaign-operator.io/v1alpha1/namespaces/{ns}/campaigntrials"
        trials = _get(cluster, trials_path)["items"]
        for t in trials:
            if (t.get("status") or {}).get("epoch", 0) >= 1:
                first_metric.setdefault(t["metadata"]["name"], now)
        peak_rss = max(peak_rss, operator_rss_bytes(cluster))
        campaign = _get(
            cluster, f"/apis/training.campaign-operator.io/v1alpha1/namespaces/{ns}/trainingcampaigns/{name}"
        )
        state = (campaign.get("status") or {}).get("state")
        if now - t0 > 3600:
            raise SystemExit("the demo did not finish on the cluster within an hour")
    wall = time.time() - t0
    created = {t["metadata"]["name"]: _ts(t["metadata"]["creationTimestamp"]) for t in trials}
    to_running = [job_running[n] - created[n] for n in job_running if n in created]
    to_metric = [first_metric[n] - created[n] for n in first_metric if n in created]
    return {
        "state": state,
        "wall_s": wall,
        "trials": len(trials),
        "created_to_rayjob_running_s": to_running,
        "created_to_first_metric_s": to_metric,
        "operator_peak_rss_mib": peak_rss / 2**20,
    }


def run_embedded(manifest: dict[str, Any]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.yaml"
        embedded = json.loads(json.dumps(manifest))
        path.write_text(yaml.safe_dump(embedded))
        t0 = time.time()
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "campaign"), "run", str(path), "--state", str(Path(tmp) / "state")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.time() - t0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    manifest = demo_manifest()
    with LocalCluster() as cluster:
        images = load_images(cluster)
        install_operator(cluster, images)
        got = run_on_cluster(cluster, manifest)
    embedded = run_embedded(manifest)
    run_s, metric_s = got["created_to_rayjob_running_s"], got["created_to_first_metric_s"]
    print(f"demo on the cluster: {got['state']}, {got['trials']} trials, {got['wall_s']:.0f} s wall")
    for label, values in (("RayJob Running", run_s), ("first metric in status", metric_s)):
        print(
            f"  Trial created -> {label}: p50 {pct(values, 50):.1f} s  p90 {pct(values, 90):.1f} s"
            f"  (n={len(values)})"
        )
    print(f"  operator pod peak RSS: {got['operator_peak_rss_mib']:.1f} MiB")
    print(f"demo embedded (campaign run): {embedded:.0f} s wall")
    print(f"ratio cluster / embedded wall time: {got['wall_s'] / embedded:.2f}")
    return 0 if got["state"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
