"""An over-sized reporter on a real apiserver with the real operator: the real trainer (its CLI, as a
RayJob's entrypoint starts it, with its Kubernetes reporter) trains a task that logs 3,000 metrics
with long names every epoch for 20 epochs. Before the bounds the Trial passed etcd's 1.5 MiB limit,
the later patches and the outcome were refused, and the trial was recorded at an earlier epoch with
its outcome lost. Now every report lands bounded (64 metrics, a history thinned to the status's byte
bound, warnings naming what was dropped), the outcome lands, the campaign's best stays bounded, and a
sibling trial whose task never logs the objective metric ends Failed/MetricsUnavailable through the
same path, counted as a failure and not retried. KubeRay's part (RayJob status) is played by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from campaign_operator.lifecycle import METRICS_UNAVAILABLE
from campaign_operator.lifecycle.bounds import (
    BEST_METRICS_LIMIT,
    HISTORY_TRIMMED,
    METRIC_NAME_MAX_LENGTH,
    METRICS_DROPPED,
    METRICS_LIMIT,
    STATUS_BYTES_LIMIT,
)
from rig.controlplane import ControlPlane

from .opkit import Kube, kuberay_status, wait_for
from .wide_task import TOO_LONG, metric_name

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
NAME = "wide"
EPOCHS = 20
WIDE = 3000
GATE_METRIC = metric_name(WIDE - 1)  # sorts last of the 3,000: kept only because the gate names it


def compact(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def manifest() -> dict[str, Any]:
    return {
        "metadata": {"name": NAME},
        "spec": {
            "template": {"task": "tests.integration.k8s.wide_task:build", "epochs": EPOCHS, "batchSize": 32},
            "executor": {"kind": "kuberay"},
            "phases": [
                {
                    "name": "p",
                    "sweep": {"trials": [{"objective": True}, {"objective": False, "metrics": 10}]},
                    "failurePolicy": {"maxFailureRate": 0.5, "retries": 2, "backoffSeconds": 1},
                    "gate": {"expression": f'phase.best.metrics["{GATE_METRIC}"] >= 0.0'},
                }
            ],
        },
    }


def run_trainer(trial: dict[str, Any], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """The trainer as a RayJob's entrypoint starts it: the Trial in CAMPAIGN_TRIAL, the k8s reporter."""
    meta = trial["metadata"]
    doc = {
        "apiVersion": trial["apiVersion"],
        "kind": "Trial",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": meta["labels"]},
        "spec": trial["spec"],
    }
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env |= {"CAMPAIGN_TRIAL": json.dumps(doc), "KUBECONFIG": str(kubeconfig)}
    args = [sys.executable, "-m", "campaign_trainer", "run", "--trial-env", "CAMPAIGN_TRIAL"]
    return subprocess.run(
        [*args, "--reporter", "kubernetes", "--log-level", "WARNING"],
        env=env,
        cwd=ROOT,  # the user task is tests.integration.k8s.wide_task
        capture_output=True,
        text=True,
        timeout=400,
        stdin=subprocess.DEVNULL,
    )


def test_thousands_of_metrics_per_epoch_stay_bounded_and_the_outcome_lands(
    kube: Kube, control_plane: ControlPlane, namespace: str, operator_factory: Any
) -> None:
    op = operator_factory(namespace)
    kube.create_campaign(namespace, manifest())
    jobs = wait_for(
        lambda: len(kube.rayjobs(namespace, NAME)) == 2 and kube.rayjobs(namespace, NAME), 60, "2 RayJobs"
    )
    wait_for(
        lambda: all(t.get("status", {}).get("state") == "Running" for t in kube.trials(namespace, NAME)),
        30,
        "both trials Running",
    )
    job_of = {j["metadata"]["labels"]["trial"]: j["metadata"]["name"] for j in jobs}
    for job in job_of.values():
        for step in ("Initializing", "Running"):
            assert kube.patch_rayjob_status(namespace, job, kuberay_status(step, job)).status_code == 200
    trials = {
        "wide" if t["spec"]["parameters"]["objective"] else "silent": t for t in kube.trials(namespace, NAME)
    }

    for case, trial in trials.items():
        proc = run_trainer(trial, control_plane.kubeconfig_path)
        # exit 3: the trial ran and failed (MetricsUnavailable); 4 would be a report that did not land
        assert proc.returncode == (0 if case == "wide" else 3), proc.stderr[-4000:]
        if case == "wide":  # the reporter says so once, the status every epoch
            assert proc.stderr.count("were dropped") == 1, proc.stderr[-4000:]
        job = job_of[trial["metadata"]["name"]]
        verdict = "Succeeded" if case == "wide" else "AppFailed"
        code = kube.patch_rayjob_status(namespace, job, kuberay_status(verdict, job)).status_code
        assert code in (200, 404), code  # the operator deletes the jobs of finished attempts

    wait_for(lambda: kube.state(namespace, NAME) in ("Succeeded", "Failed"), 120, f"the end\n{op.log_tail()}")
    stored = {
        "wide" if t["spec"]["parameters"]["objective"] else "silent": t for t in kube.trials(namespace, NAME)
    }

    wide = stored["wide"]
    status = wide["status"]
    assert (status["state"], status["reason"], status["epoch"], status["attempt"]) == (
        "Succeeded",
        "Completed",
        EPOCHS,
        1,
    ), status.get("message")
    assert compact(wide) < 2 * STATUS_BYTES_LIMIT, compact(wide)  # the whole object, managedFields included
    assert compact(status) <= STATUS_BYTES_LIMIT, compact(status)
    assert len(status["metrics"]) == METRICS_LIMIT
    assert {"val_loss", GATE_METRIC} <= set(status["metrics"])  # the objective, and what the gate reads
    assert all(len(k) <= METRIC_NAME_MAX_LENGTH for k in status["metrics"])
    assert len(status["best"]["metrics"]) == METRICS_LIMIT
    epochs = [h["epoch"] for h in status["history"]]
    assert epochs[0] == 1 and epochs[-1] == EPOCHS and len(epochs) < EPOCHS
    assert all(len(h["metrics"]) == METRICS_LIMIT for h in status["history"])
    warnings = {w["reason"]: w for w in status["warnings"]}
    assert set(warnings) == {METRICS_DROPPED, HISTORY_TRIMMED}
    reported = WIDE + TOO_LONG + 5  # + loss, val_loss, lr, samples_per_sec, epoch_time_s
    dropped = warnings[METRICS_DROPPED]
    assert dropped["epoch"] == EPOCHS
    assert dropped["message"].startswith(f"epoch {EPOCHS} reported {reported} metrics")
    assert f"{reported - METRICS_LIMIT} were dropped ({TOO_LONG} named with more than" in dropped["message"]
    assert f"keeps {len(epochs)} epochs" in warnings[HISTORY_TRIMMED]["message"]

    silent = stored["silent"]["status"]
    assert (silent["state"], silent["reason"], silent["attempt"]) == ("Failed", METRICS_UNAVAILABLE, 1)
    assert "never reported a finite value of the objective metric val_loss" in silent["message"]
    assert "holdout_mse" in silent["message"]  # what it did report

    campaign = kube.campaign(namespace, NAME)
    assert campaign["status"]["state"] == "Succeeded", campaign["status"].get("message")
    (phase,) = campaign["status"]["phases"]
    # MetricsUnavailable counts as a failure (1 of 2 is within 50%) and was not retried: attempt 1,
    # and a retry would have kept the phase running
    assert (phase["counts"]["succeeded"], phase["counts"]["failed"]) == (1, 1)
    assert phase["failureRate"] == 0.5
    best = phase["best"]
    assert best["trial"] == wide["metadata"]["name"] and len(best["metrics"]) == BEST_METRICS_LIMIT
    assert {"val_loss", GATE_METRIC} <= set(best["metrics"])
    assert phase["gate"]["passed"] is True and phase["gate"]["values"]["best"]["metrics"] == best["metrics"]
    assert compact(campaign) < 32 * 1024, compact(campaign)
    assert all(j["metadata"]["name"].endswith("-a1") for j in kube.rayjobs(namespace, NAME))
