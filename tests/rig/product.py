"""Our product on the local cluster, as a user installs it: the two images built from our Dockerfiles
(hack/build-images.sh, cached by content) imported into the node's containerd, prometheus-operator's
CRDs, and `helm install` of our chart into a namespace that enforces restricted Pod Security."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.cluster import LocalCluster, build_images
from rig.controlplane import REPO_ROOT, ControlPlaneError

CHART = REPO_ROOT / "charts" / "campaign-operator"
SHARED_CRDS = REPO_ROOT.parent / "shared" / "crds"
RELEASE, RELEASE_NS = "co", "campaign-system"
# The chart's values on a local cluster, the same file for the rig and for kind (hack/kind.sh).
LOCAL_VALUES = REPO_ROOT / "hack" / "local-values.yaml"


@dataclass(frozen=True)
class Images:
    operator: str
    trainer: str


def load_images(cluster: LocalCluster) -> Images:
    archives = build_images("operator", "trainer")
    refs = {ref.split("/")[-1].split(":")[0].removeprefix("campaign-"): ref for ref in archives}
    cluster.import_images(archives)
    return Images(operator=refs["operator"], trainer=refs["trainer"])


def helm_binary() -> Path:
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "install-tools.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ControlPlaneError(f"hack/install-tools.sh failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def helm(cluster: LocalCluster, *args: str, timeout: float = 600) -> str:
    r = subprocess.run(
        [str(helm_binary()), f"--kubeconfig={cluster.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        env=cluster.env(),
        timeout=timeout,
        check=False,
    )
    if r.returncode != 0:
        raise ControlPlaneError(f"helm {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def chart_values(images: Images) -> list[str]:
    """The images' refs, from the build; the rest (pull policy Never for the operator and every Ray
    pod, the resync period) is LOCAL_VALUES."""
    repo, tag = images.operator.rsplit(":", 1)
    trainer_repo, trainer_tag = images.trainer.rsplit(":", 1)
    return [
        f"image.repository={repo}",
        f"image.tag={tag}",
        f"trainer.image.repository={trainer_repo}",
        f"trainer.image.tag={trainer_tag}",
    ]


def helm_install_args(images: Images) -> list[str]:
    """`helm install` of our chart as the rig runs it; hack/kind.sh up runs the same on kind."""
    args = ["install", RELEASE, str(CHART), "--namespace", RELEASE_NS, "--values", str(LOCAL_VALUES)]
    for v in chart_values(images):
        args += ["--set", v]
    return [*args, "--wait", "--timeout", "5m"]


def install_operator(cluster: LocalCluster, images: Images) -> float:
    """helm install; returns its seconds. --wait: the operator pod is Ready when this returns."""
    cluster.install_crds(sorted(SHARED_CRDS.glob("monitoring.coreos.com_*.yaml")))
    cluster.kubectl("create", "namespace", RELEASE_NS)
    cluster.kubectl("label", "namespace", RELEASE_NS, "pod-security.kubernetes.io/enforce=restricted")
    t0 = time.monotonic()
    helm(cluster, *helm_install_args(images))
    seconds = time.monotonic() - t0
    print(f"rig: helm install took {seconds:.0f}s", file=sys.stderr)
    return seconds


# What fits this 2-core node: two trials side by side (a Ray head of half a CPU each, plus its
# submitter pod), the rest of the manifest as written.
NODE_SIZED_RESOURCES = {"cpu": 0.5, "memory": "2Gi"}


def fit_to_node(manifest: dict[str, Any], parallel: int = 2) -> dict[str, Any]:
    """The manifest with every trial sized for the rig's node and `parallel` trials at a time.
    Storage is dropped: checkpoints stay in the pods (S3 on the rig is a test of its own)."""
    m = copy.deepcopy(manifest)
    m["spec"]["template"]["resources"] = dict(NODE_SIZED_RESOURCES)
    m["spec"]["maxParallelTrials"] = parallel
    m["spec"].pop("storage", None)
    return m
