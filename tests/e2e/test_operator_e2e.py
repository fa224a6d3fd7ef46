"""The full loop: real etcd + kube-apiserver, the operator as its own process, a real Ray head with
token auth, and the real trainer training and reporting into Trial status through the Kubernetes
API. A gate is judged on the metrics the trainer reported; the operator's /metrics is scraped."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from campaign_operator.planner.naming import job_name
from integration.k8s.opkit import Kube, OperatorProcess, condition, wait_for

from .conftest import Prometheus, RayHead, campaign, run_to_end

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def series(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus series (labels in any order); fails if absent."""
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.find("}") + 1]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {name}{labels} in /metrics")


def test_two_phase_campaign_trains_for_real_and_succeeds(
    kube: Kube, ns: str, operator: OperatorProcess, ray_head: RayHead
) -> None:
    phases = [
        {
            "name": "smoke",
            "gate": {"expression": "phase.succeeded == 1 && phase.best.metrics.val_loss < 1000.0"},
        },
        {
            "name": "full",
            "dependsOn": ["smoke"],
            "when": "phases.smoke.best.metrics.val_loss < 1000.0",
            "sweep": {"grid": {"lr": [0.02, 0.005]}},
            "epochs": 3,
        },
    ]
    run_to_end(kube, ns, campaign("ok", ray_head, phases), operator, ray_head, 420)
    c = kube.campaign(ns, "ok")
    assert c["status"]["state"] == "Succeeded", c["status"]
    assert c["status"]["trials"]["total"] == 3 and c["status"]["trials"]["succeeded"] == 3
    smoke, full = c["status"]["phases"]
    assert (smoke["state"], smoke["reason"], full["state"]) == ("Succeeded", "GatePassed", "Succeeded")
    assert (smoke["counts"]["succeeded"], full["counts"]["succeeded"], full["counts"]["total"]) == (1, 2, 2)

    trials = kube.trials(ns, "ok")
    assert len(trials) == 3
    for t in trials:
        s = t["status"]
        want_epochs = 2 if t["spec"]["phase"] == "smoke" else 3
        # Written by the trainer's Kubernetes reporter: every epoch, then the outcome.
        assert s["state"] == "Succeeded" and s["attempt"] == 1, s
        assert s["epoch"] == want_epochs and [h["epoch"] for h in s["history"]] == list(
            range(1, want_epochs + 1)
        )
        assert {"val_loss", "r2"} <= set(s["metrics"]), s["metrics"]
        assert s["executorRef"]["kind"] == "RaySubmission"
    # The gate saw the trainer's own numbers.
    (smoke_trial,) = [t for t in trials if t["spec"]["phase"] == "smoke"]
    reported = smoke_trial["status"]["best"]["metrics"]["val_loss"]
    assert smoke["gate"]["passed"] is True
    assert smoke["gate"]["values"]["best"]["metrics"]["val_loss"] == pytest.approx(reported)
    assert smoke["best"]["trial"] == smoke_trial["metadata"]["name"]

    # One Ray job per trial, named by the trial's deterministic job name (its uid's), each succeeded.
    def ours() -> dict[str, dict[str, object]]:
        jobs = ray_head.jobs()
        return {str(j["submission_id"]): j for j in jobs if str(j.get("submission_id", "")).startswith("ok-")}

    assert sorted(ours()) == sorted(job_name(t["metadata"]["name"], 1, t["metadata"]["uid"]) for t in trials)
    # The trainer reports its outcome before its driver process has exited.
    wait_for(
        lambda: {j["status"] for j in ours().values()} == {"SUCCEEDED"}, 60, f"Ray jobs SUCCEEDED: {ours()}"
    )

    text = operator.metrics()
    assert (
        series(text, "campaign_phase_trials", namespace=ns, campaign="ok", phase="full", state="Succeeded")
        == 2
    )
    assert (
        series(text, "campaign_phase_trials", namespace=ns, campaign="ok", phase="smoke", state="Failed") == 0
    )
    assert series(text, "campaign_phase_gate_passed", namespace=ns, campaign="ok", phase="smoke") == 1
    assert series(
        text, "campaign_phase_best_metric", campaign="ok", phase="smoke", metric="val_loss"
    ) == pytest.approx(reported)
    assert series(text, "campaign_trial_duration_seconds_count", campaign="ok", phase="full") == 2
    assert series(text, "campaign_state", namespace=ns, campaign="ok", state="Succeeded") == 1
    assert series(text, "campaign_reconcile_duration_seconds_count") > 0


def test_a_phase_over_its_failure_threshold_fails_the_campaign(
    kube: Kube, ns: str, operator: OperatorProcess, ray_head: RayHead
) -> None:
    phases = [
        {
            "name": "explore",
            "sweep": {"seeds": {"count": 3}},
            "maxParallelTrials": 1,  # one at a time: the first failure already decides (1/3 > 30%)
            "failurePolicy": {"maxFailureRate": 0.3, "retries": 0},
            # A real failure, decided by the trainer on its own metric after epoch 1.
            "stopRules": [
                {
                    "metric": "val_loss",
                    "comparison": ">",
                    "threshold": -1.0,
                    "action": "Fail",
                    "reason": "LossAboveFloor",
                }
            ],
        }
    ]
    run_to_end(kube, ns, campaign("bad", ray_head, phases), operator, ray_head, 300)
    c = kube.campaign(ns, "bad")
    status = c["status"]
    assert status["state"] == "Failed" and status["reason"] == "FailureThresholdExceeded", status
    message = status["message"]
    assert "phase explore" in message and "33.3%" in message and "30.0%" in message, message
    failed = condition(c, "Failed")
    assert (
        failed is not None and failed["status"] == "True" and failed["reason"] == "FailureThresholdExceeded"
    )
    assert failed["message"] == message
    states = sorted((t["status"]["state"], t["status"].get("reason")) for t in kube.trials(ns, "bad"))
    assert states == [("Failed", "LossAboveFloor"), ("Stopped", "Cancelled"), ("Stopped", "Cancelled")]
    assert len([j for j in ray_head.jobs() if str(j.get("submission_id", "")).startswith("bad-")]) == 1

    text = operator.metrics()
    rate = series(text, "campaign_phase_failure_rate", namespace=ns, campaign="bad", phase="explore")
    assert rate == pytest.approx(1 / 3)
    assert series(text, "campaign_phase_max_failure_rate", campaign="bad", phase="explore") == pytest.approx(
        0.3
    )
    assert series(text, "campaign_phase_state", campaign="bad", phase="explore", state="Failed") == 1
    assert "FailureThresholdExceeded" in {e["reason"] for e in kube.events(ns, "bad")}


def test_a_real_prometheus_scrapes_the_operator_and_fires_the_charts_alert(
    operator: OperatorProcess, ns: str, tmp_path: Path, prometheus: Callable[..., Prometheus]
):
    """Debian's Prometheus scrapes /metrics with the chart's own alert rules loaded: the failed
    campaign of the previous test shows up as a series and as a firing CampaignPhaseFailed."""
    tools = subprocess.run(
        [str(REPO / "hack" / "install-tools.sh")], capture_output=True, text=True, check=True
    )
    helm = Path(tools.stdout.strip().splitlines()[-1]) / "helm"
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            "co",
            str(REPO / "charts" / "campaign-operator"),
            # `auto`: rendered where prometheus-operator's kind is served, as in a cluster with it.
            "--api-versions",
            "monitoring.coreos.com/v1/PrometheusRule",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(yaml.safe_load(rendered)["spec"]))
    prom = prometheus([f"127.0.0.1:{operator.metrics_port}"], [tmp_path / "rules.yaml"])
    query = prom.query

    wait_for(lambda: query('up{job="campaign-operator"} == 1'), 60, "Prometheus scraping the operator")
    rate = f'campaign_phase_failure_rate{{namespace="{ns}", campaign="bad", phase="explore"}}'
    wait_for(lambda: query(rate), 30, f"{rate} in Prometheus")
    assert float(query(rate)[0]["value"][1]) == pytest.approx(1 / 3)
    alert = 'ALERTS{{alertname="CampaignPhaseFailed", alertstate="firing", campaign="{}", namespace="{}"}}'
    firing = alert.format("bad", ns)
    wait_for(lambda: query(firing), 30, "CampaignPhaseFailed firing for the failed campaign")
    assert not query(alert.format("ok", ns))
