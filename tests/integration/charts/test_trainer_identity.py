"""The trainers' identity on a real apiserver with RBAC, as the chart sets it up: the real operator,
running as the chart's ServiceAccount with exactly the chart's RBAC, creates the trainer's
ServiceAccount and binds it to the chart's trainer ClusterRole in each namespace it runs a campaign in,
cluster-wide and with watchNamespaces, the release's own namespace included. The trainer may then do
what it needs there and nothing else; the operator may bind that role and no other."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from rig.controlplane import ControlPlane, free_port
from tests.integration.k8s.opkit import Kube, OperatorProcess, condition, wait_for

from .conftest import apply_object, render

pytestmark = pytest.mark.integration

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
TRAINER_ROLE = "co-campaign-operator-trainer"  # the chart's <fullname>-trainer for release `co`
TRIALS = "campaigntrials.training.campaign-operator.io"
ROLEBINDINGS = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
# Flags the tests set themselves: loopback ports, a short resync, the token's kubeconfig.
OWN_FLAGS = ("--metrics-port", "--metrics-addr", "--liveness", "--resync-seconds", "--kubeconfig")


@pytest.fixture
def more_namespaces(control_plane: ControlPlane) -> Iterator[list[str]]:
    made: list[str] = []
    for _ in range(2):
        name = f"t-{uuid.uuid4().hex[:10]}"
        control_plane.kubectl("create", "namespace", name)
        made.append(name)
    yield made
    for name in made:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def token_kubeconfig(cp: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a TokenRequest token), as in its pod."""
    token = cp.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "rig", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_path)}}
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": account}}],
        "current-context": "rig",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def chart_operator(
    cp: ControlPlane, docs: list[dict[str, Any]], kubeconfig: Path, log: Path
) -> OperatorProcess:
    """`campaign-operator` with the chart Deployment's own arguments, as the chart's ServiceAccount."""
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    chart_args = [a for a in container["args"] if not a.startswith(OWN_FLAGS)]
    metrics, liveness = free_port(), free_port()
    args = [sys.executable, "-m", "campaign_operator.k8s.main", *chart_args]
    args += ["--kubeconfig", str(kubeconfig), "--metrics-port", str(metrics), "--metrics-addr", "127.0.0.1"]
    args += ["--liveness", f"http://127.0.0.1:{liveness}/healthz", "--resync-seconds", "5"]
    env = cp.env(kubeconfig)
    return OperatorProcess(
        args=args, env=env, log_path=log, metrics_port=metrics, liveness_port=liveness
    ).start()


def one_trial_campaign(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"template": {"task": "regression", "epochs": 1}, "phases": [{"name": "p"}]},
    }


def can(cp: ControlPlane, who: str, namespace: str, verb: str, resource: str, subresource: str = "") -> bool:
    args = ["auth", "can-i", verb, resource, "-n", namespace, f"--as={who}"]
    if subresource:
        args.append(f"--subresource={subresource}")
    return cp.kubectl(*args, check=False).stdout.strip() == "yes"


def binding(name: str, role: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "someone", "namespace": namespace}],
    }


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_trainers_get_exactly_their_rights_in_each_namespace_with_campaigns(
    control_plane: ControlPlane,
    helm: Any,
    namespace: str,
    more_namespaces: list[str],
    mode: str,
    tmp_path: Path,
) -> None:
    cp, kube = control_plane, Kube(control_plane)
    release, watched, elsewhere = namespace, *more_namespaces
    values = [] if mode == "cluster-wide" else [f"watchNamespaces={{{release},{watched}}}"]
    docs = render(helm, release, *values)
    for doc in docs:
        if doc["kind"] in RBAC_KINDS:
            r = apply_object(cp, doc, release)
            assert r.status_code in (200, 201), f"{doc['kind']}/{doc['metadata']['name']}: {r.text[:500]}"
    operator_sa = f"system:serviceaccount:{release}:co-campaign-operator"
    op = chart_operator(
        cp,
        docs,
        token_kubeconfig(cp, release, "co-campaign-operator", tmp_path / "op.kubeconfig"),
        tmp_path / "op.log",
    )
    try:
        for ns in (release, watched):
            kube.create_campaign(ns, one_trial_campaign("who"))
        for ns in (release, watched):
            wait_for(lambda ns=ns: kube.rayjobs(ns, "who"), 60, f"a RayJob in {ns}\n{op.log_tail()}")
        for ns in (release, watched):
            wait_for(lambda ns=ns: trial_running(kube, ns), 30, f"the trial in {ns} Running")
        time.sleep(6)  # a resync (5 s) polls the running trials: it lists their pods
        for ns in (release, watched):
            errors = condition(kube.campaign(ns, "who"), "ReconcileError")
            assert errors is not None and errors["status"] == "False", (errors, op.log_tail())
    finally:
        op.stop()

    for ns in (release, watched):
        assert kube.ok("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/campaign-trainer")
        made = kube.ok("GET", f"{ROLEBINDINGS.format(ns=ns)}/{TRAINER_ROLE}")
        assert made["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": TRAINER_ROLE,
        }
        trainer = f"system:serviceaccount:{ns}:campaign-trainer"
        assert can(cp, trainer, ns, "patch", TRIALS, "status")
        assert can(cp, trainer, ns, "get", TRIALS, "status")
        assert can(cp, trainer, ns, "get", TRIALS)
        for verb, resource in [
            ("delete", TRIALS),
            ("patch", TRIALS),
            ("list", TRIALS),
            ("create", TRIALS),
            ("get", "secrets"),
            ("list", "secrets"),
            ("create", "pods"),
            ("get", "trainingcampaigns.training.campaign-operator.io"),
            ("create", "rolebindings.rbac.authorization.k8s.io"),
        ]:
            assert not can(cp, trainer, ns, verb, resource), f"the trainer in {ns} may {verb} {resource}"
        # Its rights stop at its namespace.
        assert not can(cp, trainer, elsewhere, "patch", TRIALS, "status")

    # The operator may bind the trainer role, and no other, even where it is allowed to bind.
    assert can(cp, operator_sa, watched, "bind", f"clusterroles.rbac.authorization.k8s.io/{TRAINER_ROLE}")
    for role in ("edit", "admin", "cluster-admin", "view"):
        assert not can(cp, operator_sa, watched, "bind", f"clusterroles.rbac.authorization.k8s.io/{role}"), (
            role
        )
    as_operator = token_session(cp, tmp_path / "op.kubeconfig")
    url = cp.server + ROLEBINDINGS.format(ns=watched)
    # Kubernetes lets anyone grant rights they hold themselves; `bind` is what would let the operator
    # grant more, and it has it for the trainer role only. (The rig's `edit`/`admin` are empty:
    # no aggregation controller runs, so they would prove nothing.)
    wider = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"wider-{release}"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
    }
    assert apply_object(cp, wider, release).status_code in (200, 201)
    for role in ("cluster-admin", f"wider-{release}"):
        refused = as_operator.post(url, json=binding(f"escalate-{role}", role, watched), timeout=30)
        assert refused.status_code == 403, (role, refused.text[:500])
    allowed = as_operator.post(url, json=binding("another", TRAINER_ROLE, watched), timeout=30)
    assert allowed.status_code == 201, allowed.text[:500]
    if mode == "namespaced":  # no rights outside the watched namespaces
        outside = as_operator.post(
            cp.server + ROLEBINDINGS.format(ns=elsewhere),
            json=binding("x", TRAINER_ROLE, elsewhere),
            timeout=30,
        )
        assert outside.status_code == 403, outside.text[:500]


def trial_running(kube: Kube, namespace: str) -> bool:
    return all(t.get("status", {}).get("state") == "Running" for t in kube.trials(namespace, "who"))


def token_session(cp: ControlPlane, kubeconfig: Path) -> requests.Session:
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    s = requests.Session()
    s.trust_env = False
    s.verify = str(cp.ca_path)
    s.headers["Authorization"] = f"Bearer {token}"
    return s
