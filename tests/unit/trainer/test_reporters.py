"""Reporters' wire formats: JSON lines and the Trial status merge-patch bodies."""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from pathlib import Path

import pytest
import yaml

from campaign_operator.api.common import Objective
from campaign_operator.api.trial import TrialStatus
from campaign_operator.lifecycle import epoch_reported
from campaign_trainer.outcome import HISTORY_LIMIT, Outcome, error_message
from campaign_trainer.reporters import (
    ClusterConnection,
    JsonlReporter,
    KubernetesReporter,
    ReportFailed,
    StdoutReporter,
    epoch_patch,
    make_reporter,
    outcome_patch,
    refusal_message,
    token_subject,
    verdict_patch,
)

pytestmark = pytest.mark.unit

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LIFECYCLE = {"attempt", "startTime", "executorRef", "retryAfter"}


def outcome(**kw: object) -> Outcome:
    base: dict[str, object] = {
        "trial": "t-1",
        "state": "Stopped",
        "reason": "VarianceCollapse",
        "message": "collapsed",
        "epoch": 3,
        "metrics": {"variance_ratio": 0.01, "val_loss": math.nan},
        "best": {"epoch": 1, "metrics": {"val_loss": 1.0, "r2": math.inf}},
        "history": [{"epoch": e, "metrics": {"loss": 1.0 / e}} for e in (1, 2, 3)],
        "checkpoint": "s3://b/p/t-1/epoch-000003.ckpt",
        "completion_time": "2026-01-01T00:01:00Z",
    }
    base.update(kw)
    return Outcome(**base)  # type: ignore[arg-type]


def test_jsonl_lines(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "progress.jsonl"
    r = JsonlReporter(str(path), "t-1")
    r.report_epoch(1, {"loss": 0.5, "val_loss": math.nan, "lr": 1e-3})
    r.report_epoch(2, {"loss": 0.25, "val_loss": 0.3, "lr": 1e-3})
    r.report_outcome(outcome(resumed_from_epoch=1))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["epoch", "epoch", "outcome"]
    assert all(line["trial"] == "t-1" and RFC3339.match(line["time"]) for line in lines)
    assert lines[0]["epoch"] == 1
    assert lines[0]["metrics"] == {"loss": 0.5, "val_loss": None, "lr": 1e-3}  # NaN is null, key kept
    status = lines[2]["status"]
    assert lines[2]["resumedFromEpoch"] == 1
    assert status["state"] == "Stopped" and status["reason"] == "VarianceCollapse"
    assert status["metrics"] == {"variance_ratio": 0.01}  # status holds finite numbers only
    assert status["best"] == {"epoch": 1, "metrics": {"val_loss": 1.0}}
    assert status["completionTime"] == "2026-01-01T00:01:00Z"
    assert not LIFECYCLE & set(status)  # the shells own these


def test_stdout_reporter_writes_the_same_lines() -> None:
    buf = io.StringIO()
    r = StdoutReporter("t-1", buf)
    r.report_epoch(4, {"loss": 1.0})
    line = json.loads(buf.getvalue())
    assert (line["type"], line["epoch"], line["metrics"]) == ("epoch", 4, {"loss": 1.0})
    assert pickle.loads(pickle.dumps(r)).trial == "t-1"


def test_epoch_patch_is_what_the_lifecycle_measured_and_json_safe() -> None:
    status = TrialStatus()
    for e in range(1, 151):
        status = epoch_reported(status, e, {"loss": float(e), "bad": math.nan}, Objective(metric="loss"))
    after = epoch_reported(status, 151, {"loss": 0.5, "bad": math.inf}, Objective(metric="loss"))
    patch = epoch_patch(status, after)
    measured = patch["status"]
    assert set(patch) == {"status"}
    assert set(measured) == {"epoch", "metrics", "history", "best"}  # the shell owns state, attempt, ...
    assert (measured["epoch"], measured["metrics"]) == (151, {"loss": 0.5})
    assert measured["best"] == {"epoch": 151, "metrics": {"loss": 0.5}}
    epochs = [h["epoch"] for h in measured["history"]]
    assert len(epochs) == HISTORY_LIMIT and epochs == sorted(set(epochs))
    assert measured["history"][0] == {"epoch": 1, "metrics": {"loss": 1.0}}  # first and last always kept
    assert epochs[-50:] == list(range(102, 152))  # the recent half is dense
    json.dumps(patch, allow_nan=False)  # the apiserver gets strict JSON


def test_an_epoch_patch_removes_what_the_new_epoch_no_longer_has() -> None:
    loss = Objective(metric="val_loss")
    before = epoch_reported(TrialStatus(), 1, {"val_loss": 0.9, "loss": 1.0}, loss)
    after = epoch_reported(before, 2, {"val_loss": 0.5, "loss": math.nan}, loss)
    measured = epoch_patch(before, after)["status"]
    assert measured["metrics"] == {"loss": None, "val_loss": 0.5}  # a merge patch would keep loss=1.0
    assert measured["best"] == {"epoch": 2, "metrics": {"loss": None, "val_loss": 0.5}}


def test_outcome_patch_exact_body() -> None:
    o = outcome(history=[{"epoch": 1, "metrics": {"loss": 2.0}}], best=None, checkpoint=None)
    assert outcome_patch(o) == {
        "status": {
            "state": "Stopped",
            "reason": "VarianceCollapse",
            "message": "collapsed",
            "epoch": 3,
            "metrics": {"variance_ratio": 0.01},
            "history": [{"epoch": 1, "metrics": {"loss": 2.0}}],
            "completionTime": "2026-01-01T00:01:00Z",
        }
    }


def test_outcome_of_a_crash_before_any_epoch_keeps_earlier_history() -> None:
    o = Outcome(trial="t-1", state="Failed", reason="TaskError", message="OSError: disk")
    # no epoch/metrics/history keys: a merge patch leaves the previous attempt's values in place
    assert outcome_patch(o) == {
        "status": {"state": "Failed", "reason": "TaskError", "message": "OSError: disk"}
    }


def test_error_message_preview() -> None:
    msg = error_message(ValueError("x" * 1000 + "\n tail"), limit=50)
    assert msg.startswith("ValueError: ") and msg.endswith("...") and len(msg) == len("ValueError: ") + 50
    assert error_message(KeyError()) == "KeyError"


def test_only_where_the_kubeconfig_is_travels_to_ray_workers(tmp_path: Path) -> None:
    import base64

    kubeconfig = {
        "apiVersion": "v1",
        "current-context": "rig",
        "contexts": [{"name": "rig", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(b"CA PEM").decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": "s3cret"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    conn = ClusterConnection.from_kubeconfig(str(path))  # the kubernetes client loads it once, here
    assert conn == ClusterConnection(kubeconfig=str(path.resolve()))
    rep = KubernetesReporter("t-1", "ns", conn)
    assert rep._objects() is rep._objects()  # one client per process, loaded on first use
    data = pickle.dumps(rep)  # travels to Ray workers
    assert b"s3cret" not in data and b"CA PEM" not in data
    clone = pickle.loads(data)
    assert clone.connection == conn and clone._api is None and clone.target == "campaigntrials/status ns/t-1"


def test_make_reporter(tmp_path: Path) -> None:
    assert isinstance(make_reporter(f"jsonl:{tmp_path}/x.jsonl", "t"), JsonlReporter)
    assert isinstance(make_reporter("stdout", "t"), StdoutReporter)
    with pytest.raises(ValueError, match="unknown reporter"):
        make_reporter("carrier-pigeon", "t")


def test_outcome_status_is_a_valid_trial_status() -> None:
    from campaign_operator.api import TrialStatus

    o = outcome(history=[{"epoch": e, "metrics": {"loss": 1.0 / e, "x": math.nan}} for e in range(1, 300)])
    status = TrialStatus.model_validate(o.to_status())  # what the embedded executor does with a JSONL line
    assert status.state.value == "Stopped" and status.epoch == 3 and len(status.history) == HISTORY_LIMIT
    assert status.best is not None and status.best.epoch == 1
    assert status.checkpoint == "s3://b/p/t-1/epoch-000003.ckpt" and status.completion_time is not None


def jwt(claims: dict[str, object]) -> str:
    import base64

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_token_subject_names_the_service_account() -> None:
    sa = "system:serviceaccount:team-a:campaign-trainer"
    assert token_subject(jwt({"sub": sa, "aud": ["x"]})) == sa
    assert token_subject("not-a-jwt") is None and token_subject(None) is None
    assert token_subject("a.%%%.c") is None


def test_refusal_messages_say_who_may_not_do_what() -> None:
    sa = "system:serviceaccount:team-a:campaign-trainer"
    assert refusal_message("patch", "team-a", "t-1", 403, "forbidden", sa) == (
        "trainer may not patch campaigntrials/status in namespace team-a as"
        " system:serviceaccount:team-a:campaign-trainer (403): bind the campaign-trainer role"
    )
    assert "(401)" in refusal_message("get", "team-a", "t-1", 401, "Unauthorized", sa)
    assert refusal_message("patch", "team-a", "t-1", 404, 'campaigntrials "t-1" not found', sa) == (
        'trainer could not patch campaigntrials/status team-a/t-1 (404): campaigntrials "t-1" not found'
    )


def test_no_way_to_the_apiserver_is_a_report_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ReportFailed, match="cannot reach the apiserver"):
        make_reporter("kubernetes", "t-1", "team-a")


def test_a_broken_kubeconfig_is_named_but_never_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nusers:\n- name: u\n  user: {token: s3cret-token\n")  # unclosed flow
    monkeypatch.setenv("KUBECONFIG", str(broken))
    with pytest.raises(ReportFailed, match="cannot reach the apiserver") as failed:
        make_reporter("kubernetes", "t-1", "team-a")
    assert "s3cret" not in str(failed.value) and "line" in str(failed.value)


# -- bounded verdicts ------------------------------------------------------------------------------
def thousands(epoch: int) -> dict[str, float]:
    return {f"class_{i:04d}_recall": i / 3000 for i in range(3000)} | {"val_loss": 1.0 / epoch}


def test_an_epoch_patch_carries_the_drop_warning_and_a_clean_status_sends_none() -> None:
    loss = Objective(metric="val_loss")
    clean = epoch_reported(TrialStatus(), 1, {"val_loss": 0.9}, loss)
    assert "warnings" not in epoch_patch(TrialStatus(), clean)["status"]
    wide = epoch_reported(clean, 2, thousands(2), loss)
    sent = epoch_patch(clean, wide)["status"]
    assert len(sent["metrics"]) == 64 and sent["metrics"]["val_loss"] == 0.5
    assert [w["reason"] for w in sent["warnings"]] == ["MetricsDropped"]
    assert "2937 were dropped" in sent["warnings"][0]["message"]


def test_the_verdict_patch_is_the_lifecycles_bounded_outcome() -> None:
    loss = Objective(metric="val_loss")
    before = epoch_reported(TrialStatus(state="Running", attempt=2), 1, thousands(1), loss)
    verdict = Outcome(
        trial="t-1",
        state="Succeeded",
        reason="Completed",
        epoch=100,
        metrics=thousands(100),
        best={"epoch": 100, "metrics": thousands(100)},
        history=[{"epoch": e, "metrics": thousands(e)} for e in range(1, 101)],
        completion_time="2026-01-01T00:05:00Z",
    )
    assert len(json.dumps(outcome_patch(verdict))) > 10_000_000  # what was sent before: ~10 MB
    body = verdict_patch(before, verdict, loss)
    sent = body["status"]
    assert len(json.dumps(body, separators=(",", ":"))) < 128 * 1024
    assert (sent["state"], sent["reason"], sent["epoch"], sent["completionTime"]) == (
        "Succeeded",
        "Completed",
        100,
        "2026-01-01T00:05:00Z",  # the trainer's stamp
    )
    assert not LIFECYCLE & set(sent) and len(sent["metrics"]) == 64
    assert {w["reason"] for w in sent["warnings"]} == {"MetricsDropped", "HistoryTrimmed"}
    assert sent["history"][0]["epoch"] == 1 and sent["history"][-1]["epoch"] == 100


def test_a_verdict_without_the_objective_is_sent_as_metrics_unavailable() -> None:
    loss = Objective(metric="val_loss")
    before = epoch_reported(TrialStatus(state="Running", attempt=1), 1, {"loss": 0.3}, loss)
    verdict = Outcome(trial="t-1", state="Succeeded", reason="Completed", epoch=1, metrics={"loss": 0.3})
    sent = verdict_patch(before, verdict, loss)["status"]
    assert (sent["state"], sent["reason"]) == ("Failed", "MetricsUnavailable")
    assert "objective metric val_loss" in sent["message"]


def test_a_verdict_over_an_unreadable_status_sends_only_what_it_says() -> None:
    o = Outcome(trial="t-1", state="Failed", reason="TaskError", message="OSError: disk")
    assert verdict_patch(None, o, Objective()) == {
        "status": {"state": "Failed", "reason": "TaskError", "message": "OSError: disk"}
    }


def test_the_outcome_line_of_a_wide_task_is_bounded_as_the_status_is() -> None:
    o = Outcome(
        trial="t-1",
        state="Succeeded",
        reason="Completed",
        epoch=100,
        metrics=thousands(100),
        best={"epoch": 100, "metrics": thousands(100)},
        history=[{"epoch": e, "metrics": thousands(e)} for e in range(1, 101)],
        keep_first=("val_loss",),
    )
    said = o.to_status()
    assert len(said["metrics"]) == 64 and said["metrics"]["val_loss"] == 0.01
    assert all(len(h["metrics"]) == 64 and "val_loss" in h["metrics"] for h in said["history"])
    assert len(said["best"]["metrics"]) == 64 and len(json.dumps(said)) < 1_000_000
