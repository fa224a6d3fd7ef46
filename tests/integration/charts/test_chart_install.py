"""Real `helm install` / `helm upgrade` against the session's real apiserver (with prometheus-operator's
CRDs and ours installed): two releases side by side, values refused by the schema before anything is
applied, the monitoring objects created where their CRDs exist, NOTES that say what to do next, and
the CRD upgrade check failing loudly over an installed CRD older than the chart's. The operator's pods
do not run here (no kubelet); the cluster tier runs `helm test` where they do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import yaml

from rig.controlplane import ControlPlane

from .conftest import CHART, Helm

pytestmark = pytest.mark.integration

DIGEST = "campaign-operator.io/schema-digest"


@pytest.fixture
def releases(cluster_helm: Helm, control_plane: ControlPlane) -> Iterator[list[tuple[str, str]]]:
    """(release, namespace) pairs the test installs; uninstalled and their namespaces deleted after."""
    made: list[tuple[str, str]] = []
    yield made
    for release, ns in made:
        cluster_helm.run("uninstall", release, "-n", ns, "--wait", "--timeout", "60s")
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def fresh(releases: list[tuple[str, str]], prefix: str) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:6]
    pair = (f"{prefix}-{suffix}", f"t-{prefix}-{suffix}")
    releases.append(pair)
    return pair


def install(helm: Helm, release: str, ns: str, *values: str) -> str:
    args = ["install", release, str(CHART), "-n", ns, "--create-namespace"]
    for v in values:
        args += ["--set", v]
    return helm.ok(*args)


def names(cp: ControlPlane, kind: str, release: str, ns: str | None = None) -> set[str]:
    scope = ["-n", ns] if ns else []
    out = cp.kubectl("get", kind, *scope, "-l", f"app.kubernetes.io/instance={release}", "-o", "json").stdout
    return {item["metadata"]["name"] for item in json.loads(out)["items"]}


def test_two_releases_install_side_by_side(cluster_helm: Helm, control_plane: ControlPlane, releases):
    (a, ns_a), (b, ns_b) = fresh(releases, "alpha"), fresh(releases, "beta")
    install(cluster_helm, a, ns_a)
    install(cluster_helm, b, ns_b, f"watchNamespaces={{{ns_b}}}")
    for release, ns in ((a, ns_a), (b, ns_b)):
        full = f"{release}-campaign-operator"
        assert names(control_plane, "deployment", release, ns) == {full}
        assert names(control_plane, "serviceaccount", release, ns) == {full}
        assert names(control_plane, "service", release, ns) == {full}
        # prometheus-operator's CRDs are served here: auto renders the ServiceMonitor and rule.
        assert names(control_plane, "servicemonitors.monitoring.coreos.com", release, ns) == {full}
        assert names(control_plane, "prometheusrules.monitoring.coreos.com", release, ns) == {full}
        assert names(control_plane, "configmap", release, ns) == {f"{full}-dashboard"}
        status = json.loads(cluster_helm.ok("status", release, "-n", ns, "-o", "json"))
        assert status["info"]["status"] == "deployed"
    cluster_roles = names(control_plane, "clusterroles", a) | names(control_plane, "clusterroles", b)
    assert {
        f"{a}-campaign-operator-trainer",
        f"{b}-campaign-operator-trainer",
        f"{a}-campaign-operator",
    } <= cluster_roles
    assert f"{b}-campaign-operator" not in cluster_roles  # b watches one namespace: a Role there
    assert names(control_plane, "roles", b, ns_b) == {
        f"{b}-campaign-operator",
        f"{b}-campaign-operator-leader",
    }
    # Upgrading one leaves the other alone.
    cluster_helm.ok("upgrade", a, str(CHART), "-n", ns_a, "--reuse-values", "--set", "replicas=2")
    assert (
        control_plane.kubectl(
            "get", "deploy", f"{b}-campaign-operator", "-n", ns_b, "-o", "jsonpath={.spec.replicas}"
        ).stdout
        == "1"
    )


def test_install_refuses_bad_values_with_the_schema_message(
    cluster_helm: Helm, control_plane: ControlPlane, releases
):
    release, ns = fresh(releases, "bad")
    for value, message in (
        ("metrics.port=notaport", "at '/metrics/port': got string, want integer"),
        (
            "metrics.serviceMonitr.enabled=true",
            "at '/metrics': additional properties 'serviceMonitr' not allowed",
        ),
    ):
        r = cluster_helm.run("install", release, str(CHART), "-n", ns, "--create-namespace", "--set", value)
        assert r.returncode != 0 and "values don't meet the specifications of the schema" in r.stderr, (
            r.stderr
        )
        assert message in r.stderr, r.stderr
    assert cluster_helm.run("status", release, "-n", ns).returncode != 0  # nothing was installed
    assert not names(control_plane, "clusterroles", release)


def test_notes_say_what_was_installed_and_how_to_run_an_example(cluster_helm: Helm, releases):
    release, ns = fresh(releases, "notes")
    full = f"{release}-campaign-operator"
    out = install(cluster_helm, release, ns)
    notes = out[out.index("NOTES:") :]
    assert f"Deployment {full}" in notes and f"ClusterRole {full}-trainer" in notes
    assert f"ServiceMonitor {full}" in notes and f"PrometheusRule {full}" in notes
    assert "Namespaces watched: all (cluster-wide)" in notes
    assert "kubectl create namespace demo" in notes and "kubectl apply -n demo -f examples/demo.yaml" in notes
    assert "kubectl campaign watch demo -n demo" in notes and "kubectl get tc -n demo" in notes
    assert f"helm test {release} -n {ns}" in notes
    assert "kubectl apply --server-side --force-conflicts -f charts/campaign-operator/crds/" in notes
    # Watching namespaces: the example goes into the first of them (which exists: its Role is there).
    out = cluster_helm.ok("upgrade", release, str(CHART), "-n", ns, "--set", f"watchNamespaces={{{ns}}}")
    notes = out[out.index("NOTES:") :]
    assert f"Namespaces watched: {ns}" in notes and "kubectl create namespace" not in notes
    assert (
        f"kubectl apply -n {ns} -f examples/demo.yaml" in notes
        and f"kubectl campaign watch demo -n {ns}" in notes
    )


def crd_digest(cp: ControlPlane, name: str) -> str:
    crd = json.loads(cp.kubectl("get", "crd", name, "-o", "json").stdout)
    return str(crd["metadata"].get("annotations", {}).get(DIGEST, ""))


def test_an_upgrade_over_an_older_crd_fails_naming_it_and_the_fix(
    cluster_helm: Helm, control_plane: ControlPlane, releases
):
    release, ns = fresh(releases, "crds")
    install(cluster_helm, release, ns)
    crd = "trainingcampaigns.training.campaign-operator.io"
    ours = yaml.safe_load((CHART / "crds" / f"{crd}.yaml").read_text())["metadata"]["annotations"][DIGEST]
    assert crd_digest(control_plane, crd) == ours and ours.startswith("sha256:")
    try:
        # What an install of an older chart left: another digest, or none at all.
        for older in (
            ["annotate", "crd", crd, f"{DIGEST}=sha256:older", "--overwrite"],
            ["annotate", "crd", crd, f"{DIGEST}-"],
        ):
            control_plane.kubectl(*older)
            r = cluster_helm.run("upgrade", release, str(CHART), "-n", ns)
            assert r.returncode != 0, r.stdout
            assert f"The installed CRD {crd} is not the one this chart ships" in r.stderr, r.stderr
            assert (
                "kubectl apply --server-side --force-conflicts -f charts/campaign-operator/crds/" in r.stderr
            )
            # A client-side dry run and `helm template` see no cluster: nothing to compare, no failure.
            cluster_helm.ok("upgrade", release, str(CHART), "-n", ns, "--dry-run=client")
            cluster_helm.ok("template", release, str(CHART), "-n", ns)
        assert json.loads(cluster_helm.ok("history", release, "-n", ns, "-o", "json"))[-1]["revision"] == 1
    finally:
        # The fix the message gives, as a user runs it.
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    assert crd_digest(control_plane, crd) == ours
    cluster_helm.ok("upgrade", release, str(CHART), "-n", ns)
    assert json.loads(cluster_helm.ok("history", release, "-n", ns, "-o", "json"))[-1]["revision"] == 2
