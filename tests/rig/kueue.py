"""A real Kueue (sigs.k8s.io/kueue, pinned in hack/versions.env) as a host process next to a ControlPlane.

Kueue runs out of cluster against the control plane's apiserver (admin kubeconfig), with only the
RayJob integration on. What that takes (each was checked against the Kueue source of the pinned
release, cmd/kueue/main.go and apis/config/v1beta2):

- The binary: `go install sigs.k8s.io/kueue/cmd/kueue@VERSION` works as is (its go.mod has no
  replace directives); hack/build-go-tool.sh builds and caches it.
- Its CRDs come from the module (config/components/crd/bases). They carry no conversion webhook
  (the `webhook_in_*` kustomize patches add it in a real install), so v1beta1 and v1beta2 are both
  served with conversion strategy None: use **v1beta2**, the storage version, for every object.
- By default no webhook configurations are installed, so nothing defaults `spec.suspend: true` on a
  new RayJob: whoever creates a queue-labelled RayJob must create it suspended (our operator must).
  Kueue serves its webhook endpoints anyway (its readiness check is the webhook server's), with a
  serving certificate from the control plane's CA, on a loopback port; `start_kueue(webhooks=True)`
  registers them with the apiserver by URL (a host process too, it can call loopback), which gives
  the production behaviour: Kueue suspends queue-labelled RayJobs on create and rejects bad ones.
- With internal cert management off (it would inject CA bundles into webhook configurations and CRD
  conversion settings that do not exist here, and never become ready), Kueue reads its metrics
  certificate from the fixed path /etc/kueue/metrics/certs. Rather than writing into the host's /etc,
  Kueue is started in a private mount namespace where /etc is an overlay whose upper layer (in the
  control plane's work dir) holds that certificate: the host's /etc is untouched. Needs root
  (CAP_SYS_ADMIN), like the rest of the rig's node parts.
- The visibility API server (feature VisibilityOnDemand, on by default) is an aggregated apiserver
  that needs in-cluster wiring; it is switched off. Leader election is off; health and metrics
  listen on free loopback ports.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import requests
import yaml

from rig.controlplane import REPO_ROOT, ControlPlane, ControlPlaneError, _local_session, free_port
from rig.versions import versions

MODULE = "sigs.k8s.io/kueue"
PACKAGE = f"{MODULE}/cmd/kueue"
API_VERSION = "kueue.x-k8s.io/v1beta2"
CONFIG_API_VERSION = "config.kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
GPU_RESOURCE = "nvidia.com/gpu"
# cmd/kueue/main.go reads the metrics certificate from /etc/kueue/metrics/certs whenever internal cert
# management is off: this is that directory inside the /etc overlay's upper layer.
METRICS_CERT_DIR = Path("kueue/metrics/certs")
NAMESPACE = "kueue-system"
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-go-tool.sh"


def kueue_version() -> str:
    """The pinned release: KUEUE_VERSION in the environment, else hack/versions.env."""
    return os.environ.get("KUEUE_VERSION") or versions()["KUEUE_VERSION"]


def _go() -> str:
    return os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"


@cache
def kueue_module_dir(version: str) -> Path:
    """The release's module in the Go module cache (`go mod download`, outside any module)."""
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"{MODULE}@{version}"],
        capture_output=True,
        text=True,
        cwd=os.environ.get("TMPDIR", "/tmp"),
        env={**os.environ, "GOTOOLCHAIN": "local"},
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise ControlPlaneError(f"go mod download {MODULE}@{version} failed:\n{out.stdout}\n{out.stderr}")
    return Path(json.loads(out.stdout)["Dir"])


def kueue_crds(version: str) -> list[Path]:
    """Every CRD of the release, as its module ships them."""
    crds = sorted((kueue_module_dir(version) / "config" / "components" / "crd" / "bases").glob("*.yaml"))
    if not any(p.name == "kueue.x-k8s.io_workloads.yaml" for p in crds):
        raise ControlPlaneError(f"no Kueue CRDs in {MODULE}@{version}")
    return crds


def kueue_binary(version: str) -> Path:
    """The cached static binary; hack/build-go-tool.sh builds it once (cold: ~10+ min on 2 cores)."""
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "kueue", PACKAGE, version], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise ControlPlaneError(f"building Kueue {version} failed (exit {out.returncode}); see stderr above")
    return Path(lines[-1])


def kueue_dir(cp: ControlPlane) -> Path:
    return cp.work_dir / "kueue"


def kueue_config_path(cp: ControlPlane) -> Path:
    """The Configuration Kueue runs with (its ports are in it)."""
    return kueue_dir(cp) / "config.yaml"


def kueue_config(
    *, health_port: int, metrics_port: int, webhook_port: int, webhook_cert_dir: Path
) -> dict[str, Any]:
    """Kueue's Configuration for an out-of-cluster run that manages queue-labelled RayJobs only."""
    return {
        "apiVersion": CONFIG_API_VERSION,
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(webhook_cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["ray.io/rayjob"]},
        "featureGates": {"VisibilityOnDemand": False},
        "clientConnection": {"qps": 50, "burst": 100},
    }


# Runs Kueue with /etc overlaid (private mount namespace): $1 upper dir, $2 overlay work dir, then argv.
_OVERLAY_ETC = (
    'u=$1 w=$2; shift 2; mount -t overlay overlay -o "lowerdir=/etc,upperdir=$u,workdir=$w" /etc && exec "$@"'
)


def start_kueue(
    cp: ControlPlane, *, version: str | None = None, webhooks: bool = False, timeout: float = 120.0
) -> None:
    """Install Kueue's CRDs, write its Configuration and certificates, start it (stopped with `cp`),
    and wait for its /readyz. Install KubeRay's CRDs before or after: Kueue sets its RayJob
    controller up once the RayJob API is served.

    `webhooks`: also register Kueue's own admission webhooks for RayJobs and its kueue.x-k8s.io
    objects with the apiserver (`webhook_configurations`), as a real install does: the apiserver is a
    host process too, so it reaches Kueue at a loopback URL. Then Kueue itself creates queue-labelled
    RayJobs suspended and rejects what it cannot manage; without them (the default) the creator must
    suspend and nothing validates."""
    version = version or kueue_version()
    binary = kueue_binary(version)
    cp.install_crds(kueue_crds(version))
    root = kueue_dir(cp)
    webhook_certs = root / "webhook-certs"
    etc_upper, etc_work = root / "etc-upper", root / "etc-work"
    metrics_certs = etc_upper / METRICS_CERT_DIR
    for d in (webhook_certs, metrics_certs, etc_work):
        d.mkdir(parents=True, exist_ok=True)
    crt, key = cp.issue_serving_cert("kueue", ["127.0.0.1", "localhost"])
    for d in (webhook_certs, metrics_certs):
        (d / "tls.crt").write_bytes(crt.read_bytes())
        (d / "tls.key").write_bytes(key.read_bytes())
        (d / "tls.key").chmod(0o600)
    health = free_port()
    config = kueue_config(
        health_port=health, metrics_port=free_port(), webhook_port=free_port(), webhook_cert_dir=webhook_certs
    )
    kueue_config_path(cp).write_text(yaml.safe_dump(config, sort_keys=False))
    overlay_etc = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _OVERLAY_ETC]
    kueue = [str(binary), f"--config={kueue_config_path(cp)}", "--zap-log-level=2"]
    proc = cp._spawn(
        "kueue",
        [*overlay_etc, "kueue-etc", str(etc_upper), str(etc_work), *kueue],
        env={"KUBECONFIG": str(cp.kubeconfig_path)},
    )

    def ready() -> tuple[bool, str]:
        with _local_session() as s:
            r = s.get(f"http://127.0.0.1:{health}/readyz", timeout=2)
        return r.status_code == 200, f"{r.status_code} {r.text[-500:]}"

    try:
        cp._wait_until(proc, "Kueue /readyz", ready, timeout=timeout)
    except (ControlPlaneError, requests.RequestException) as e:
        raise ControlPlaneError(f"{e}\n----- kueue log -----\n{proc.log_tail()}") from e
    if webhooks:
        ca = base64.b64encode(cp.ca_path.read_bytes()).decode()
        for doc in webhook_configurations(version, f"https://127.0.0.1:{config['webhook']['port']}", ca):
            plural = doc["kind"].lower() + "s"
            r = cp.request("POST", f"/apis/admissionregistration.k8s.io/v1/{plural}", json=doc)
            if r.status_code != 201:
                raise ControlPlaneError(
                    f"registering {doc['metadata']['name']}: {r.status_code} {r.text[:1000]}"
                )


def _ours(webhook: dict[str, Any]) -> bool:
    """Kueue's webhooks for its own objects and for RayJobs (the only integration we enable)."""
    rules = webhook.get("rules") or []
    return any(
        "kueue.x-k8s.io" in r.get("apiGroups", [])
        or ("ray.io" in r.get("apiGroups", []) and "rayjobs" in r.get("resources", []))
        for r in rules
    )


def webhook_configurations(version: str, base_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """The release's Mutating/ValidatingWebhookConfigurations (config/components/webhook), kept to
    RayJobs and Kueue's own objects, each pointed at `base_url` + its path instead of a Service."""
    path = kueue_module_dir(version) / "config" / "components" / "webhook" / "manifests.yaml"
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        hooks = []
        for hook in filter(_ours, doc.get("webhooks") or []):
            service_path = hook["clientConfig"]["service"]["path"]
            hooks.append({**hook, "clientConfig": {"url": base_url + service_path, "caBundle": ca_bundle}})
        name = "kueue-" + doc["metadata"]["name"]  # as Kueue's kustomize prefix names it
        out.append({**doc, "metadata": {"name": name}, "webhooks": hooks})
    return out


# --------------------------------------------------------------------------------------------------
# Queue objects


def queue_manifests(
    namespace: str,
    cluster_queue: str,
    local_queue: str,
    cpu: str | float,
    gpus: int,
    flavor: str,
    *,
    memory: str = "64Gi",
    gpu_resource: str = GPU_RESOURCE,
    node_labels: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    queueing_strategy: str = "BestEffortFIFO",
) -> list[dict[str, Any]]:
    """A ResourceFlavor (one per GPU pool: its node labels are what Kueue injects as nodeSelector on
    admission), a ClusterQueue with nominal quota for CPU, memory and GPUs in that flavor (no
    preemption), and the namespace's LocalQueue pointing at it. Apply them in this order.

    A RayJob's Workload asks for its head, every worker and, in K8sJobMode (our default), its
    submitter pod: quota must cover the submitter's requests too."""
    spec: dict[str, Any] = {}
    if node_labels:
        spec["nodeLabels"] = dict(node_labels)
    if tolerations:
        spec["tolerations"] = list(tolerations)
    return [
        {"apiVersion": API_VERSION, "kind": "ResourceFlavor", "metadata": {"name": flavor}, "spec": spec},
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {},  # every namespace may point a LocalQueue at it
                "queueingStrategy": queueing_strategy,
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", gpu_resource],
                        "flavors": [
                            {
                                "name": flavor,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": str(cpu)},
                                    {"name": "memory", "nominalQuota": memory},
                                    {"name": gpu_resource, "nominalQuota": gpus},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": API_VERSION,
            "kind": "LocalQueue",
            "metadata": {"name": local_queue, "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        },
    ]


def workload_priority_class(name: str, value: int, description: str = "") -> dict[str, Any]:
    """A WorkloadPriorityClass (cluster-scoped): a RayJob labelled `kueue.x-k8s.io/priority-class: name`
    gets its value as the Workload's priority, which orders admission within a ClusterQueue."""
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": description or f"priority {value}",
    }
