"""`helm test` of our chart's release on the local cluster, where its pods run: the test pod (the
operator's image, under the namespace's restricted Pod Security) reaches the operator through its
Service (/healthz, /metrics) and reads both CRDs as its own least-privilege ServiceAccount. It passes,
twice (the hooks replace their last run), and leaves no test RBAC behind."""

from __future__ import annotations

import json
import re

import pytest

from rig.cluster import LocalCluster
from rig.product import RELEASE_NS, helm

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(2400)]


def test_helm_test_passes_on_the_installed_release(cluster: LocalCluster, operator_release: str) -> None:
    fullname = f"{operator_release}-campaign-operator"
    test_pod = f"{fullname}-test"
    crds = [
        item["metadata"]["name"]
        for item in json.loads(
            cluster.kubectl(
                "get", "crd", "-l", "app.kubernetes.io/part-of=campaign-operator", "-o", "json"
            ).stdout
        )["items"]
    ]
    assert len(crds) == 2, crds
    for run in (1, 2):  # a rerun replaces the last run's pod (before-hook-creation)
        out = helm(cluster, "test", operator_release, "-n", RELEASE_NS, "--logs", "--timeout", "5m")
        suite = re.search(rf"TEST SUITE:\s+{re.escape(test_pod)}\n.*?Phase:\s+(\w+)", out, re.S)
        assert suite and suite.group(1) == "Succeeded", f"run {run}:\n{out}"
        assert f"ok: /healthz on {fullname}.{RELEASE_NS}.svc:8081" in out, out
        assert re.search(rf"ok: /metrics on {re.escape(fullname)}\.{RELEASE_NS}\.svc:\d+", out), out
        for crd in crds:
            assert f"ok: CRD {crd} Established" in out, out
        assert "FAILED" not in out, out
    pod = json.loads(cluster.kubectl("get", "pod", test_pod, "-n", RELEASE_NS, "-o", "json").stdout)
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    # The test's RBAC goes once the test has passed (hook-succeeded); the pod stays for its logs.
    for kind, ns in (("clusterrole", None), ("clusterrolebinding", None), ("serviceaccount", RELEASE_NS)):
        scope = ["-n", ns] if ns else []
        r = cluster.kubectl("get", kind, test_pod, *scope, check=False)
        assert r.returncode != 0 and "NotFound" in r.stderr, (kind, r.stdout, r.stderr)
