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
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

import yaml

from campaign_operator.api.common import Objective
from campaign_operator.api.trial import TrialStatus
from campaign_operator.lifecycle import epoch_reported, outcome_reported, retry, wire
from campaign_operator.lifecycle.bounds import METRICS_DROPPED
from campaign_trainer.outcome import Outcome

if TYPE_CHECKING:  # the client costs ~0.7 s to import: only the Kubernetes reporter loads it
    from kubernetes.client import Configuration, CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

log = logging.getLogger("campaign_trainer.reporters")


class Reporter(Protocol):
    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...
    def report_outcome(self, outcome: Outcome) -> None: ...


def outcome_line(outcome: Outcome, time_: str | None = None) -> dict[str, Any]:
    line = wire.outcome_line(outcome.trial, outcome.to_status(), time_)
    if outcome.resumed_from_epoch is not None:
        line["resumedFromEpoch"] = outcome.resumed_from_epoch
    return line


@dataclass
class JsonlReporter:
    """Appends one JSON object per line; each line is written with one ``write`` on an O_APPEND file,
    so concurrent trials may share a file and a reader never sees a torn line."""

    path: str
    trial: str

    def _write(self, obj: Mapping[str, Any]) -> None:
        try:
            wire.append_line(self.path, obj)
        except OSError as exc:
            log.warning("cannot write progress to %s: %s", self.path, exc)

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._write(wire.epoch_line(self.trial, epoch, metrics))

    def report_outcome(self, outcome: Outcome) -> None:
        self._write(outcome_line(outcome))


@dataclass
class StdoutReporter:
    """The same JSON lines on stdout (pod logs, ``ray job logs``)."""

    trial: str
    stream: TextIO | None = None

    def _write(self, obj: Mapping[str, Any]) -> None:
        out = self.stream or sys.stdout
        out.write(wire.dumps(obj) + "\n")
        out.flush()

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._write(wire.epoch_line(self.trial, epoch, metrics))

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


MEASURED = {"epoch", "metrics", "history", "best", "warnings"}
VERDICT = MEASURED | {"state", "reason", "message", "checkpoint", "outputs", "completionTime"}


def _fields(status: TrialStatus, fields: set[str]) -> dict[str, Any]:
    # No warnings is no key (a merge patch then removes an earlier list), not an empty list.
    wire_form = status.model_dump(by_alias=True, mode="json")
    return {k: v for k, v in wire_form.items() if k in fields and not (k == "warnings" and not v)}


def epoch_patch(before: TrialStatus, after: TrialStatus) -> dict[str, Any]:
    """JSON merge patch for the status subresource after an epoch: what the lifecycle's
    `epoch_reported` measured (the embedded runner folds the same transition from progress lines),
    sent whole, with nulls for what it no longer holds (`wire.replacing`).

    No ``state``, ``attempt`` or ``startTime``: the lifecycle belongs to the shell that launched the
    attempt, and a late epoch report must not bring a trial it has already stopped back to Running.
    """
    return {"status": wire.replacing(_fields(before, MEASURED), _fields(after, MEASURED))}


def outcome_patch(outcome: Outcome) -> dict[str, Any]:
    """The verdict as the trainer states it (`Outcome.to_status`), unbounded and unjudged: what an
    older trainer sent. The Kubernetes reporter sends `verdict_patch`."""
    return {"status": outcome.to_status()}


def verdict_patch(
    before: TrialStatus | None,
    outcome: Outcome,
    objective: Objective,
    watched: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """JSON merge patch for the trainer's verdict: the lifecycle's `outcome_reported` over the status
    the reporter knows, as the embedded runner folds the same outcome line, so the Trial gets the same
    bounded status (at most METRICS_LIMIT metrics per report, a history within the byte bound) and a
    success without the objective metric is Failed/MetricsUnavailable. The completion time is the
    trainer's stamp. `before` None (the status could not be read): only what the verdict says is
    sent, so a merge patch keeps what an earlier attempt reported."""
    said = outcome.to_status()
    when = now or datetime.now(UTC).replace(microsecond=0)  # metav1.Time precision, as the shells
    after = outcome_reported(before or TrialStatus(), said, when, objective, watched)
    new = _fields(after, VERDICT)
    if said.get("completionTime"):
        new["completionTime"] = said["completionTime"]
    if before is None:
        return {"status": {k: v for k, v in new.items() if k in said or k == "warnings"}}
    return {"status": wire.replacing(_fields(before, VERDICT), new)}


RETRY_STATUSES = retry.RETRY_STATUSES | {409}  # a status write racing another writer

Verb = Literal["get", "patch"]


class ReportFailed(RuntimeError):
    """A status write that did not land and must not be shrugged off (see the module docstring)."""


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
            f"trainer may not {verb} {wire.TRIALS}/status in namespace {namespace} as {identity} (403):"
            " bind the campaign-trainer role"
        )
    if code == 401:
        return (
            f"trainer could not authenticate to the apiserver as {identity} (401): its token is missing,"
            " expired or not trusted"
        )
    return f"trainer could not {verb} {wire.TRIALS}/status {namespace}/{name} ({code}): {detail}"


@dataclass(frozen=True)
class ClusterConnection:
    """Where the apiserver's address and credentials come from, resolved by the official ``kubernetes``
    client: the pod's ServiceAccount (its rotating token re-read), else a kubeconfig (tokens, client
    certificates, inline or file CAs, ``proxy-url``, exec and auth-provider plugins). Only this
    description travels to Ray workers, never a credential: each process that reports loads it
    again (``configuration()``)."""

    kubeconfig: str | None = None  # a path or a KUBECONFIG-style list; None: in-cluster
    context: str | None = None  # None: the kubeconfig's current-context

    def configuration(self) -> Configuration:
        from kubernetes import config
        from kubernetes.client import Configuration

        cfg = Configuration()
        if self.kubeconfig is None:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=self.kubeconfig,
                context=self.context,
                client_configuration=cfg,
                persist_config=False,  # a trainer never rewrites the user's kubeconfig
            )
        cfg.retries = False  # one bounded retry policy, the reporter's: urllib3 adds none of its own
        return cfg

    @classmethod
    def in_cluster(cls) -> ClusterConnection | None:
        from kubernetes.config import ConfigException

        found = cls()
        try:
            found.configuration()
        except ConfigException:  # not in a pod, or no ServiceAccount token mounted
            return None
        return found

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> ClusterConnection:
        """The kubeconfig at ``path``, else $KUBECONFIG, else ~/.kube/config; loaded once here so a
        broken one fails before training (raises the client's ``ConfigException``)."""
        paths = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        absolute = os.pathsep.join(
            str(Path(p).expanduser().resolve()) for p in paths.split(os.pathsep) if p
        )  # a Ray worker may run in another directory
        found = cls(kubeconfig=absolute, context=context)
        found.configuration()
        return found

    @classmethod
    def detect(cls) -> ClusterConnection:
        from kubernetes.config import ConfigException

        found = cls.in_cluster()
        if found is not None:
            return found
        try:
            return cls.from_kubeconfig()
        except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
            raise ReportFailed(
                "trainer cannot reach the apiserver: no ServiceAccount token in this pod and no usable"
                f" kubeconfig ({_load_error(exc)})"
            ) from None


def _load_error(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):  # its text quotes the kubeconfig's lines: maybe a token
        mark = exc.problem_mark
        return f"{type(exc).__name__}: {exc.problem}" + (f" at line {mark.line + 1}" if mark else "")
    if isinstance(exc, yaml.YAMLError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _bearer_token(cfg: Configuration) -> str | None:
    from kubernetes.config import ConfigException

    try:  # runs the client's refresh hook: a token file re-read, or a credential plugin
        value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
    except (ConfigException, OSError):  # only costs the account's name in the message
        return None
    return value.split(" ", 1)[-1] if value else None  # "Bearer <token>"


def _api_detail(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason)


@dataclass
class KubernetesReporter:
    """Patches ``trials/<name>/status`` with JSON merge patches through the ``kubernetes`` client;
    retries 409/429/5xx and connection errors with backoff.

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
    objective: Objective = field(default_factory=Objective)
    """Ranks the epochs for ``best``, as the shells do, and is kept first of a report's metrics."""
    watched: tuple[str, ...] = ()
    """The stop rules' and early stopping's metrics (`bounds.watched_metrics`): kept next."""
    _status: TrialStatus | None = field(default=None, repr=False)
    _api: CustomObjectsApi | None = field(default=None, repr=False)
    _config: Configuration | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def target(self) -> str:
        return f"{wire.TRIALS}/status {self.namespace}/{self.name}"

    def _objects(self) -> CustomObjectsApi:
        if self._api is None:
            from kubernetes.client import ApiClient, CustomObjectsApi
            from kubernetes.config import ConfigException

            try:
                self._config = self.connection.configuration()
            except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
                raise ReportFailed(  # e.g. a Ray worker on a host without the kubeconfig or its plugin
                    f"trainer cannot reach the apiserver from this process ({_load_error(exc)})"
                ) from None
            self._api = CustomObjectsApi(ApiClient(self._config))
        return self._api

    def _send(self, verb: Verb, body: Mapping[str, Any] | None) -> object:
        api = self._objects()
        where = (wire.GROUP, wire.VERSION, self.namespace, wire.TRIALS, self.name)
        if verb == "get":
            return api.get_namespaced_custom_object_status(*where, _request_timeout=self.timeout_s)
        return api.patch_namespaced_custom_object_status(
            *where,
            dict(body or {}),
            _request_timeout=self.timeout_s,
            _content_type="application/merge-patch+json",
        )

    def _refusal(self, verb: Verb, exc: ApiException) -> str:
        detail = _api_detail(exc)
        named = _FORBIDDEN_USER.search(detail)
        token = _bearer_token(self._config) if self._config is not None else None
        identity = named.group(1) if named else token_subject(token) or "its credentials"
        return refusal_message(verb, self.namespace, self.name, int(exc.status or 0), detail, identity)

    def _request(
        self, verb: Verb, body: Mapping[str, Any] | None, attempts: int, *, must_land: bool = False
    ) -> object:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException
        from urllib3.exceptions import HTTPError

        delays = retry.backoff_delays(attempts, base=self.backoff_base_s)
        last = ""
        for i in range(attempts):
            delay: float | None = None
            try:
                return self._send(verb, body)
            except ApiException as exc:
                code = int(exc.status or 0)
                if code and code not in RETRY_STATUSES:
                    raise ReportFailed(self._refusal(verb, exc)) from None
                # status 0: the client's wrapping of a TLS failure, retried like any connection error
                last = f"HTTP {code}" if code else str(exc.reason or "").split("\n", 1)[0]
                delay = retry.retry_after(exc.headers, delays[i]) if i < len(delays) else None
            except (HTTPError, ConfigException) as exc:  # connection errors; a credential plugin's failure
                last = type(exc).__name__  # never the message: it may quote a plugin's output
            if i < len(delays):
                time.sleep(delay if delay is not None else delays[i])
        if must_land:
            raise ReportFailed(f"trainer could not {verb} {self.target}: {last} after {attempts} attempts")
        log.warning("%s %s failed after retries: %s", verb.upper(), self.target, last)
        return None

    def preflight(self) -> None:
        """Read the Trial's status once before training, so a trainer that may not even read it
        stops before it spends any compute (refusals raise ``ReportFailed``)."""
        with self._lock:
            self._request("get", None, self.attempts, must_land=True)

    def _seed(self) -> TrialStatus | None:
        """What the apiserver holds (a resumed or retried trial continues it: epochs it repeats are
        replaced); None when it cannot be read."""
        current = self._request("get", None, 3)
        if not isinstance(current, dict):
            return None
        try:
            return TrialStatus.model_validate(current.get("status") or {})
        except ValueError:  # unreadable: start afresh rather than not report
            return TrialStatus()

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        with self._lock:
            seen = self._status or self._seed() or TrialStatus()
            self._status = epoch_reported(seen, epoch, metrics, self.objective, self.watched)
            _log_drops(self.target, seen, self._status)
            self._request("patch", epoch_patch(seen, self._status), self.attempts)

    def report_outcome(self, outcome: Outcome) -> None:
        """The verdict through the lifecycle's `outcome_reported` (`verdict_patch`): bounded, and a
        success without the objective metric is recorded as the failure it is."""
        with self._lock:
            seen = self._status
            if seen is None:
                try:
                    seen = self._seed()
                except ReportFailed:  # may not read it: the patch still tries, and says so if refused
                    seen = None
            body = verdict_patch(seen, outcome, self.objective, self.watched)
            self._request("patch", body, self.outcome_attempts, must_land=True)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_api"] = None  # connection pools and credential hooks stay in this process
        state["_config"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _log_drops(target: str, before: TrialStatus, after: TrialStatus) -> None:
    """One log line when a report first drops metrics (the status's warning says it every epoch)."""
    had = any(w.reason == METRICS_DROPPED for w in before.warnings)
    drop = next((w for w in after.warnings if w.reason == METRICS_DROPPED), None)
    if drop is not None and not had:
        log.warning("%s: %s", target, drop.message)


def make_reporter(
    spec: str,
    trial: str,
    namespace: str = "default",
    objective: Objective | None = None,
    watched: Sequence[str] = (),
) -> Reporter:
    """``jsonl:PATH`` | ``stdout`` | ``kubernetes`` (in-cluster config, else KUBECONFIG) | ``none``."""
    if spec.startswith("jsonl:"):
        return JsonlReporter(spec[len("jsonl:") :], trial)
    if spec == "stdout":
        return StdoutReporter(trial)
    if spec in ("kubernetes", "k8s"):
        return KubernetesReporter(
            trial,
            namespace,
            ClusterConnection.detect(),
            objective=objective or Objective(),
            watched=tuple(watched),
        )
    if spec == "none":
        return NullReporter()
    raise ValueError(f"unknown reporter {spec!r}: jsonl:PATH, stdout, kubernetes or none")
