"""A create that finds its Trial there already (a second operator, or this one before a crash) must
not fail the plan: its launch waits for the next reconcile, which sees the Trial as it is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.trial import Trial
from campaign_operator.executors.common import TrainerSettings
from campaign_operator.executors.kuberay import KubeRayExecutor
from campaign_operator.k8s.apply import Applier, TrialBook
from campaign_operator.kube.client import connected
from campaign_operator.planner.actions import CreateTrial, LaunchTrial
from rig.controlplane import ControlPlane

from .opkit import RAY_PATH, Kube

pytestmark = pytest.mark.integration


def test_a_lost_create_race_replans_instead_of_failing(
    kube: Kube, control_plane: ControlPlane, namespace: str
) -> None:
    manifest = {
        "metadata": {"name": "race"},
        "spec": {
            "template": {"task": "regression", "epochs": 1},
            "executor": {"kind": "kuberay"},
            "phases": [{"name": "p"}],
        },
    }
    campaign = TrainingCampaign.model_validate(kube.create_campaign(namespace, manifest))
    trial = Trial.model_validate(
        {
            "metadata": {"name": "race-p-0", "namespace": namespace, "labels": {"campaign": "race"}},
            "spec": {"campaign": "race", "phase": "p", "task": "regression", "epochs": 1},
        }
    )
    body: dict[str, Any] = trial.to_wire()
    body.pop("status")
    kube.ok("POST", kube.path(namespace, "campaigntrials"), body)  # the other writer was first

    async def apply() -> list[str]:
        async with connected(str(control_plane.kubeconfig_path)) as client:
            executor = KubeRayExecutor(client, campaign, TrainerSettings())
            applier = Applier(client, campaign, TrialBook(), executor, lambda: datetime.now(UTC))
            await applier.apply([CreateTrial(trial), LaunchTrial(trial.name, 1)])
            return applier.submitted

    assert asyncio.run(apply()) == []  # nothing launched on a guess
    assert kube.ok("GET", RAY_PATH.format(ns=namespace))["items"] == []
    stored = kube.ok("GET", kube.path(namespace, "campaigntrials", "race-p-0"))
    assert (stored.get("status") or {}).get("state", "Pending") == "Pending"
