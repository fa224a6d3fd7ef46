"""Where a trial's progress goes: JSON lines (embedded mode), stdout, or the Trial's status subresource.

One small interface: ``report_epoch(epoch, metrics)`` after every epoch and ``report_outcome(outcome)``
exactly once at the end. Reporters hold configuration only (no open sockets or files between calls),
so they pickle into Ray workers. A lost progress line never kills a multi-hour trial; a refusal does:
the Kubernetes reporter raises ``ReportFailed`` when the apiserver refuses a write (401, 403, or any
answer a retry cannot change) or when the outcome cannot be written at all, so a trainer that may
not report stops and exits non-zero instead of training unseen and "succeeding".
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import yaml

from campaign_trainer.outcome import HISTORY_LIMIT, Outcome, bounded_history, finite_metrics, now_rfc3339

log = logging.getLogger("campaign_trainer.reporters")

GROUP = "training.campaign-operator.io"
VERSION = "v1alpha1"
PLURAL = "trials"


class Reporter(Protocol):
    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...
    def report_outcome(self, outcome: Outcome) -> None: ...


def _json_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    # JSON has no NaN/inf: keep the key (so the line shows the metric went bad) with null.
    out: dict[str, float | None] = {}
    finite = finite_metrics(metrics)
    for k, v in metrics.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[str(k)] = finite.get(str(k))
    return out


def epoch_line(
    trial: str, epoch: int, metrics: Mapping[str, float], time_: str | None = None
) -> dict[str, Any]:
    return {
        "type": "epoch",
        "trial": trial,
        "time": time_ or now_rfc3339(),
        "epoch": epoch,
        "metrics": _json_metrics(metrics),
    }


def outcome_line(outcome: Outcome, time_: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "outcome",
        "trial": outcome.trial,
        "time": time_ or now_rfc3339(),
        "status": outcome.to_status(),
    }
    if outcome.resumed_from_epoch is not None:
        line["resumedFromEpoch"] = outcome.resumed_from_epoch
    return line


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, sort_keys=False)


@dataclass
class JsonlReporter:
    """Appends one JSON object per line; each line is written with one ``write`` on an O_APPEND file,
    so concurrent trials may share a file and a reader never sees a torn line."""

    path: str
    trial: str

    def _write(self, obj: Mapping[str, Any]) -> None:
        data = (_dumps(obj) + "\n").encode()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot write progress to %s: %s", self.path, exc)

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._write(epoch_line(self.trial, epoch, metrics))

    def report_outcome(self, outcome: Outcome) -> None:
        self._write(outcome_line(outcome))


@dataclass
class StdoutReporter:
    """The same JSON lines on stdout (pod logs, ``ray job logs``)."""

    trial: str
    stream: TextIO | None = None

    def _write(self, obj: Mapping[str, Any]) -> None:
        out = self.stream or sys.stdout
        out.write(_dumps(obj) + "\n")
        out.flush()

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._write(epoch_line(self.trial, epoch, metrics))

    def report_outcome(self, outcome: Outcome) -> None:
        self._write(outcome_line(outcome))

    def __getstate__(self) -> dict[str, Any]:
        return {"trial": self.trial, "stream": None}  # streams don't pickle; the worker uses its stdout


@dataclass
class MultiReporter:
    reporters: Sequence[Reporter]

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for r in self.reporters:
            r.report_epoch(epoch, metrics)

    def report_outcome(self, outcome: Outcome) -> None:
        for r in self.reporters:
            r.report_outcome(outcome)


class NullReporter:
    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def report_outcome(self, outcome: Outcome) -> None:
        pass


# --- Kubernetes ----------------------------------------------------------------------------------


def epoch_patch(
    epoch: int, metrics: Mapping[str, float], history: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """JSON merge patch for the status subresource after an epoch.

    ``history`` is sent whole (merge patch replaces lists), thinned to HISTORY_LIMIT entries.
    No ``state``, ``attempt`` or ``startTime``: the lifecycle belongs to the shell that launched the
    attempt, and a late epoch report must not bring a trial it has already stopped back to Running.
    """
    status = {
        "epoch": epoch,
        "metrics": finite_metrics(metrics),
        "history": bounded_history(history, HISTORY_LIMIT),
    }
    return {"status": status}


def outcome_patch(outcome: Outcome) -> dict[str, Any]:
    return {"status": outcome.to_status()}


_KEEP_INTERNAL = 100_000

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


class ReportFailed(RuntimeError):
    """A status write that did not land and must not be shrugged off (see the module docstring)."""


def backoff_delays(attempts: int, base: float = 0.5, cap: float = 8.0, jitter: float = 0.1) -> list[float]:
    """Exponential backoff with a little jitter so many trials don't retry in lockstep."""
    return [min(cap, base * 2**i) * (1.0 + random.uniform(0.0, jitter)) for i in range(max(0, attempts - 1))]


_FORBIDDEN_USER = re.compile(r'User "([^"]+)"')


def token_subject(token: str | None) -> str | None:
    """The ``sub`` claim of a JWT bearer token (a ServiceAccount token names its account there).
    Read, not verified: it only names who we are in an error message."""
    try:
        payload = (token or "").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and sub else None


def refusal_message(verb: str, namespace: str, name: str, code: int, detail: str, identity: str) -> str:
    """One line that says what was refused, to whom, and what to do about it."""
    if code == 403:
        return (
            f"trainer may not {verb} trials/status in namespace {namespace} as {identity} (403):"
            " bind the campaign-trainer role"
        )
    if code == 401:
        return (
            f"trainer could not authenticate to the apiserver as {identity} (401): its token is missing,"
            " expired or not trusted"
        )
    return f"trainer could not {verb} trials/status {namespace}/{name} ({code}): {detail}"


@dataclass
class ClusterConnection:
    """How to reach the apiserver: server URL plus either a bearer token (file) or a client cert."""

    server: str
    token: str | None = None
    token_file: str | None = None  # in-cluster tokens rotate: re-read on every request
    ca_file: str | None = None
    verify: bool = True
    client_cert: tuple[str, str] | None = None
    proxy_url: str | None = None

    def bearer_token(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token

    def headers(self) -> dict[str, str]:
        token = self.bearer_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    @classmethod
    def in_cluster(cls) -> ClusterConnection | None:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        sa = Path("/var/run/secrets/kubernetes.io/serviceaccount")
        if not host or not port or not (sa / "token").exists():
            return None
        host = f"[{host}]" if ":" in host else host
        return cls(server=f"https://{host}:{port}", token_file=str(sa / "token"), ca_file=str(sa / "ca.crt"))

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> ClusterConnection:
        path = (
            path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube/config")
        )
        doc = yaml.safe_load(Path(path).read_text())
        ctx_name = doc.get("current-context")
        ctx = next((c["context"] for c in doc.get("contexts", []) if c["name"] == ctx_name), None)
        if ctx is None:
            raise ValueError(f"kubeconfig {path}: current-context {ctx_name!r} not found")
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user: dict[str, Any] = (
            next((u["user"] for u in doc.get("users", []) if u["name"] == ctx.get("user")), {}) or {}
        )
        base = Path(path).parent

        def file_of(data_key: str, path_key: str, src: Mapping[str, Any]) -> str | None:
            if src.get(data_key):
                return _materialise(base64.b64decode(src[data_key]))
            if src.get(path_key):
                return str((base / src[path_key]).resolve())
            return None

        cert = file_of("client-certificate-data", "client-certificate", user)
        key = file_of("client-key-data", "client-key", user)
        return cls(
            server=str(cluster["server"]).rstrip("/"),
            token=user.get("token"),
            token_file=str((base / user["tokenFile"]).resolve()) if user.get("tokenFile") else None,
            ca_file=file_of("certificate-authority-data", "certificate-authority", cluster),
            verify=not cluster.get("insecure-skip-tls-verify", False),
            client_cert=(cert, key) if cert and key else None,
            proxy_url=cluster.get("proxy-url"),
        )

    @classmethod
    def detect(cls) -> ClusterConnection:
        found = cls.in_cluster()
        if found is not None:
            return found
        try:
            return cls.from_kubeconfig()
        except (OSError, ValueError, KeyError, StopIteration, yaml.YAMLError) as exc:
            raise ReportFailed(
                "trainer cannot reach the apiserver: no ServiceAccount token in this pod and no usable"
                f" kubeconfig ({type(exc).__name__}: {exc})"
            ) from None


def _materialise(data: bytes) -> str:
    # requests wants certificate paths; kubeconfigs often inline them. Private to this user (0600).
    fd, name = tempfile.mkstemp(prefix="campaign-kube-", suffix=".pem")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name


@dataclass
class KubernetesReporter:
    """Patches ``trials/<name>/status`` with JSON merge patches; retries 409/429/5xx with backoff.

    Epoch reports that still fail after their retries are dropped (the next epoch sends the whole
    history again); a refusal, or an outcome that cannot be written, raises ``ReportFailed``.
    """

    name: str
    namespace: str
    connection: ClusterConnection
    attempts: int = 6
    outcome_attempts: int = 10  # the outcome is the one report that must land
    timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    _history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _seeded: bool = field(default=False, repr=False)
    _session: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def status_url(self) -> str:
        base = f"{self.connection.server}/apis/{GROUP}/{VERSION}"
        return f"{base}/namespaces/{self.namespace}/{PLURAL}/{self.name}/status"

    def _http(self) -> Any:
        if self._session is None:
            import requests  # deferred: only this reporter needs it

            s = requests.Session()
            # trust_env would let REQUESTS_CA_BUNDLE replace the cluster CA on every request; proxies
            # are applied explicitly instead (kubeconfig proxy-url, else *_PROXY/NO_PROXY like client-go).
            s.trust_env = False
            s.verify = (self.connection.ca_file or True) if self.connection.verify else False
            if self.connection.client_cert:
                s.cert = self.connection.client_cert
            if self.connection.proxy_url:
                s.proxies = {"https": self.connection.proxy_url, "http": self.connection.proxy_url}
            else:
                s.proxies = requests.utils.get_environ_proxies(self.connection.server)
            self._session = s
        return self._session

    def _send(self, method: str, body: Mapping[str, Any] | None) -> Any:
        headers = {"Accept": "application/json", **self.connection.headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
            data = _dumps(body)
        return self._http().request(
            method, self.status_url, data=data, headers=headers, timeout=self.timeout_s
        )

    def _refusal(self, method: str, resp: Any) -> str:
        try:
            detail = str(resp.json().get("message") or resp.reason)
        except (ValueError, AttributeError):
            detail = str(resp.reason)
        named = _FORBIDDEN_USER.search(detail)
        identity = (
            named.group(1) if named else token_subject(self.connection.bearer_token()) or "its credentials"
        )
        return refusal_message(method.lower(), self.namespace, self.name, resp.status_code, detail, identity)

    def _request(
        self, method: str, body: Mapping[str, Any] | None, attempts: int, *, must_land: bool = False
    ) -> Any:
        import requests

        delays = backoff_delays(attempts, base=self.backoff_base_s)
        last = ""
        for i in range(attempts):
            delay: float | None = None
            try:
                resp = self._send(method, body)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if resp.status_code < 300:
                    return resp.json() if resp.content else None
                if resp.status_code not in RETRY_STATUSES:
                    raise ReportFailed(self._refusal(method, resp))
                last = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
                delay = float(retry_after) if retry_after and retry_after.isdigit() else None
            if i < len(delays):
                time.sleep(delay if delay is not None else delays[i])
        if must_land:
            raise ReportFailed(
                f"trainer could not {method.lower()} trials/status {self.namespace}/{self.name}:"
                f" {last} after {attempts} attempts"
            )
        log.warning("%s %s failed after retries: %s", method, self.status_url, last)
        return None

    def preflight(self) -> None:
        """Read the Trial's status once before training, so a trainer that may not even read it
        stops before it spends any compute (refusals raise ``ReportFailed``)."""
        with self._lock:
            self._request("GET", None, self.attempts, must_land=True)

    def _seed(self, epoch: int) -> None:
        # A resumed trial continues the history the apiserver already holds, up to the resumed epoch.
        self._seeded = True
        current = self._request("GET", None, 3)
        status = (current or {}).get("status") or {}
        self._history = [h for h in status.get("history") or [] if int(h.get("epoch", 0)) < epoch]

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        with self._lock:
            if not self._seeded:
                self._seed(epoch)
            self._history.append({"epoch": epoch, "metrics": finite_metrics(metrics)})
            del self._history[:-_KEEP_INTERNAL]  # bounded_history thins what is sent
            self._request("PATCH", epoch_patch(epoch, metrics, self._history), self.attempts)

    def report_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self._request("PATCH", outcome_patch(outcome), self.outcome_attempts, must_land=True)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_session"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def make_reporter(spec: str, trial: str, namespace: str = "default") -> Reporter:
    """``jsonl:PATH`` | ``stdout`` | ``kubernetes`` (in-cluster config, else KUBECONFIG) | ``none``."""
    if spec.startswith("jsonl:"):
        return JsonlReporter(spec[len("jsonl:") :], trial)
    if spec == "stdout":
        return StdoutReporter(trial)
    if spec in ("kubernetes", "k8s"):
        return KubernetesReporter(trial, namespace, ClusterConnection.detect())
    if spec == "none":
        return NullReporter()
    raise ValueError(f"unknown reporter {spec!r}: jsonl:PATH, stdout, kubernetes or none")
