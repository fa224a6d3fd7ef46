"""The kind workflow (hack/kind.yaml, hack/kind.sh, `make kind-*`) cannot run here (no Docker), so it
is held to the local cluster rig's own constants, which do run here: the GPU pool's label and taint,
the release and namespace, the values file, the image names, the monitoring CRDs. Read from the
files only; tests/integration/test_kind_workflow.py runs the scripts and kind's own config code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rig.cluster import GPU_CAPACITY, GPU_POOL, GPU_POOL_LABEL, GPU_TAINT_KEY
from rig.product import CHART, LOCAL_VALUES, RELEASE, RELEASE_NS, SHARED_CRDS, Images, chart_values

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
KIND_SH = REPO / "hack" / "kind.sh"
KIND_YAML = REPO / "hack" / "kind.yaml"
# The taint the rig's GPU tests put on its node (LocalCluster.taint_gpu_node) and tolerate.
RIG_GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}


def shell_assignments(path: Path) -> dict[str, str | list[str]]:
    """Top-level NAME=value lines of a bash script: quotes and trailing comments dropped, a
    "${NAME:-default}" read as its default, an array as its words."""
    out: dict[str, str | list[str]] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if not m:
            continue
        name, value = m.group(1), re.sub(r"\s+#.*$", "", m.group(2)).strip()
        if value.startswith("(") and value.endswith(")"):
            out[name] = value[1:-1].split()
            continue
        value = value.strip('"')
        if d := re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value):
            value = d.group(1)
        out[name] = value
    return out


def kind_nodes() -> list[dict[str, Any]]:
    config = yaml.safe_load(KIND_YAML.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    return list(config["nodes"])


def join_taints(node: dict[str, Any]) -> list[dict[str, str]]:
    """The taints a node's kubeadmConfigPatches register it with (JoinConfiguration)."""
    taints: list[dict[str, str]] = []
    for patch in node.get("kubeadmConfigPatches", []):
        doc = yaml.safe_load(patch)
        if doc.get("kind") == "JoinConfiguration":
            taints += doc.get("nodeRegistration", {}).get("taints", [])
    return taints


def test_the_kind_cluster_has_a_control_plane_a_cpu_worker_and_the_rigs_gpu_pool():
    nodes = kind_nodes()
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    control_plane, cpu, gpu = nodes
    assert gpu["labels"] == {GPU_POOL_LABEL: GPU_POOL}
    assert join_taints(gpu) == [RIG_GPU_TAINT]
    # The CPU worker is in no pool and untainted: phases without a nodePool run there.
    assert GPU_POOL_LABEL not in cpu.get("labels", {}) and join_taints(cpu) == []
    assert "labels" not in control_plane and join_taints(control_plane) == []


def test_kind_sh_installs_as_the_rig_does():
    v = shell_assignments(KIND_SH)
    assert (v["RELEASE"], v["RELEASE_NS"]) == (RELEASE, RELEASE_NS)
    assert REPO / str(v["CHART"]) == CHART
    assert REPO / str(v["LOCAL_VALUES"]) == LOCAL_VALUES
    assert REPO / str(v["KIND_CONFIG"]) == KIND_YAML
    assert (v["GPU_POOL_LABEL"], v["GPU_POOL"], v["GPU_CAPACITY"]) == (
        GPU_POOL_LABEL,
        GPU_POOL,
        str(GPU_CAPACITY),
    )


def test_kind_sh_names_the_images_as_hack_build_images_sh_does():
    prefix = shell_assignments(KIND_SH)["IMAGE_PREFIX"]
    refs = re.findall(r'REF="([^"$]+)\$name:\$tag"', (REPO / "hack" / "build-images.sh").read_text())
    assert refs == [prefix], refs


def test_kind_installs_the_rigs_prometheus_operator_crds_at_their_version():
    rig = sorted(SHARED_CRDS.glob("monitoring.coreos.com_*.yaml"))
    assert rig, f"no prometheus-operator CRDs in {SHARED_CRDS}: ../shared must sit beside the repo"
    v = shell_assignments(KIND_SH)
    assert sorted(f"monitoring.coreos.com_{c}.yaml" for c in v["PROMETHEUS_OPERATOR_CRDS"]) == [
        p.name for p in rig
    ]
    for path in rig:
        annotations = yaml.safe_load(path.read_text())["metadata"]["annotations"]
        assert f"v{annotations['operator.prometheus.io/version']}" == v["PROMETHEUS_OPERATOR_VERSION"], (
            path.name
        )


def test_the_shared_values_file_passes_the_charts_schema_and_never_pulls():
    values = yaml.safe_load(LOCAL_VALUES.read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    images = Images(
        operator="localhost/campaign-operator:0123456789ab", trainer="localhost/campaign-trainer:ba9876543210"
    )
    merged = merge(defaults, values)
    for item in chart_values(images):
        key, _, value = item.partition("=")
        merged = merge(merged, nested(key, value))
    jsonschema.Draft7Validator(schema).validate(merged)  # the draft the chart's schema names
    assert values["image"]["pullPolicy"] == "Never" and values["trainer"]["image"]["pullPolicy"] == "Never"


def test_the_command_line_sets_only_the_images_refs():
    """Everything else comes from the values file, so the rig and kind cannot set it differently."""
    images = Images(operator="localhost/campaign-operator:t", trainer="localhost/campaign-trainer:t")
    keys = {item.partition("=")[0] for item in chart_values(images)}
    assert keys == {"image.repository", "image.tag", "trainer.image.repository", "trainer.image.tag"}
    values = yaml.safe_load(LOCAL_VALUES.read_text())
    assert not any(leaf(values, k) for k in keys), "an image ref in the values file would be overridden"


def test_make_has_the_kind_targets_and_they_are_phony():
    text = (REPO / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert phony is not None
    for target in ("kind-up", "kind-demo", "kind-down"):
        assert target in phony.group(1).split()
        recipe = re.search(rf"^{target}:.*\n\t(.+)$", text, re.M)
        assert recipe is not None and recipe.group(1) == f"./hack/kind.sh {target.removeprefix('kind-')}"


def merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
    return over


def nested(dotted: str, value: str) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return dict(out)


def leaf(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
