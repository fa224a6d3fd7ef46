"""Fitting per-trial resources to the machine: what is scaled down, what is left alone, the words."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_operator.api.campaign import TrainingCampaign
from campaign_operator.api.quantity import quantity_bytes
from campaign_operator.embedded.fit import Machine, fit, this_machine
from campaign_operator.embedded.runner import default_parallelism
from campaign_operator.planner.admission import load_campaign
from campaign_operator.planner.trials import build_trial, phase_trials

pytestmark = pytest.mark.unit

LAPTOP = Machine(cpu=2, gpu=0, memory_bytes=16 * 2**30)
WORKSTATION = Machine(cpu=32, gpu=2, memory_bytes=256 * 2**30)


def campaign(template: dict[str, Any], *phases: dict[str, Any], precision: str = "auto") -> TrainingCampaign:
    return load_campaign(
        {
            "apiVersion": "training.campaign-operator.io/v1alpha1",
            "kind": "TrainingCampaign",
            "metadata": {"name": "c"},
            "spec": {
                "template": {
                    "task": "regression",
                    "epochs": 1,
                    "resources": template,
                    "precision": precision,
                },
                "phases": [
                    {"name": f"p{i}", "sweep": {"trials": [{"lr": 0.01}]}, **extra}
                    for i, extra in enumerate(phases)
                ],
            },
        }
    )


def trial_resources(c: TrainingCampaign, index: int) -> tuple[float, float, str | None, str]:
    planned = phase_trials(c, index)[0]
    t = build_trial(c, c.spec.phases[index], planned.point, None)
    return t.spec.resources.cpu, t.spec.resources.gpu, t.spec.resources.memory, t.spec.precision


def test_a_request_within_the_machine_is_left_alone() -> None:
    c = campaign({"cpu": 1, "memory": "2Gi"}, {}, {"resources": {"cpu": 2}})
    result = fit(c, LAPTOP)
    assert not result.changed
    assert result.campaign is c
    assert result.problems() == []


def test_cluster_sized_requests_are_capped_per_phase_and_named_where_they_are_written() -> None:
    c = campaign(
        {"cpu": 8, "gpu": 1, "memory": "64Gi"},
        {},  # inherits the template
        {"resources": {"cpu": 1}},  # fits: not mentioned
        {"resources": {"cpu": 4, "gpu": 0.5}},
        precision="bf16-mixed",
    )
    result = fit(c, LAPTOP)
    assert [(p.phase, p.field) for p in result.phases] == [
        ("p0", "spec.template.resources"),
        ("p2", "spec.phases[2].resources"),
    ]
    assert trial_resources(result.campaign, 0) == (2.0, 0.0, "16Gi", "32-true")
    assert trial_resources(result.campaign, 1) == (1.0, 0.0, None, "32-true")
    assert trial_resources(result.campaign, 2) == (2.0, 0.0, None, "32-true")
    assert result.precision == ("bf16-mixed", "32-true")
    # The original is untouched: the manifest stored for the run is what the user wrote.
    assert trial_resources(c, 0) == (8.0, 1.0, "64Gi", "bf16-mixed")

    warning = result.warning().splitlines()
    assert warning == [
        "resources scaled down to fit this machine (2 CPUs, no GPU, 16 GiB memory; "
        "--strict-resources refuses instead):",
        "  phase p0: cpu 8 -> 2, gpu 1 -> 0 (runs on CPU), memory 64Gi -> 16Gi",
        "  phase p2: cpu 4 -> 2, gpu 0.5 -> 0 (runs on CPU)",
        "  precision bf16-mixed -> 32-true (spec.template.precision: mixed precision needs a GPU)",
    ]
    assert result.problems()[0] == (
        "spec.template.resources: phase p0 asks cpu 8, gpu 1, memory 64Gi per trial, this machine has "
        "2 CPUs, no GPU, 16 GiB memory; lower it, or run without --strict-resources to scale it down"
    )


def test_a_machine_with_gpus_keeps_them_and_the_precision() -> None:
    c = campaign({"cpu": 64, "gpu": 4}, {}, precision="bf16-mixed")
    result = fit(c, WORKSTATION)
    assert [p.scaled() for p in result.phases] == ["cpu 64 -> 32, gpu 4 -> 2"]
    assert trial_resources(result.campaign, 0) == (32.0, 2.0, None, "bf16-mixed")
    assert result.precision is None


def test_a_distributed_trial_fits_with_all_its_workers_and_its_own_task() -> None:
    # 2 Ray Train workers of 1 CPU each, and the trial's own task holding 1 CPU: 3 on a 2-CPU machine.
    c = campaign({"cpu": 1, "workers": 2}, {})
    [p] = fit(c, LAPTOP).phases
    assert p.gets.cpu == 0.66 and p.gets.workers == 2
    assert p.scaled() == "cpu 1 -> 0.66 (each of its 2 Ray Train workers and its own task)"
    assert not fit(campaign({"cpu": 0.5, "workers": 2}, {}), LAPTOP).changed
    # ...and the runner's parallelism counts all three: one such trial at a time on 2 CPUs.
    assert default_parallelism(fit(c, LAPTOP).campaign, LAPTOP.cpu) == 1
    assert default_parallelism(campaign({"cpu": 1}, {}), LAPTOP.cpu) == 2


def test_precision_is_kept_when_no_gpu_was_asked_for() -> None:
    result = fit(campaign({"cpu": 3}, {}, precision="bf16-mixed"), LAPTOP)
    assert result.changed and result.precision is None


@pytest.mark.parametrize(
    ("quantity", "expected"), [("4Gi", 4 * 2**30), ("512M", 512 * 10**6), ("1000", 1000), ("1.5Ki", 1536)]
)
def test_memory_quantities(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_this_machine_is_what_this_process_may_use() -> None:
    import os

    m = this_machine()
    assert 1 <= m.cpu <= len(os.sched_getaffinity(0))
    assert m.gpu >= 0 and m.memory_bytes > 2**28
