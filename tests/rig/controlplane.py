"""A real local Kubernetes control plane for tests: etcd + kube-apiserver (+ kube-controller-manager).

The binaries come from ``KUBEBUILDER_ASSETS`` (envtest's convention) or from
``hack/build-control-plane.sh``, which builds them from Go modules and caches them outside the repo.
Certificates are generated here with ``cryptography``; every port is a free loopback port; all state
(etcd data, certificates, kubeconfigs, logs) lives in one temporary directory that ``stop()`` removes.

Usage::

    with ControlPlane() as cp:
        cp.install_crds(["crds/foo.yaml"])
        cp.kubectl("get", "namespaces")
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# The apiserver's own Service ("kubernetes" in "default") takes the first address of the range.
KUBERNETES_SERVICE_IP = "10.0.0.1"
# libyaml's loader parses KubeRay's 1.4 MB CRD ~4x faster than the pure-Python one.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# kube-controller-manager --controllers: garbage collection, namespace deletion, the "default"
# ServiceAccount in each namespace, its token controller, and the aggregation of ClusterRoles into
# view/edit/admin (the chart's user roles).
DEFAULT_CONTROLLERS = (
    "clusterrole-aggregation-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, built, started or talked to."""


class KubectlError(ControlPlaneError):
    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )


# --------------------------------------------------------------------------------------------------
# Binaries


@dataclass(frozen=True)
class Binaries:
    bin_dir: Path
    etcd: Path
    kube_apiserver: Path
    kubectl: Path | None
    kube_controller_manager: Path | None
    kube_scheduler: Path | None
    kubelet: Path | None = None
    kube_proxy: Path | None = None


def _binaries_in(bin_dir: Path) -> Binaries | None:
    def exe(name: str) -> Path | None:
        p = bin_dir / name
        return p if p.is_file() and os.access(p, os.X_OK) else None

    etcd, apiserver = exe("etcd"), exe("kube-apiserver")
    if etcd is None or apiserver is None:
        return None
    kubectl = exe("kubectl")
    if kubectl is None and (found := shutil.which("kubectl")):
        kubectl = Path(found)
    return Binaries(
        bin_dir=bin_dir,
        etcd=etcd,
        kube_apiserver=apiserver,
        kubectl=kubectl,
        kube_controller_manager=exe("kube-controller-manager"),
        kube_scheduler=exe("kube-scheduler"),
        kubelet=exe("kubelet"),
        kube_proxy=exe("kube-proxy"),
    )


def find_binaries(*, build: bool = True) -> Binaries:
    """KUBEBUILDER_ASSETS if it holds etcd + kube-apiserver; else the build script's cached output.

    The script returns at once when its stamped cache is there and builds (10-30 min cold) when not.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (found := _binaries_in(Path(assets))):
        return found
    if not build:
        raise ControlPlaneError("no control-plane binaries: KUBEBUILDER_ASSETS unset and build=False")
    if not BUILD_SCRIPT.exists():
        raise ControlPlaneError(f"missing {BUILD_SCRIPT}")
    # stderr is inherited: a cold build reports progress (pytest shows it if the fixture fails).
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed (exit {proc.returncode}); see its stderr above")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin dir")
    bin_dir = Path(lines[-1])
    found = _binaries_in(bin_dir)
    if found is None:
        raise ControlPlaneError(f"{BUILD_SCRIPT} reported {bin_dir}, which lacks etcd or kube-apiserver")
    return found


# --------------------------------------------------------------------------------------------------
# Certificates


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: the apiserver accepts it for serving, client and service-account keys, and it is fast.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any, *, ca: bool) -> x509.CertificateBuilder:
    """What every certificate of the rig shares: a week's validity (5 minutes of clock skew allowed),
    basic constraints and key usage; CAs may sign certificates, leaves only sign handshakes."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path

    @classmethod
    def create(cls, common_name: str, path: Path) -> CertificateAuthority:
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            _builder(name, name, key.public_key(), ca=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        path.write_bytes(_cert_pem(cert))
        return cls(cert=cert, key=key, cert_path=path)

    def issue(
        self,
        cert_path: Path,
        key_path: Path,
        *,
        common_name: str,
        organizations: Sequence[str] = (),
        server_names: Sequence[str] = (),
        client: bool = False,
    ) -> None:
        """Write a leaf certificate + key signed by this CA (serving if server_names, client if client)."""
        key = _new_key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = []
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            _builder(x509.Name(attrs), self.cert.subject, key.public_key(), ca=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if server_names:
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_path.write_bytes(_key_pem(key))
        key_path.chmod(0o600)
        cert_path.write_bytes(_cert_pem(cert))


# --------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the child if the test process dies without cleaning up (e.g. SIGKILL).

    The signal fires when the *thread* that started the child exits: start a ControlPlane from a
    thread that outlives it (pytest's main thread does)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _local_session() -> requests.Session:
    """A session that ignores the environment: REQUESTS_CA_BUNDLE would otherwise override
    ``session.verify`` (requests merges it in per request), and *_PROXY must not see loopback."""
    s = requests.Session()
    s.trust_env = False
    return s


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, max_chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<cannot read {self.log_path}: {e}>"
        return text[-max_chars:]


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on free loopback ports, torn down by stop().

    Attributes once started: ``server`` (https URL), ``kubeconfig_path`` (admin, system:masters),
    ``ca_path`` (the serving CA), ``work_dir`` (temp dir with certs, data, logs), ``binaries``.
    """

    def __init__(
        self,
        *,
        binaries: Binaries | None = None,
        controller_manager: bool = True,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        extra_apiserver_args: Sequence[str] = (),
        node_ip: str | None = None,
        work_root: Path | None = None,
        start_timeout: float = 90.0,
        keep_work_dir: bool = False,
    ) -> None:
        self.binaries = binaries
        self.want_controller_manager = controller_manager
        self.controllers = tuple(controllers)
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.node_ip = node_ip
        self.work_root = work_root  # where the temporary work dir goes (default: the system's temp dir)
        """Set for a cluster with a node (rig.cluster): the apiserver listens on all addresses and
        advertises this one (pods reach it through the `kubernetes` Service), Node authorization and
        the ServiceAccount and NodeRestriction admission plugins are on, the scheduler runs."""
        self.start_timeout = start_timeout
        self.keep_work_dir = keep_work_dir or bool(os.environ.get("CAMPAIGN_KEEP_CONTROL_PLANE"))
        self._procs: list[_Proc] = []
        self._work_dir: Path | None = None
        self._server: str | None = None
        self.etcd_url = ""
        self.startup_seconds: float | None = None

    # ---- public properties

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            raise ControlPlaneError("control plane not started")
        return self._work_dir

    @property
    def server(self) -> str:
        if self._server is None:
            raise ControlPlaneError("control plane not started")
        return self._server

    @property
    def kubeconfig_path(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.work_dir / "pki" / "ca.crt"

    @property
    def controller_manager_running(self) -> bool:
        return any(p.name == "kube-controller-manager" and p.popen.poll() is None for p in self._procs)

    def log_path(self, component: str) -> Path:
        return self.work_dir / "logs" / f"{component}.log"

    # ---- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> ControlPlane:
        """Start everything; on failure print each component's log tail and raise ControlPlaneError.

        Ports are picked free but only bound later by the components, so another process can take
        one in between: such a start ("address already in use") is retried with fresh ports."""
        if self._work_dir is not None:
            raise ControlPlaneError("already started")
        t0 = time.monotonic()
        if self.binaries is None:
            self.binaries = find_binaries()
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(self.binaries)
                break
            except ControlPlaneError as e:
                if attempt == attempts or "address already in use" not in str(e):
                    raise
                print(f"control plane: port clash, retrying ({attempt}/{attempts})", file=sys.stderr)
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start_once(self, binaries: Binaries) -> None:
        if self.work_root is not None:
            self.work_root.mkdir(parents=True, exist_ok=True)
        self._work_dir = Path(tempfile.mkdtemp(prefix="campaign-cp-", dir=self.work_root))
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            if self.want_controller_manager:
                if binaries.kube_controller_manager is None:
                    print(
                        f"control plane: no kube-controller-manager in {binaries.bin_dir}; "
                        "garbage collection and namespace deletion will not happen",
                        file=sys.stderr,
                    )
                else:
                    self._start_controller_manager()
        except BaseException as e:
            report = self._failure_report()
            print(report, file=sys.stderr)
            self.stop()
            if isinstance(e, ControlPlaneError):
                raise ControlPlaneError(f"{e}\n{report}") from e
            raise

    def stop(self, grace: float = 10.0) -> None:
        """Stop components in reverse start order (SIGTERM, then SIGKILL after ``grace`` s each) and
        remove the work dir. One at a time: the apiserver exits in ~1 s while etcd is up, but hangs
        in its shutdown sequence when etcd went away first."""
        for proc in reversed(self._procs):
            if proc.popen.poll() is None:
                proc.popen.terminate()
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)
        self._procs.clear()
        if self._work_dir is not None and not self.keep_work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)
        self._work_dir = None
        self._server = None

    # ---- client helpers

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster (KUBECONFIG, kubectl cache)."""
        return {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig_path),
            "KUBECACHEDIR": str(self.work_dir / "kubectl-cache"),
        }

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster (admin unless kubeconfig is given)."""
        assert self.binaries is not None
        if self.binaries.kubectl is None:
            raise ControlPlaneError(f"no kubectl in {self.binaries.bin_dir} nor on PATH")
        kc = kubeconfig or self.kubeconfig_path
        cmd = [str(self.binaries.kubectl), f"--kubeconfig={kc}", *args]
        result = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self.env(kc),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result)
        return result

    def session(self, kubeconfig: Path | None = None) -> requests.Session:
        """A requests.Session that verifies the server and presents the kubeconfig's client cert."""
        kc = yaml.safe_load((kubeconfig or self.kubeconfig_path).read_text())
        user = kc["users"][0]["user"]
        s = _local_session()
        s.verify = str(self.ca_path)
        s.cert = (user["client-certificate"], user["client-key"])
        return s

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        kubeconfig: Path | None = None,
        timeout: float = 30.0,
    ) -> requests.Response:
        with self.session(kubeconfig) as s:
            return s.request(method, self.server + path, json=json, timeout=timeout)

    def server_version(self) -> dict[str, str]:
        r = self.request("GET", "/version")
        r.raise_for_status()
        version: dict[str, str] = r.json()
        return version

    def make_user_kubeconfig(self, username: str, groups: Iterable[str] = ()) -> Path:
        """Issue a client certificate (CN=username, O=groups) and write a kubeconfig that uses it."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in username)
        users = self.work_dir / "users"
        users.mkdir(exist_ok=True)
        crt, key = users / f"{safe}.crt", users / f"{safe}.key"
        self._client_ca().issue(crt, key, common_name=username, organizations=list(groups), client=True)
        path = users / f"{safe}.kubeconfig"
        self._write_kubeconfig(path, username, crt, key)
        return path

    def install_crds(self, paths: Iterable[Path | str], timeout: float = 60.0) -> list[str]:
        """Server-side apply CRD manifests (KubeRay's are too big for client-side apply's
        last-applied annotation), wait until every CRD is Established, and return their names."""
        docs: list[dict[str, Any]] = []
        for f in map(Path, paths):
            for doc in yaml.load_all(f.read_text(), Loader=_YamlLoader):
                if not doc:
                    continue
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ControlPlaneError(f"{f}: not a CustomResourceDefinition: {doc.get('kind')}")
                docs.append(doc)
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        with self.session() as s:
            for doc in docs:
                name = doc["metadata"]["name"]
                r = s.patch(
                    f"{self.server}{base}/{name}",
                    params={"fieldManager": "campaign-rig", "force": "true"},
                    data=json.dumps(doc),
                    headers={"Content-Type": "application/apply-patch+yaml"},
                    timeout=timeout,
                )
                if r.status_code not in (200, 201):
                    raise ControlPlaneError(f"applying CRD {name}: {r.status_code} {r.text[:2000]}")
            # Not `kubectl wait`: it errors out instead of waiting while .status.conditions is unset.
            deadline = time.monotonic() + timeout
            pending = [d["metadata"]["name"] for d in docs]
            while pending:
                r = s.get(f"{self.server}{base}/{pending[0]}", timeout=timeout)
                r.raise_for_status()
                conditions = r.json().get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.pop(0)
                elif time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRDs not Established after {timeout}s: {pending}; {conditions}")
                else:
                    time.sleep(0.05)
        return [d["metadata"]["name"] for d in docs]

    # ---- internals

    def _pki(self) -> Path:
        return self.work_dir / "pki"

    def _client_ca(self) -> CertificateAuthority:
        pki = self._pki()
        cert = x509.load_pem_x509_certificate((pki / "client-ca.crt").read_bytes())
        key = serialization.load_pem_private_key((pki / "client-ca.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return CertificateAuthority(cert=cert, key=key, cert_path=pki / "client-ca.crt")

    def _write_pki(self) -> None:
        pki = self._pki()
        cert_dir = self.work_dir / "apiserver-certs"
        for d in (pki, cert_dir, self.work_dir / "logs"):
            d.mkdir(parents=True)
        ca = CertificateAuthority.create("campaign-rig-ca", pki / "ca.crt")
        (pki / "ca.key").write_bytes(_key_pem(ca.key))
        # kube-apiserver picks up <cert-dir>/apiserver.{crt,key} by name.
        ca.issue(
            cert_dir / "apiserver.crt",
            cert_dir / "apiserver.key",
            common_name="kube-apiserver",
            server_names=[
                "127.0.0.1",
                "localhost",
                KUBERNETES_SERVICE_IP,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                *([self.node_ip] if self.node_ip else []),
            ],
        )
        client_ca = CertificateAuthority.create("campaign-rig-client-ca", pki / "client-ca.crt")
        (pki / "client-ca.key").write_bytes(_key_pem(client_ca.key))
        client_ca.issue(
            pki / "admin.crt",
            pki / "admin.key",
            common_name="admin",
            organizations=["system:masters"],
            client=True,
        )
        client_ca.issue(
            pki / "apiserver-kubelet-client.crt",
            pki / "apiserver-kubelet-client.key",
            common_name="kube-apiserver-kubelet-client",
            organizations=["system:masters"],
            client=True,
        )
        client_ca.issue(
            pki / "kube-controller-manager.crt",
            pki / "kube-controller-manager.key",
            common_name="system:kube-controller-manager",
            client=True,
        )
        sa_key = _new_key()
        (pki / "sa.key").write_bytes(_key_pem(sa_key))
        (pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _write_kubeconfig(self, path: Path, user: str, crt: Path, key: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "campaign-rig",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_path)},
                }
            ],
            "users": [{"name": user, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
            "contexts": [{"name": "campaign-rig", "context": {"cluster": "campaign-rig", "user": user}}],
            "current-context": "campaign-rig",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> _Proc:
        log_path = self.log_path(name)
        with log_path.open("ab") as log:  # a restarted component keeps its earlier log
            popen = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env={**os.environ, **env} if env else None,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        proc = _Proc(name=name, popen=popen, log_path=log_path)
        self._procs.append(proc)
        return proc

    def _wait_until(
        self,
        proc: _Proc,
        what: str,
        probe: Callable[[], tuple[bool, str]],
        timeout: float | None = None,
    ) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last = "not probed yet"
        while time.monotonic() < deadline:
            if (rc := proc.popen.poll()) is not None:
                raise ControlPlaneError(f"{proc.name} exited with {rc} before {what}")
            try:
                ok, last = probe()
            except (requests.RequestException, OSError) as e:
                ok, last = False, repr(e)
            if ok:
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"{proc.name}: timed out waiting for {what}; last probe: {last}")

    def _start_etcd(self) -> None:
        assert self.binaries is not None
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        proc = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> tuple[bool, str]:
            with _local_session() as s:
                r = s.get(self.etcd_url + "/health", timeout=2)
            return r.status_code == 200 and r.json().get("health") == "true", r.text

        self._wait_until(proc, "etcd /health", healthy)

    def _start_apiserver(self) -> None:
        assert self.binaries is not None
        port = free_port()
        self._server = f"https://127.0.0.1:{port}"
        pki = self._pki()
        args = [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={self.work_dir / 'apiserver-certs'}",
            f"--secure-port={port}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            *self._node_args(),
            f"--client-ca-file={pki / 'client-ca.crt'}",
            f"--service-account-issuer={self._server}/",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            *self.extra_apiserver_args,
        ]
        self._apiserver_args = args
        self._write_kubeconfig(self.kubeconfig_path, "admin", pki / "admin.crt", pki / "admin.key")
        self._spawn_apiserver()

    def _spawn_apiserver(self) -> None:
        proc = self._spawn("kube-apiserver", self._apiserver_args)

        def ready() -> tuple[bool, str]:
            r = self.request("GET", "/readyz", timeout=5)
            return r.status_code == 200, f"{r.status_code} {r.text[-2000:]}"

        self._wait_until(proc, "kube-apiserver /readyz", ready)

    def apiserver_pid(self) -> int:
        (proc,) = [p for p in self._procs if p.name == "kube-apiserver" and p.popen.poll() is None]
        return proc.popen.pid

    def restart_apiserver(self) -> None:
        """SIGKILL the kube-apiserver and start it again on the same port (clients keep their
        kubeconfig), as a crashed apiserver pod comes back; returns once it is ready."""
        (proc,) = [p for p in self._procs if p.name == "kube-apiserver" and p.popen.poll() is None]
        proc.popen.kill()
        proc.popen.wait(timeout=30)
        self._procs.remove(proc)
        self._spawn_apiserver()

    def _node_args(self) -> list[str]:
        if self.node_ip is None:  # no kubelet: no pods, so no ServiceAccount tokens to mount
            return [
                "--bind-address=127.0.0.1",
                "--disable-admission-plugins=ServiceAccount",
                "--authorization-mode=RBAC",
            ]
        pki = self._pki()
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={self.node_ip}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # `kubectl logs/exec` and the kubelet's webhook authn: the apiserver as a kubelet client.
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def component_kubeconfig(self, name: str, common_name: str, organizations: Sequence[str] = ()) -> Path:
        """A kubeconfig for a cluster component with its own client certificate (CN=common_name)."""
        pki = self._pki()
        crt, key = pki / f"{name}.crt", pki / f"{name}.key"
        if not crt.exists():
            self._client_ca().issue(
                crt, key, common_name=common_name, organizations=organizations, client=True
            )
        path = self.work_dir / f"{name}.kubeconfig"
        self._write_kubeconfig(path, common_name, crt, key)
        return path

    def issue_serving_cert(self, name: str, server_names: Sequence[str]) -> tuple[Path, Path]:
        """A serving certificate signed by the cluster CA (the one in every pod's kube-root-ca.crt)."""
        pki = self._pki()
        key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        ca = CertificateAuthority(
            cert=x509.load_pem_x509_certificate(self.ca_path.read_bytes()), key=key, cert_path=self.ca_path
        )
        crt, key_path = pki / f"{name}.crt", pki / f"{name}.key"
        ca.issue(crt, key_path, common_name=name, server_names=server_names)
        return crt, key_path

    def start_scheduler(self) -> None:
        assert self.binaries is not None and self.binaries.kube_scheduler is not None
        kc = self.component_kubeconfig("kube-scheduler", "system:kube-scheduler")
        port = free_port()
        proc = self._spawn("kube-scheduler", [str(self.binaries.kube_scheduler), *_component_flags(kc, port)])
        self._wait_healthz(proc, port)

    def _wait_healthz(self, proc: _Proc, port: int) -> None:
        url = f"https://127.0.0.1:{port}/healthz"

        def healthy() -> tuple[bool, str]:
            with _local_session() as s, warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                r = s.get(url, verify=False, timeout=2)  # its serving cert is self-signed
            return r.status_code == 200, f"{r.status_code} {r.text[-2000:]}"

        self._wait_until(proc, f"{proc.name} /healthz", healthy)

    def _start_controller_manager(self) -> None:
        assert self.binaries is not None and self.binaries.kube_controller_manager is not None
        pki = self._pki()
        kc = self.work_dir / "kube-controller-manager.kubeconfig"
        self._write_kubeconfig(
            kc,
            "system:kube-controller-manager",
            pki / "kube-controller-manager.crt",
            pki / "kube-controller-manager.key",
        )
        port = free_port()
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                *_component_flags(kc, port),
                f"--cert-dir={self.work_dir / 'kcm-certs'}",
                f"--controllers={','.join(self.controllers)}",
                # Each controller authenticates as its own service account (TokenRequest), as in a
                # production cluster, so RBAC for controllers is exercised too.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={self.ca_path}",
            ],
        )
        self._wait_healthz(proc, port)

    def _failure_report(self) -> str:
        parts = ["control plane failed to start; component logs follow"]
        for proc in self._procs:
            rc = proc.popen.poll()
            state = "running" if rc is None else f"exited {rc}"
            parts.append(f"----- {proc.name} ({state}) {proc.log_path} -----\n{proc.log_tail()}")
        return "\n".join(parts)


def _component_flags(kubeconfig: Path, port: int) -> list[str]:
    """What the scheduler and the controller-manager share: one identity for the API and for
    delegated authn/authz, a loopback serving port, no leader election (one replica)."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
    ]


def versions_from_stamp(bin_dir: Path) -> Mapping[str, str]:
    """The build script's stamp (k8s=, etcd=, go=, ...) or {} when the binaries came from elsewhere."""
    stamp = bin_dir / ".stamp"
    if not stamp.is_file():
        return {}
    out: dict[str, str] = {}
    for line in stamp.read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out
