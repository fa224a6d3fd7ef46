"""Helpers for operator tests: a sync view of the API, the operator as a subprocess, a stand-in
for KubeRay's controller, and a recorder of every object ever created."""

from __future__ import annotations

import atexit
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from rig.controlplane import ControlPlane

GROUP_PATH = "/apis/training.campaign-operator.io/v1alpha1/namespaces/{ns}/{plural}"
RAY_PATH = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"
MERGE_PATCH = "application/merge-patch+json"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Kube:
    """The handful of API calls the tests make, straight over HTTP (no client of ours involved)."""

    def __init__(self, cp: ControlPlane):
        self.cp = cp
        self.session = cp.session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the cluster CA

    def call(
        self, method: str, path: str, body: Any = None, content_type: str | None = None
    ) -> requests.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        for _ in range(50):
            r = self.session.request(method, self.cp.server + path, json=body, headers=headers, timeout=60)
            # A CRD's storage answers 429 "storage is (re)initializing" for a moment after it is created.
            if r.status_code != 429:
                return r
            time.sleep(0.2)
        return r

    def ok(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        r = self.call(method, path, body, content_type)
        assert r.status_code < 300, f"{method} {path}: HTTP {r.status_code} {r.text[:2000]}"
        return r.json()

    # -- campaigns and trials
    def path(self, ns: str, plural: str, name: str = "") -> str:
        base = GROUP_PATH.format(ns=ns, plural=plural)
        return f"{base}/{name}" if name else base

    def create_campaign(self, ns: str, manifest: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "training.campaign-operator.io/v1alpha1",
            "kind": "TrainingCampaign",
            **manifest,
        }
        body.setdefault("metadata", {})["namespace"] = ns
        return self.ok("POST", self.path(ns, "trainingcampaigns"), body)

    def campaign(self, ns: str, name: str) -> dict[str, Any]:
        return self.ok("GET", self.path(ns, "trainingcampaigns", name))

    def trials(self, ns: str, campaign: str) -> list[dict[str, Any]]:
        items = self.ok("GET", self.path(ns, "campaigntrials") + f"?labelSelector=campaign={campaign}")[
            "items"
        ]
        return sorted(items, key=lambda t: t["metadata"]["name"])

    def rayjobs(self, ns: str, campaign: str | None = None) -> list[dict[str, Any]]:
        query = f"?labelSelector=campaign={campaign}" if campaign else ""
        return self.ok("GET", RAY_PATH.format(ns=ns) + query)["items"]

    def patch_rayjob_status(self, ns: str, name: str, status: dict[str, Any]) -> requests.Response:
        return self.call(
            "PATCH",
            f"{RAY_PATH.format(ns=ns)}/{name}/status",
            {"status": status},
            "application/merge-patch+json",
        )

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name={name}")[
            "items"
        ]

    def state(self, ns: str, name: str) -> str | None:
        return (self.campaign(ns, name).get("status") or {}).get("state")


def condition(campaign: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conds = (campaign.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), None)


def operator_args(kubeconfig: Path | str, namespace: str, metrics_port: int, liveness_port: int) -> list[str]:
    """How the tests start `campaign-operator`: one namespace, loopback ports, a 5 s resync."""
    return [
        sys.executable,
        "-m",
        "campaign_operator.k8s.main",
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        namespace,
        "--metrics-port",
        str(metrics_port),
        "--metrics-addr",
        "127.0.0.1",
        "--liveness",
        f"http://127.0.0.1:{liveness_port}/healthz",
        "--resync-seconds",
        "5",
    ]


@dataclass
class OperatorProcess:
    """`campaign-operator` in its own process, as it runs in a cluster."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    liveness_port: int
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[str] = field(default_factory=list)

    def start(self, wait: bool = True) -> OperatorProcess:
        assert self.popen is None or self.popen.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start #{self.starts}\n".encode())
            self.popen = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            wait_for(self.alive, 60, f"operator liveness on :{self.liveness_port}\n{self.log_tail()}", 0.2)
        return self

    def alive(self) -> bool:
        if self.popen is None or self.popen.poll() is not None:
            pytest.fail(f"operator exited with {self.popen and self.popen.returncode}\n{self.log_tail()}")
        try:
            return (
                requests.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200
            )
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers, exactly what a node failure or OOM kill does."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            _wait_or_kill(self.popen)

    def stop_in_background(self) -> None:
        """At a fixture's teardown: SIGTERM, as `stop` sends, without waiting for the exit. With
        leader election on, the operator exits ~5 s after its cleanup (kopf waits that long for its
        own stop-flag waiter, then releases the Lease): nothing a test reads, so the next test need
        not wait for it. `reap_stopped` (atexit) waits for every one, killing what outlives 20 s."""
        _reap(block=False)
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            _STOPPING.append(self.popen)

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


_STOPPING: list[subprocess.Popen[bytes]] = []
"""Operators sent SIGTERM by `stop_in_background` and not reaped yet."""


def _wait_or_kill(popen: subprocess.Popen[bytes]) -> None:
    try:
        popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)


def _reap(block: bool) -> None:
    for popen in list(_STOPPING):
        if block:
            _wait_or_kill(popen)
        if popen.poll() is not None:
            _STOPPING.remove(popen)


@atexit.register
def reap_stopped() -> None:
    _reap(block=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def kuberay_status(phase: str, name: str) -> dict[str, Any]:
    """RayJob status as KubeRay v1.7's controller writes it at each step (rayjob_controller.go)."""
    cluster = {"rayClusterName": f"{name}-raycluster-abcde"}
    running = {**cluster, "jobId": f"{name}-job", "dashboardURL": f"{name}-head-svc:8265"}
    steps: dict[str, dict[str, Any]] = {
        "Initializing": {"jobDeploymentStatus": "Initializing", "startTime": _now(), **cluster},
        "Running": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", **running},
        "Succeeded": {
            "jobDeploymentStatus": "Complete",
            "jobStatus": "SUCCEEDED",
            "endTime": _now(),
            "succeeded": 1,
            **running,
        },
        "AppFailed": {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "FAILED",
            "reason": "AppFailed",
            "message": "Job entrypoint command failed with exit code 1",
            "endTime": _now(),
            "failed": 1,
            **running,
        },
        # KubeRay leaves jobStatus RUNNING here (kuberay#2314): only jobDeploymentStatus/reason tell.
        "DeadlineExceeded": {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "RUNNING",
            "reason": "DeadlineExceeded",
            "message": "The RayJob has passed the activeDeadlineSeconds.",
            "endTime": _now(),
            **running,
        },
        "SubmissionFailed": {
            "jobDeploymentStatus": "Failed",
            "reason": "SubmissionFailed",
            "message": "Job submission has failed. Reason: BackoffLimitExceeded",
            "endTime": _now(),
            **cluster,
        },
        # Kueue preempted it: KubeRay deleted the cluster and reset the job fields.
        "Suspended": {"jobDeploymentStatus": "Suspended", "jobStatus": "", "rayClusterName": "", "jobId": ""},
    }
    return steps[phase]


class RecorderFailed(AssertionError):
    """The recorder's watch hit something it cannot ride out: what a test read from it is not
    trustworthy, so reading it fails."""


class AddedRecorder:
    """Watches a collection and records every object ever ADDED (name -> set of uids).

    An object created twice (deleted and recreated) shows up as one name with two uids.

    The apiserver may go away under it (SIGSTOP, SIGKILL + restart): a broken or timed-out watch,
    a 5xx while it comes back, or `410 Gone` for a resourceVersion it no longer has make it relist
    (recording every object the list holds, so what was created meanwhile is not lost) and watch
    again from the list's resourceVersion, retrying until the apiserver answers. Only an object
    created *and* deleted while no watch was open can be missed. Anything else (an unexpected
    status, an event it cannot read, a bug) is recorded in `errors` and ends the thread; from then
    on `added`, `total()`, `duplicates()` and `close()` raise RecorderFailed, so a test that counted
    on the recorder fails loudly instead of passing on a silently stale count.
    """

    RETRY_STATUS = (429, 500, 502, 503, 504)

    def __init__(self, kube: Kube, path: str, read_timeout: float = 40.0):
        """read_timeout: a watch that delivers nothing (not even a bookmark) this long is taken as
        broken and the recorder relists."""
        import threading

        self.kube, self.path, self.read_timeout = kube, path, read_timeout
        self._added: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self.disconnects: list[str] = []
        """Each time the watch broke or could not be (re)opened, why (the apiserver went away)."""
        self.relists = 0
        self.stop = threading.Event()
        self.session = kube.cp.session()
        self.session.trust_env = False
        self.version = self._first_list()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"recorder {path}")
        self.thread.start()

    # -- what tests read
    def check(self) -> None:
        if self.errors:
            raise RecorderFailed(f"the watch recorder of {self.path} failed: {'; '.join(self.errors)}")
        if not self.thread.is_alive() and not self.stop.is_set():
            raise RecorderFailed(f"the watch recorder of {self.path} stopped without a reason")

    @property
    def added(self) -> dict[str, set[str]]:
        self.check()
        with self._lock:
            return {name: set(uids) for name, uids in self._added.items()}

    def total(self) -> int:
        return sum(len(uids) for uids in self.added.values())

    def duplicates(self) -> dict[str, set[str]]:
        return {n: u for n, u in self.added.items() if len(u) > 1}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=45)
        self.check()

    # -- the watch
    def _record(self, obj: dict[str, Any]) -> None:
        with self._lock:
            self._added.setdefault(obj["metadata"]["name"], set()).add(obj["metadata"]["uid"])

    def _first_list(self, timeout: float = 30.0) -> str:
        """Retried while the apiserver answers 429/5xx (a new CRD's storage answers 429 for a
        moment); then the test fails here, not later."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._relist()
            except (requests.RequestException, _WatchBroken) as e:
                if time.monotonic() > deadline:
                    raise RecorderFailed(f"cannot list {self.path}: {e}") from e
                time.sleep(0.2)

    def _relist(self) -> str:
        r = self.session.get(f"{self.kube.cp.server}{self.path}", timeout=(5, 30))
        if r.status_code in self.RETRY_STATUS:
            raise _WatchBroken(f"list: HTTP {r.status_code}")
        if r.status_code != 200:
            raise RecorderFailed(f"list {self.path}: HTTP {r.status_code} {r.text[:300]}")
        listing = r.json()
        for item in listing["items"]:
            self._record(item)
        self.relists += 1
        return str(listing["metadata"]["resourceVersion"])

    def _run(self) -> None:
        try:
            self._watch_forever()
        except BaseException as e:  # surfaced by check(): never a thread that dies unnoticed
            import traceback

            self.errors.append(f"{e!r}\n{traceback.format_exc(limit=5)}")

    def _watch_forever(self) -> None:
        relist = False
        backoff = 0.2
        while not self.stop.is_set():
            try:
                if relist:
                    self.version = self._relist()
                    relist = False
                self._watch_once()
                backoff = 0.2
            except (requests.RequestException, _WatchBroken) as e:
                # The apiserver is away or restarting: list again once it answers.
                self.disconnects.append(f"{type(e).__name__}: {str(e)[:200]}")
                relist = True
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _watch_once(self) -> None:
        import json

        sep = "&" if "?" in self.path else "?"
        query = f"watch=1&resourceVersion={self.version}&timeoutSeconds=30&allowWatchBookmarks=true"
        url = f"{self.kube.cp.server}{self.path}{sep}{query}"
        with self.session.get(url, stream=True, timeout=(5, self.read_timeout)) as r:
            if r.status_code == 410 or r.status_code in self.RETRY_STATUS:
                raise _WatchBroken(f"watch: HTTP {r.status_code}")
            if r.status_code != 200:
                raise RecorderFailed(f"watch {self.path}: HTTP {r.status_code} {r.text[:300]}")
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError as e:  # a line cut off when the connection broke
                    raise _WatchBroken(f"unreadable event ({e})") from None
                obj = event["object"]
                if event["type"] == "ERROR":
                    code = obj.get("code")
                    if code == 410 or code in self.RETRY_STATUS:  # Gone: too old a resourceVersion
                        raise _WatchBroken(f"watch ERROR {code}: {obj.get('message', '')[:200]}")
                    raise RecorderFailed(f"watch {self.path}: ERROR event {obj}")
                self.version = obj["metadata"]["resourceVersion"]
                if event["type"] == "ADDED":
                    self._record(obj)


class _WatchBroken(Exception):
    """The watch ended in a way the recorder rides out by relisting."""


def trainer_verdict(kube: Kube, ns: str, trial: str) -> None:
    """What a trainer writes into its Trial's status when it finished, before its job ends: without
    it, a job that succeeded is a failed attempt (OutcomeNotReported)."""
    from campaign_trainer.outcome import Outcome, now_rfc3339
    from campaign_trainer.reporters import outcome_patch

    verdict = Outcome(trial, "Succeeded", "Completed", "trained 1 epoch", completion_time=now_rfc3339())
    kube.ok("PATCH", kube.path(ns, "campaigntrials", trial) + "/status", outcome_patch(verdict), MERGE_PATCH)


class FakeKubeRay:
    """Plays KubeRay's controller for the RayJobs of one namespace: each new RayJob goes
    Initializing -> Running, then after `run_seconds` ends as decided by `verdict(job)`:
    "Succeeded" (its trainer's verdict first) or "AppFailed". (KubeRay itself needs real pods and a
    Ray dashboard.)"""

    def __init__(
        self,
        kube: Kube,
        ns: str,
        verdict: Callable[[dict[str, Any]], str],
        run_seconds: float = 1.0,
        outages: bool = False,
    ):
        """outages: the apiserver goes away on purpose; like KubeRay, retry instead of failing."""
        import threading

        self.kube, self.ns, self.verdict, self.run_seconds = kube, ns, verdict, run_seconds
        self.outages = outages
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            try:
                self._step()
            except (requests.RequestException, AssertionError) as e:
                if not self.outages:
                    self.errors.append(repr(e))
            except Exception as e:  # surfaced by close()
                self.errors.append(repr(e))

    def _patch(self, name: str, status: dict[str, Any]) -> None:
        r = self.kube.patch_rayjob_status(self.ns, name, status)
        assert r.status_code < 300, f"PATCH rayjob {name}/status: HTTP {r.status_code} {r.text[:300]}"

    def _step(self) -> None:
        for job in self.kube.rayjobs(self.ns):
            name, uid = job["metadata"]["name"], job["metadata"]["uid"]
            if job["metadata"].get("deletionTimestamp"):
                continue
            deployment = (job.get("status") or {}).get("jobDeploymentStatus")
            if uid not in self.seen:
                # Step by step from what the job says, so a write lost to an outage is made again.
                if deployment is None:
                    self._patch(name, kuberay_status("Initializing", name))
                self._patch(name, kuberay_status("Running", name))
                self.seen[uid] = time.monotonic()
            elif deployment == "Running" and time.monotonic() - self.seen[uid] > self.run_seconds:
                verdict = self.verdict(job)
                if verdict == "Succeeded" and not self._trainer_reported(job):
                    continue
                self._patch(name, kuberay_status(verdict, name))

    def _trainer_reported(self, job: dict[str, Any]) -> bool:
        """The job's trainer reports its verdict once the operator has recorded the launch of its
        attempt: a real Ray job takes far longer than an operator restart, this one 1 s."""
        labels = job["metadata"]["labels"]
        status = (
            self.kube.ok("GET", self.kube.path(self.ns, "campaigntrials", labels["trial"])).get("status")
            or {}
        )
        if status.get("state") != "Running" or str(status.get("attempt")) != labels["attempt"]:
            return False
        trainer_verdict(self.kube, self.ns, labels["trial"])
        return True

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.errors, self.errors
