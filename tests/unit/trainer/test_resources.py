"""Precision choice and Ray Train scaling: pure functions, so the GPU path is decided (and tested) on CPU."""

from __future__ import annotations

import pytest

from campaign_trainer.config import Resources
from campaign_trainer.resources import choose_precision, scaling_kwargs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "cuda,requested,bf16,expected",
    [
        (True, "auto", True, "bf16-mixed"),
        (True, "auto", False, "16-mixed"),
        (False, "auto", True, "32-true"),
        (False, "", True, "32-true"),
        (True, "32", True, "32-true"),
        (True, "bf16", True, "bf16-mixed"),
        (False, "bf16-mixed", True, "bf16-mixed"),  # CPU autocast supports bf16: honoured
        (False, "16-mixed", True, "32-true"),  # fp16 AMP needs CUDA: fall back
        (True, "fp16", True, "16-mixed"),
        (True, "64", True, "64-true"),
    ],
)
def test_choose_precision(cuda: bool, requested: str, bf16: bool, expected: str) -> None:
    assert choose_precision(cuda, requested, bf16) == expected


def test_unknown_precision_rejected() -> None:
    with pytest.raises(ValueError, match="unknown precision"):
        choose_precision(True, "8-bit")


def test_zero_workers_is_local_mode() -> None:
    assert scaling_kwargs(Resources(cpu=1, gpu=0.5, workers=0)) == {"num_workers": 0}


def test_fractional_gpu_workers() -> None:
    assert scaling_kwargs(Resources(cpu=2, gpu=0.25, workers=2)) == {
        "num_workers": 2,
        "use_gpu": True,
        "resources_per_worker": {"CPU": 2, "GPU": 0.25},
    }
    # and the result is a valid Ray Train V2 ScalingConfig
    from ray.train import ScalingConfig

    sc = ScalingConfig(**scaling_kwargs(Resources(cpu=1, gpu=0.25, workers=1)))
    assert sc.num_workers == 1 and sc.use_gpu


def test_cpu_workers_and_bad_values() -> None:
    assert scaling_kwargs(Resources(cpu=1, gpu=0, workers=1)) == {
        "num_workers": 1,
        "use_gpu": False,
        "resources_per_worker": {"CPU": 1},
    }
    with pytest.raises(ValueError):
        scaling_kwargs(Resources(workers=-1))
    with pytest.raises(ValueError):
        scaling_kwargs(Resources(gpu=-0.5, workers=1))
