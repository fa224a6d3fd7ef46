"""The Kubernetes reporter against its contract, over real HTTP: a local server records every request
(method, path, headers, JSON body) and answers from a script. The real-apiserver test follows once the
control-plane rig lands."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator.api.trial import TrialStatus
from campaign_trainer.harness import run_trial
from campaign_trainer.outcome import Outcome
from campaign_trainer.reporters import (
    ClusterConnection,
    KubernetesReporter,
    ReportFailed,
    outcome_patch,
    verdict_patch,
)

from .conftest import trial

pytestmark = pytest.mark.integration

STATUS_PATH = "/apis/training.campaign-operator.io/v1alpha1/namespaces/team-a/campaigntrials/t-1/status"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased: HTTP header names are case-insensitive
    body: Any


@dataclass
class FakeApiserverState:
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)  # consumed in order
    current: dict[str, Any] = field(default_factory=dict)  # what GET returns once the script is empty


class Handler(BaseHTTPRequestHandler):
    state: FakeApiserverState

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.state.requests.append(
            Recorded(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                json.loads(raw) if raw else None,
            )
        )
        code, headers, body = self.state.script.pop(0) if self.state.script else (200, {}, self.state.current)
        data = json.dumps(body).encode()
        self.send_response(code)
        for k, v in {"Content-Type": "application/json", **headers}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def apiserver() -> Iterator[tuple[str, FakeApiserverState]]:
    state = FakeApiserverState()
    handler = type("H", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def reporter_via_kubeconfig(server: str, tmp_path: Path, **kw: Any) -> KubernetesReporter:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "rig",
        "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": "trainer"}}],
        "clusters": [{"name": "rig", "cluster": {"server": server}}],
        "users": [{"name": "trainer", "user": {"token": "tok-123"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return KubernetesReporter("t-1", "team-a", ClusterConnection.from_kubeconfig(str(path)), **kw)


def test_epoch_patch_continues_existing_history(
    apiserver: tuple[str, FakeApiserverState], tmp_path: Path
) -> None:
    url, state = apiserver
    state.current = {
        "status": {
            "state": "Running",
            "startTime": "2026-01-01T00:00:00Z",
            # a resumed trial: epochs 1-2 reported by the previous attempt, 3 lost with the pod
            "history": [{"epoch": e, "metrics": {"loss": 1.0 / e}} for e in (1, 2, 3)],
        }
    }
    rep = reporter_via_kubeconfig(url, tmp_path)
    rep.report_epoch(3, {"loss": 0.3, "val_loss": float("nan")})
    rep.report_epoch(4, {"loss": 0.25})
    get, patch3, patch4 = state.requests
    assert (get.method, get.path) == ("GET", STATUS_PATH)
    assert (patch3.method, patch3.path) == ("PATCH", STATUS_PATH)
    assert patch3.headers["content-type"] == "application/merge-patch+json"
    assert patch3.headers["authorization"] == "Bearer tok-123"
    assert patch3.body == {
        "status": {
            "epoch": 3,
            "metrics": {"loss": 0.3},
            "history": [
                {"epoch": 1, "metrics": {"loss": 1.0}},
                {"epoch": 2, "metrics": {"loss": 0.5}},
                {"epoch": 3, "metrics": {"loss": 0.3}},
            ],
            "best": None,  # no finite val_loss yet: the objective ranks nothing
        }
    }
    assert [h["epoch"] for h in patch4.body["status"]["history"]] == [1, 2, 3, 4]
    assert "startTime" not in patch4.body["status"]


def test_retries_409_429_5xx_then_succeeds(apiserver: tuple[str, FakeApiserverState], tmp_path: Path) -> None:
    url, state = apiserver
    state.script = [
        (409, {}, {"kind": "Status", "reason": "Conflict"}),
        (429, {"Retry-After": "0"}, {"kind": "Status", "reason": "TooManyRequests"}),
        (503, {}, {}),
        (200, {}, {}),
    ]
    rep = reporter_via_kubeconfig(url, tmp_path, backoff_base_s=0.01)
    rep._status = TrialStatus()  # skip the status GET: this test is about the PATCH retries
    o = Outcome(
        trial="t-1",
        state="Succeeded",
        reason="Completed",
        epoch=2,
        metrics={"val_loss": 0.1},
        completion_time="2026-01-01T00:05:00Z",
    )
    t0 = time.monotonic()
    rep.report_outcome(o)
    assert time.monotonic() - t0 < 5
    assert [r.method for r in state.requests] == ["PATCH"] * 4
    assert all(r.body == verdict_patch(TrialStatus(), o, rep.objective) for r in state.requests)


def test_a_refusal_is_fatal_but_an_unreachable_epoch_is_not(
    apiserver: tuple[str, FakeApiserverState], tmp_path: Path
) -> None:
    url, state = apiserver
    state.script = [
        (422, {}, {"kind": "Status", "reason": "Invalid", "message": "status.epoch: Invalid value"})
    ]
    rep = reporter_via_kubeconfig(url, tmp_path, backoff_base_s=0.01)
    rep._status = TrialStatus()
    refused = r"could not patch campaigntrials/status team-a/t-1 \(422\): status.epoch"
    with pytest.raises(ReportFailed, match=refused):
        rep.report_epoch(1, {"loss": 1.0})
    assert len(state.requests) == 1  # never retried: the same body gets the same answer
    dead = reporter_via_kubeconfig("http://127.0.0.1:9", tmp_path, backoff_base_s=0.01, attempts=2)
    dead._status = TrialStatus()
    dead.report_epoch(1, {"loss": 1.0})  # a lost progress line: the next epoch sends the history again
    lost = reporter_via_kubeconfig("http://127.0.0.1:9", tmp_path, backoff_base_s=0.01, outcome_attempts=2)
    with pytest.raises(ReportFailed, match="after 2 attempts"):
        lost.report_outcome(Outcome(trial="t-1", state="Succeeded", reason="Completed"))


def test_the_token_is_never_logged_or_quoted(
    apiserver: tuple[str, FakeApiserverState], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, state = apiserver
    caplog.set_level(logging.DEBUG)  # the client's and urllib3's debug lines too
    unauthorized = {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized"}
    state.script = [(503, {}, {}), (503, {}, {}), (401, {}, unauthorized)]
    rep = reporter_via_kubeconfig(url, tmp_path, backoff_base_s=0.01, attempts=2)
    rep._status = TrialStatus()
    rep.report_epoch(1, {"loss": 1.0})  # lost after two 503s: a warning, not an error
    with pytest.raises(ReportFailed) as refused:
        rep.report_outcome(Outcome(trial="t-1", state="Succeeded", reason="Completed"))
    assert str(refused.value) == (
        "trainer could not authenticate to the apiserver as its credentials (401): its token is missing,"
        " expired or not trusted"
    )
    assert "PATCH campaigntrials/status team-a/t-1 failed after retries: HTTP 503" in caplog.text
    assert all(r.headers["authorization"] == "Bearer tok-123" for r in state.requests)  # it was sent
    assert "tok-123" not in caplog.text


def test_a_refused_epoch_stops_training_and_the_refusal_reaches_the_caller(
    apiserver: tuple[str, FakeApiserverState], tmp_path: Path
) -> None:
    url, state = apiserver
    forbidden = {
        "kind": "Status",
        "reason": "Forbidden",
        "message": 'campaigntrials.training.campaign-operator.io "t-1" is forbidden: User'
        ' "system:serviceaccount:team-a:campaign-trainer" cannot patch resource "campaigntrials/status"'
        ' in API group "training.campaign-operator.io" in the namespace "team-a"',
    }
    state.script = [(200, {}, {"status": {}}), *[(403, {}, forbidden)] * 2]
    rep = reporter_via_kubeconfig(url, tmp_path)
    doc = trial("t-1", "regression", epochs=20, batchSize=128, dataset={"synthetic": {"samples": 256}})
    doc["metadata"]["namespace"] = "team-a"
    with pytest.raises(ReportFailed) as refused:
        run_trial(doc, rep)
    assert str(refused.value) == (
        "trainer may not patch campaigntrials/status in namespace team-a as"
        " system:serviceaccount:team-a:campaign-trainer (403): bind the campaign-trainer role"
    )
    # GET (seed), the refused epoch-1 patch, the refused outcome (Failed/ReportFailed): no epoch 2.
    sent = [(r.method, (r.body or {}).get("status", {})) for r in state.requests]
    assert [m for m, _ in sent] == ["GET", "PATCH", "PATCH"]
    assert sent[1][1]["epoch"] == 1
    assert (sent[2][1]["state"], sent[2][1]["reason"]) == ("Failed", "ReportFailed")


def test_run_trial_patches_every_epoch_then_the_outcome(
    apiserver: tuple[str, FakeApiserverState], tmp_path: Path
) -> None:
    url, state = apiserver
    state.current = {"status": {"state": "Pending"}}
    rep = reporter_via_kubeconfig(url, tmp_path)
    doc = trial("t-1", "regression", epochs=2, batchSize=128, dataset={"synthetic": {"samples": 512}})
    doc["metadata"]["namespace"] = "team-a"
    out = run_trial(doc, rep)
    methods = [(r.method, (r.body or {}).get("status", {}).get("state")) for r in state.requests]
    # Epoch reports carry no state (the operator owns the lifecycle); only the outcome does.
    assert methods == [("GET", None), ("PATCH", None), ("PATCH", None), ("PATCH", "Succeeded")]
    final = state.requests[-1].body["status"]
    said = outcome_patch(out)["status"]  # the verdict, sent through the lifecycle's outcome_reported
    assert {k: final[k] for k in said} == said
    assert final["epoch"] == 2 and [h["epoch"] for h in final["history"]] == [1, 2]
    assert final["best"]["epoch"] in (1, 2) and final["completionTime"].endswith("Z")
