"""The kind workflow, run as far as it runs without Docker: hack/kind.yaml through kind's own config
code (loaded strictly, validated, each node's kubeadm configuration rendered and patched, as
`kind create cluster` does before it starts a container), `hack/kind.sh up` and `demo` as the
commands they would run (DRY_RUN), held to the rig's install (rig.product.helm_install_args), and
the demo manifest held to the rig's demo test campaign."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator.cli.loading import judge_file
from rig.cluster import GPU_CAPACITY, GPU_POOL, GPU_POOL_LABEL, GPU_TAINT_KEY
from rig.controlplane import find_binaries
from rig.product import (
    CHART,
    LOCAL_VALUES,
    RELEASE,
    RELEASE_NS,
    Images,
    fit_to_node,
    helm_binary,
    helm_install_args,
)
from rig.versions import kuberay_version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KIND_SH = REPO / "hack" / "kind.sh"
CLUSTER = "campaign-operator"
RIG_GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}
# What DRY_RUN names the images (their tags come from a build that does not happen).
DRY_IMAGES = Images(
    operator="localhost/campaign-operator:dry-run", trainer="localhost/campaign-trainer:dry-run"
)


def kind_sh(*args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    kubectl = find_binaries().kubectl  # `manifest` needs only kubectl: the rig's
    assert kubectl is not None
    path = f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"
    r = subprocess.run(
        ["bash", str(KIND_SH), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, **env},
        timeout=300,
        check=False,
    )
    if check:
        assert r.returncode == 0, f"hack/kind.sh {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
    return r


def dry_run(*args: str, **env: str) -> list[list[str]]:
    """The commands `hack/kind.sh ARGS` would run, each as its argv."""
    out = kind_sh(*args, DRY_RUN="1", **env).stdout
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def rig_kubernetes_version() -> str:
    m = re.search(
        r'^K8S_VERSION="\$\{K8S_VERSION:-([0-9.]+)\}"',
        (REPO / "hack" / "build-control-plane.sh").read_text(),
        re.M,
    )
    assert m is not None
    return f"v{m.group(1)}"


def check_config(*args: str) -> list[dict[str, Any]]:
    return list(json.loads(kind_sh("check-config", *args).stdout))


def join_registration(node: dict[str, Any]) -> dict[str, Any]:
    (join,) = [d for d in yaml.safe_load_all(node["kubeadm"]) if d and d["kind"] == "JoinConfiguration"]
    return dict(join["nodeRegistration"])


def kubelet_node_labels(registration: dict[str, Any]) -> dict[str, str]:
    """node-labels of kubeletExtraArgs: a map up to kubeadm v1beta3, a list of name/value from v1beta4."""
    extra = registration["kubeletExtraArgs"]
    args = extra if isinstance(extra, dict) else {a["name"]: a["value"] for a in extra}
    return dict(pair.split("=", 1) for pair in args.get("node-labels", "").split(",") if pair)


def test_kind_sh_parses():
    subprocess.run(["bash", "-n", str(KIND_SH)], check=True)


@pytest.mark.parametrize("version", ["kind's node image", "the rig's Kubernetes"])
def test_kind_registers_the_gpu_pool_with_the_rigs_label_and_taint(version: str):
    nodes = check_config() if version == "kind's node image" else check_config(rig_kubernetes_version())
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    workers = {n["name"]: join_registration(n) for n in nodes if n["role"] == "worker"}
    gpu = [name for name, reg in workers.items() if kubelet_node_labels(reg).get(GPU_POOL_LABEL) == GPU_POOL]
    assert gpu == [f"{CLUSTER}-worker2"], workers
    assert workers[gpu[0]]["taints"] == [RIG_GPU_TAINT]
    (cpu,) = set(workers) - set(gpu)
    assert GPU_POOL_LABEL not in kubelet_node_labels(workers[cpu]) and not workers[cpu].get("taints")


def test_kinds_config_code_rejects_a_misspelled_field(tmp_path: Path):
    bad = tmp_path / "kind.yaml"
    bad.write_text((REPO / "hack" / "kind.yaml").read_text().replace("    labels:", "    lables:"))
    r = kind_sh("check-config", check=False, KIND_CONFIG=str(bad))
    assert r.returncode != 0 and "field lables not found" in r.stderr, r.stderr


def relative(args: list[str]) -> list[str]:
    return [str(Path(a).relative_to(REPO)) if a.startswith(str(REPO)) else a for a in args]


@pytest.mark.parametrize("mode", ["docker", "archives"])
def test_up_runs_the_rigs_steps_and_installs_our_chart_as_the_rig_does(mode: str):
    cmds = dry_run("up", KIND_IMAGES=mode)
    create = next(c for c in cmds if c[:3] == ["kind", "create", "cluster"])
    assert create[3:7] == ["--config", "hack/kind.yaml", "--name", CLUSTER]
    # Fake GPUs on the node kind's own code labels as the GPU pool (above), as many as the rig's.
    (patch,) = [c for c in cmds if "patch" in c and "node" in c]
    assert patch[patch.index("node") + 1] == f"{CLUSTER}-worker2"
    ops = json.loads(patch[patch.index("-p") + 1])
    assert ops == [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(GPU_CAPACITY)}]
    kuberay = next(c for c in cmds if c[0] == "helm" and "kuberay-operator" in c)
    assert kuberay[kuberay.index("--version") + 1] == kuberay_version().removeprefix("v")
    loads = [c for c in cmds if c[:2] == ["kind", "load"]]
    if mode == "docker":
        assert [c[-1] for c in loads] == [DRY_IMAGES.operator, DRY_IMAGES.trainer]
    else:
        assert ["hack/build-images.sh", "operator", "trainer"] in cmds
        assert [c[2] for c in loads] == ["image-archive", "image-archive"]
    # The release's namespace under restricted Pod Security, then the rig's very install.
    assert [
        "kubectl", "--context", f"kind-{CLUSTER}", "label", "namespace", RELEASE_NS, "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    ] in cmds  # fmt: skip
    chart = next(c for c in cmds if c[0] == "helm" and RELEASE in c)
    verb = chart.index("upgrade")
    assert chart[: verb + 2] == ["helm", "--kube-context", f"kind-{CLUSTER}", "upgrade", "--install"]
    assert chart[verb + 2 :] == relative(helm_install_args(DRY_IMAGES)[1:])
    assert cmds.index(chart) == len(cmds) - 1, "the chart goes in last, once its images are loaded"


def test_the_chart_renders_the_rigs_install_with_the_shared_values():
    args = helm_install_args(DRY_IMAGES)
    r = subprocess.run(
        [str(helm_binary()), "template", *args[1 : args.index("--wait")]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    (deploy,) = [d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["imagePullPolicy"]) == (DRY_IMAGES.operator, "Never")
    values = yaml.safe_load(LOCAL_VALUES.read_text())
    for arg in (
        f"--trainer-image={DRY_IMAGES.trainer}",
        "--trainer-image-pull-policy=Never",
        f"--resync-seconds={values['resyncSeconds']}",
    ):
        assert arg in container["args"], container["args"]
    assert str(CHART) in args


def test_the_demo_is_the_campaign_the_rigs_demo_test_proves(tmp_path: Path):
    manifest = yaml.safe_load(kind_sh("manifest").stdout)
    # tests/cluster/test_campaigns_in_pods.py::test_demo_campaign_succeeds_with_every_trial_trained_in_a_pod
    rig = fit_to_node(yaml.safe_load((REPO / "examples" / "demo.yaml").read_text()))
    rig["spec"]["template"]["epochs"] = 2
    assert manifest == rig
    # The counts kind.sh demo checks are those of this very manifest's plan.
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(manifest))
    (judged,) = judge_file(str(path))
    assert not judged.problems and judged.preview is not None, judged.problems
    planned = {p.phase.name: (len(p.trials), p.skipped) for p in judged.preview.phases}
    sh = (REPO / "hack" / "kind.sh").read_text()
    m = re.search(r'^DEMO_COUNTS="([^"]+)"', sh, re.M)
    assert m is not None
    for item in m.group(1).split():
        name, counts = item.split(":")
        total, _, _, skipped = counts.split("/")
        assert int(total) == planned[name][0], (name, planned)
        assert skipped == "-" or int(skipped) == planned[name][1], (name, planned)


def test_demo_applies_it_to_a_restricted_namespace_afresh():
    cmds = dry_run("demo")
    context = ["kubectl", "--context", f"kind-{CLUSTER}"]
    assert cmds[1] == [
        *context,
        "label",
        "namespace",
        "demo",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    ]
    assert cmds[2][:6] == [*context, "delete", "trainingcampaign", "demo"]
    assert cmds[3][:6] == [*context, "apply", "-n", "demo"]
