"""A real single-node Kubernetes cluster on this host: the Go-built control plane (+ scheduler and
all controllers), a kubelet and kube-proxy on containerd/runc/CNI, CoreDNS, the real KubeRay
operator and a real Kueue (rig.kueue). Pods run for real; the node advertises fake
`nvidia.com/gpu` capacity and carries the GPU pool's label, so GPU node pools schedule for real.

    with LocalCluster() as c:            # or: make cluster-up / make cluster-down
        c.import_images([archive])
        c.kubectl("get", "nodes")

Limits of one node (docs/local-cluster.md): one GPU pool (the node is that pool; CPU phases run on
it too, since a hard taint would keep them off it — tests add the taint when they need it), GPU
capacity is advertised but no device exists, and everything shares two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rig.controlplane import REPO_ROOT, ControlPlane, ControlPlaneError, _local_session
from rig.kueue import start_kueue
from rig.node import (
    CLUSTER_DNS_IP,
    CNI_NETWORK,
    NODE_IP,
    NODE_LINK,
    NODE_NAME,
    NodePaths,
    cni_config,
    containerd_config,
    corefile,
    delete_cni_netns,
    delete_links,
    iptables_cleanup,
    kill_matching,
    kube_proxy_config,
    kubelet_config,
    restore_sysctls,
    run,
    save_sysctls,
    unmount_under,
    write_sysctl,
)
from rig.versions import kuberay_crds, kuberay_version, versions

CACHE = Path(os.environ.get("CAMPAIGN_CACHE", Path.home() / ".cache" / "campaign-operator"))
RIG_ROOT = CACHE / "rig"
GPU_POOL_LABEL = "campaign-operator.io/pool"
GPU_POOL = "gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_CAPACITY = 4
CONTROLLERS = ("*",)  # a real cluster's set: deployments, jobs (KubeRay's submitter), endpoints, GC...
SERVE_READY_FILE = RIG_ROOT / "ready.json"


def go_tool(name: str, package: str, version: str) -> Path:
    """The cached binary, built once by hack/build-go-tool.sh (its progress goes to our stderr)."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "build-go-tool.sh"), name, package, version],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise ControlPlaneError(f"building {name} {version} failed (exit {out.returncode}); see stderr above")
    return Path(out.stdout.strip().splitlines()[-1])


def build_images(*names: str) -> dict[str, Path]:
    """hack/build-images.sh NAME... (cached by content) -> {ref: OCI archive}."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "build-images.sh"), *names],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ControlPlaneError(
            f"hack/build-images.sh {' '.join(names)} failed (exit {out.returncode}); see stderr"
        )
    refs = {}
    for line in out.stdout.splitlines():
        _, ref, archive = line.split()
        refs[ref] = Path(archive)
    return refs


def http_ok(url: str) -> Callable[[], tuple[bool, str]]:
    """A readiness probe of a host process's plain-HTTP health endpoint on loopback."""

    def probe() -> tuple[bool, str]:
        with _local_session() as s:
            r = s.get(url, timeout=2)
        return r.status_code == 200, f"{r.status_code} {r.text[-300:]}"

    return probe


def node_paths() -> NodePaths:
    return NodePaths(state=RIG_ROOT / "state", containerd_root=RIG_ROOT / "containerd")


def teardown_host(paths: NodePaths) -> None:
    """Leave the host as it was: processes, mounts, netns, links, iptables chains, sysctls, CNI state.
    Idempotent; safe when nothing runs."""
    kill_matching([str(paths.state), str(paths.containerd_root)])
    unmount_under(paths.kubelet_root, paths.containerd_state, paths.containerd_root)
    delete_cni_netns()
    delete_links()
    iptables_cleanup()
    restore_sysctls(paths)
    remove_host_leftovers()
    run(["rm", "-rf", str(paths.state)], check=False)


def remove_host_leftovers() -> None:
    """What the kubelet and libcni write outside our dirs whatever they are told: the device-plugin
    socket dir and CNI's result cache. Directories go only when nothing else is left in them."""
    plugins = Path("/var/lib/kubelet/device-plugins")
    (plugins / "kubelet.sock").unlink(missing_ok=True)
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for f in results.glob(f"*-{'[0-9a-f]' * 8}*"):
            if f.name.startswith((CNI_NETWORK + "-", "cni-loopback-")):
                f.unlink(missing_ok=True)
    for d in (plugins, plugins.parent, results, results.parent):
        with contextlib.suppress(OSError):
            d.rmdir()


class LocalCluster(ControlPlane):
    """ControlPlane + node + CoreDNS + KubeRay + Kueue; stop() tears all of it down."""

    def __init__(self, *, kuberay: bool = True, start_timeout: float = 180.0) -> None:
        self.paths = node_paths()
        super().__init__(
            controllers=CONTROLLERS, node_ip=NODE_IP, work_root=self.paths.state, start_timeout=start_timeout
        )
        self.want_kuberay = kuberay
        self._lock_file: IO[str] | None = None
        self.kuberay_version = kuberay_version()

    # ---- lifecycle

    def start(self, attempts: int = 3) -> LocalCluster:
        t0 = time.monotonic()
        self._lock()
        teardown_host(self.paths)
        tools = self._tools()  # builds (cold) before anything starts
        self._prepare_host()
        try:
            super().start(attempts)
            self.start_scheduler()
            self._start_containerd()
            self._start_kubelet()
            self._start_kube_proxy()
            self._start_coredns(tools["coredns"])
            self._wait_node_ready()
            self._make_gpu_node()
            if self.want_kuberay:
                self._start_kuberay(tools["ray-operator"])
                # Kueue with its admission webhooks registered, as a real install: queue-labelled
                # RayJobs are created suspended and admitted within their ClusterQueue's quota.
                start_kueue(self, webhooks=True)
        except BaseException:
            print(self._failure_report(), file=sys.stderr)
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, grace: float = 10.0) -> None:
        super().stop(grace)
        teardown_host(self.paths)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _lock(self) -> None:
        """One rig per host: its link, bridge, IPs and paths are fixed."""
        RIG_ROOT.mkdir(parents=True, exist_ok=True)
        self._lock_file = (RIG_ROOT / ".lock").open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise ControlPlaneError(
                "another local cluster rig runs on this host"
                " (`make cluster-down` stops the one `make cluster-up` started)"
            ) from None

    def _tools(self) -> dict[str, Path]:
        v = versions()
        tools = {
            "coredns": go_tool("coredns", "github.com/coredns/coredns", v["COREDNS_VERSION"]),
        }
        if self.want_kuberay:
            tools["ray-operator"] = go_tool(
                "kuberay-ray-operator", "github.com/ray-project/kuberay/ray-operator", self.kuberay_version
            )
        return tools

    def _prepare_host(self) -> None:
        p = self.paths
        for d in (p.state, p.containerd_root, p.logs, p.cni_conf_dir, p.cni_data_dir, p.kubelet_root):
            d.mkdir(parents=True, exist_ok=True)
        save_sysctls(p)
        # A bridge without ports: this kernel has no dummy links, and only the local address matters.
        run(["ip", "link", "add", NODE_LINK, "type", "bridge"])
        run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK])
        run(["ip", "link", "set", NODE_LINK, "up"])
        # Pods reach Service IPs through kube-proxy's DNAT on the bridge (br_netfilter is built in).
        write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
        write_sysctl("net.ipv4.ip_forward", "1")

    # ---- node components

    def _start_containerd(self) -> None:
        p = self.paths
        conf = p.state / "containerd.toml"
        conf.write_text(containerd_config(p))
        (p.cni_conf_dir / "10-campaign.conflist").write_text(cni_config(p))
        proc = self._spawn("containerd", ["containerd", f"--config={conf}", "--log-level=warn"])

        def up() -> tuple[bool, str]:
            r = subprocess.run(self._ctr("version"), capture_output=True, text=True, check=False)
            return r.returncode == 0, r.stderr[-500:]

        self._wait_until(proc, "containerd's socket", up)
        self.import_images(build_images("pause"))  # every pod's sandbox; containerd must never pull it

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", f"--address={self.paths.containerd_socket}", "--namespace=k8s.io", *args]

    def image_refs(self) -> set[str]:
        out = run(self._ctr("images", "ls", "-q"), check=False)
        return set(out.split())

    def import_images(self, archives: dict[str, Path]) -> None:
        """Import OCI archives (ref -> path) that containerd does not hold yet (its root persists)."""
        have = self.image_refs()
        for ref, archive in archives.items():
            if ref in have:
                continue
            t0 = time.monotonic()
            run(self._ctr("images", "import", "--all-platforms", str(archive)), timeout=1800)
            if ref not in self.image_refs():  # oci-archive tags may come in as their full name
                raise ControlPlaneError(
                    f"importing {archive} did not yield image {ref}: {sorted(self.image_refs())}"
                )
            print(f"rig: imported {ref} in {time.monotonic() - t0:.0f}s", file=sys.stderr)

    def _start_kubelet(self) -> None:
        assert self.binaries is not None and self.binaries.kubelet is not None
        p = self.paths
        kc = self.component_kubeconfig("kubelet", f"system:node:{NODE_NAME}", ["system:nodes"])
        crt, key = self.issue_serving_cert("kubelet-serving", [NODE_IP, NODE_NAME])
        conf = p.state / "kubelet.yaml"
        conf.write_text(kubelet_config(p, self.work_dir / "pki" / "client-ca.crt", crt, key))
        labels = f"{GPU_POOL_LABEL}={GPU_POOL}"
        proc = self._spawn(
            "kubelet",
            [
                str(self.binaries.kubelet),
                f"--config={conf}",
                f"--kubeconfig={kc}",
                f"--root-dir={p.kubelet_root}",
                f"--node-ip={NODE_IP}",
                f"--hostname-override={NODE_NAME}",
                f"--node-labels={labels}",
                "--v=1",
            ],
        )

        def registered() -> tuple[bool, str]:
            r = self.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=5)
            return r.status_code == 200, f"{r.status_code}"

        self._wait_until(proc, "the node to register", registered)

    def _start_kube_proxy(self) -> None:
        assert self.binaries is not None and self.binaries.kube_proxy is not None
        kc = self.component_kubeconfig("kube-proxy", "system:kube-proxy")
        conf = self.paths.state / "kube-proxy.yaml"
        conf.write_text(kube_proxy_config(kc))
        proc = self._spawn("kube-proxy", [str(self.binaries.kube_proxy), f"--config={conf}", "--v=1"])

        self._wait_until(proc, "kube-proxy /healthz", http_ok("http://127.0.0.1:10256/healthz"))

    def _start_coredns(self, coredns: Path) -> None:
        conf = self.paths.state / "Corefile"
        conf.write_text(corefile(self.kubeconfig_path))
        proc = self._spawn("coredns", [str(coredns), "-conf", str(conf)])
        # Pods resolve through the kube-dns Service; its only endpoint is this host process.
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kube-dns",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns"},
                },
                "spec": {
                    "clusterIP": CLUSTER_DNS_IP,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    ],
                },
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kube-dns-host",
                    "namespace": "kube-system",
                    "labels": {"kubernetes.io/service-name": "kube-dns"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        )

        self._wait_until(proc, "CoreDNS /ready", http_ok("http://127.0.0.1:18181/ready"))

    def _wait_node_ready(self) -> None:
        kubelet = next(p for p in self._procs if p.name == "kubelet")

        def ready() -> tuple[bool, str]:
            node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=5).json()
            conds = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
            c = conds.get("Ready", {})
            return c.get("status") == "True", f"{c.get('reason')}: {c.get('message')}"

        self._wait_until(kubelet, "node Ready", ready)

    def _make_gpu_node(self) -> None:
        """Fake GPUs: extended-resource capacity on the node status (kept across kubelet syncs)."""
        patch = [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(GPU_CAPACITY)}]
        with self.session() as s:
            r = s.patch(
                f"{self.server}/api/v1/nodes/{NODE_NAME}/status",
                data=json.dumps(patch),
                headers={"Content-Type": "application/json-patch+json"},
                timeout=10,
            )
        if r.status_code != 200:
            raise ControlPlaneError(f"advertising fake GPUs: {r.status_code} {r.text[:500]}")

    def _start_kuberay(self, operator: Path) -> None:
        self.install_crds(kuberay_crds(self.kuberay_version))
        port = 18082
        proc = self._spawn(
            "kuberay-operator",
            [
                str(operator),
                "--enable-leader-election=false",
                # Outside the cluster it cannot resolve *.svc.cluster.local: reach Ray dashboards through
                # the apiserver's service proxy.
                "--use-kubernetes-proxy",
                "--metrics-addr=127.0.0.1:18083",
                f"--health-probe-bind-address=127.0.0.1:{port}",
            ],
            env={"KUBECONFIG": str(self.kubeconfig_path)},
        )

        self._wait_until(proc, "the KubeRay operator /readyz", http_ok(f"http://127.0.0.1:{port}/readyz"))

    # ---- helpers

    def apply(self, *docs: dict[str, Any]) -> None:
        items = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)})
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=items)

    def taint_gpu_node(self, effect: str | None) -> None:
        """NoSchedule (or another effect) on the node, or None to remove the rig's GPU taint."""
        if effect is None:
            self.kubectl("taint", "nodes", NODE_NAME, f"{GPU_TAINT_KEY}-", check=False)
        else:
            self.kubectl("taint", "nodes", NODE_NAME, f"{GPU_TAINT_KEY}=present:{effect}", "--overwrite")


# --------------------------------------------------------------------------------------------------
# make cluster-up / cluster-down: `serve` holds the rig in the foreground until SIGTERM


def _serve(bare: bool) -> int:
    from rig.product import install_operator, load_images  # product builds on this module

    cluster = LocalCluster()
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster.start()
    try:
        if not bare:  # our images in the node's containerd, our chart installed: ready for kubectl apply
            install_operator(cluster, load_images(cluster))
        kubeconfig = RIG_ROOT / "admin.kubeconfig"
        kubeconfig.write_text(cluster.kubeconfig_path.read_text())
        SERVE_READY_FILE.write_text(json.dumps({"pid": os.getpid(), "kubeconfig": str(kubeconfig)}))
        print(f"rig: up in {cluster.startup_seconds:.0f}s; export KUBECONFIG={kubeconfig}", file=sys.stderr)
        while not stop["now"]:
            time.sleep(0.5)
    finally:
        SERVE_READY_FILE.unlink(missing_ok=True)
        cluster.stop()
    return 0


def _down() -> int:
    if SERVE_READY_FILE.exists():
        pid = json.loads(SERVE_READY_FILE.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(240):
                os.kill(pid, 0)
                time.sleep(0.5)
        except ProcessLookupError:
            pass
    teardown_host(node_paths())
    SERVE_READY_FILE.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rig.cluster")
    parser.add_argument("command", choices=["serve", "down"])
    parser.add_argument("--bare", action="store_true", help="serve: without our images and chart")
    args = parser.parse_args(argv)
    return _serve(args.bare) if args.command == "serve" else _down()


if __name__ == "__main__":
    sys.exit(main())
