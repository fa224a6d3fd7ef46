"""One real Kubernetes node on this host: containerd + runc + CNI (Debian), kubelet and kube-proxy
(built with the control plane), CoreDNS (built from Go modules) as a host process.

Everything the node creates is private to the rig: its own containerd root/state/socket, kubelet
root dir, CNI config dir, a dummy interface carrying the node IP, and the `cni0` bridge. `teardown()`
undoes all of it, including what the kubelet and kube-proxy change on the host (sysctls, iptables
chains, mounts, network namespaces); it is idempotent and runs before every start as well, so a rig
killed mid-run is cleaned up by the next one. Facts behind the settings:
../shared/notes/local-cluster.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NODE_NAME = "campaign-node"
NODE_IP = "10.210.0.1"  # on the rig's own link: pods and host processes meet here, never on eth0
NODE_LINK = "campaign0"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "cni0"
CNI_NETWORK = "campaign-pods"
CLUSTER_DNS_IP = "10.0.0.10"
PAUSE_IMAGE = "localhost/campaign-pause:3.10"
# Host settings the kubelet, kube-proxy or the bridge change; restored on teardown.
SYSCTLS = (
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
)
IPTABLES_CHAIN_PREFIXES = ("KUBE-", "CNI-", "NETAVARK")


def run(
    args: list[str], *, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps things: `state` is wiped on teardown, `images` (containerd's content and
    snapshots) survives, so a 6 GB trainer image is imported once, not per run."""

    state: Path
    containerd_root: Path

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd-state"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.state / "cni" / "networks"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def sysctl_backup(self) -> Path:
        # Outside `state`: it must survive a crashed run until the next teardown restores it.
        return self.containerd_root.parent / "sysctls.json"


@dataclass
class NodeConfig:
    paths: NodePaths
    gpu_capacity: int = 4
    labels: dict[str, str] = field(default_factory=dict)


def containerd_config(p: NodePaths) -> str:
    """containerd 1.6 CRI for kubelet 1.35 here (each line was a hard failure without it)."""
    return f"""version = 2
root = "{p.containerd_root}"
state = "{p.containerd_state}"
[grpc]
  address = "{p.containerd_socket}"
[ttrpc]
  address = "{p.containerd_state}/containerd.sock.ttrpc"
[debug]
  address = "{p.containerd_state}/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: runc may not lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{p.cni_conf_dir}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{p.containerd_root}/opt"
"""


def cni_config(p: NodePaths) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,  # pods only talk to each other and to the node IP
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(p.cni_data_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(p: NodePaths, client_ca: Path, serving_crt: Path, serving_key: Path) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # 1.35 refuses cgroup v1 hosts by default
            "cgroupDriver": "cgroupfs",  # containerd 1.6 does not report its driver: match by hand
            "containerRuntimeEndpoint": f"unix://{p.containerd_socket}",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(client_ca)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(serving_crt),
            "tlsPrivateKeyFile": str(serving_key),
            "clusterDNS": [CLUSTER_DNS_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            # Local images can never be pulled again: never garbage-collect them; evict late.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "200Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "serializeImagePulls": False,
            "maxPods": 60,
            "podPidsLimit": -1,
            "registerNode": True,
            "staticPodPath": "",
            "syncFrequency": "10s",
            "nodeStatusUpdateFrequency": "10s",
            "shutdownGracePeriod": "0s",
        },
        sort_keys=False,
    )


def kube_proxy_config(kubeconfig: Path) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            # Leave the host's conntrack sysctls alone (0 = don't set).
            "conntrack": {"maxPerCore": 0, "min": 0},
            "iptables": {"masqueradeAll": False, "syncPeriod": "10s", "minSyncPeriod": "1s"},
        },
        sort_keys=False,
    )


def corefile(kubeconfig: Path) -> str:
    return f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
    loadbalance
}}
"""


# --------------------------------------------------------------------------------------------------
# Host state: saved before the node starts, restored by teardown


def read_sysctls() -> dict[str, str]:
    out = {}
    for key in SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        with contextlib.suppress(OSError):
            out[key] = path.read_text().strip()
    return out


def write_sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (Path("/proc/sys") / key.replace(".", "/")).write_text(value)


def save_sysctls(p: NodePaths) -> None:
    """Only the first save counts: a crashed run's backup holds the host's real values."""
    if not p.sysctl_backup.exists():
        p.sysctl_backup.parent.mkdir(parents=True, exist_ok=True)
        p.sysctl_backup.write_text(json.dumps(read_sysctls()))


def restore_sysctls(p: NodePaths) -> None:
    if p.sysctl_backup.exists():
        for key, value in json.loads(p.sysctl_backup.read_text()).items():
            write_sysctl(key, value)
        p.sysctl_backup.unlink()


def iptables_cleanup() -> None:
    """Remove every KUBE-*/CNI-*/NETAVARK* chain (kube-proxy's, the CNI plugins', buildah's) and the
    jumps to them, in both the iptables and ip6tables nft tables."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            rules = run([tool, "-w", "-t", table, "-S"], check=False)
            ours = [
                c for c in re.findall(r"^-N (\S+)$", rules, re.M) if c.startswith(IPTABLES_CHAIN_PREFIXES)
            ]
            if not ours:
                continue
            for line in rules.splitlines():
                # Jumps from built-in chains into ours, and the CNI bridge's own rules
                m = re.match(r"^-A (\S+) (.*)$", line)
                if m and m.group(1) not in ours and any(f"-j {c}" in line for c in ours):
                    run([tool, "-w", "-t", table, "-D", m.group(1), *_split_rule(m.group(2))], check=False)
            for chain in ours:
                run([tool, "-w", "-t", table, "-F", chain], check=False)
            for chain in ours:
                run([tool, "-w", "-t", table, "-X", chain], check=False)


def _split_rule(spec: str) -> list[str]:
    import shlex

    return shlex.split(spec)


def unmount_under(*roots: Path) -> None:
    """Lazy-unmount every mount point below the given roots, deepest first."""
    prefixes = tuple(str(r.resolve()) + "/" for r in roots if r.exists()) + tuple(str(r) for r in roots)
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1].replace("\\040", " ")
            if target.startswith(prefixes):
                mounts.append(target)
    for target in sorted(set(mounts), key=len, reverse=True):
        run(["umount", "-l", target], check=False)


def kill_matching(patterns: list[str]) -> None:
    """SIGKILL processes whose command line mentions one of the rig's private paths (a crashed run's
    containerd-shims and pods' processes are not our children any more)."""
    me = os.getpid()
    victims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(p in cmd for p in patterns):
            victims.append(int(proc.name))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)
    if victims:
        time.sleep(1)


def delete_links() -> None:
    for link in (BRIDGE, NODE_LINK):
        run(["ip", "link", "del", link], check=False)
    # veth ends the bridge plugin made (their peers die with the pods' namespaces)
    for line in run(["ip", "-o", "link", "show", "type", "veth"], check=False).splitlines():
        m = re.match(r"^\d+: (veth[0-9a-f]+)@", line)
        if m:
            run(["ip", "link", "del", m.group(1)], check=False)


def delete_cni_netns() -> None:
    netns = Path("/var/run/netns")
    if netns.is_dir():
        for ns in netns.iterdir():
            if ns.name.startswith("cni-"):
                run(["umount", "-l", str(ns)], check=False)
                with contextlib.suppress(OSError):
                    ns.unlink()
