"""Pure decisions about hardware: numeric precision and the Ray Train scaling of a trial."""

from __future__ import annotations

from typing import Any

from campaign_trainer.config import Resources

_ALIASES = {
    "32": "32-true",
    "fp32": "32-true",
    "32-true": "32-true",
    "64": "64-true",
    "64-true": "64-true",
    "bf16": "bf16-mixed",
    "bf16-mixed": "bf16-mixed",
    "bf16-true": "bf16-true",
    "16": "16-mixed",
    "fp16": "16-mixed",
    "16-mixed": "16-mixed",
    "16-true": "16-true",
}


def choose_precision(cuda_available: bool, requested: str = "auto", bf16_supported: bool = True) -> str:
    """Lightning precision string for a trial.

    ``auto``: bf16-mixed on CUDA (fp32 range, so no loss scaling, and tensor-core speed); 16-mixed on
    CUDA devices without bf16 (pre-Ampere); full fp32 on CPU, where mixed precision buys little and
    makes CPU runs non-comparable with the seed-for-seed reference. Explicit requests are honoured,
    except fp16 without CUDA (unsupported there), which falls back to 32-true.
    """
    req = (requested or "auto").strip().lower()
    if req == "auto":
        if not cuda_available:
            return "32-true"
        return "bf16-mixed" if bf16_supported else "16-mixed"
    if req not in _ALIASES:
        raise ValueError(f"unknown precision {requested!r}: auto or one of {sorted(set(_ALIASES.values()))}")
    chosen = _ALIASES[req]
    if chosen.startswith("16") and not cuda_available:
        return "32-true"
    return chosen


def scaling_kwargs(resources: Resources) -> dict[str, Any]:
    """Arguments for ``ray.train.ScalingConfig``.

    workers == 0 is Ray Train V2 local mode: the train function runs in the calling process (no worker
    actors), which is what small CPU trials and the embedded executor want. GPU may be fractional
    (e.g. 0.25: four trials share a device; no memory isolation, see notes/ray.md section 4).
    """
    if resources.workers < 0:
        raise ValueError("resources.workers must be >= 0")
    if resources.gpu < 0 or resources.cpu < 0:
        raise ValueError("resources.cpu and resources.gpu must be >= 0")
    if resources.workers == 0:
        return {"num_workers": 0}
    per_worker: dict[str, float] = {"CPU": resources.cpu}
    if resources.gpu > 0:
        per_worker["GPU"] = resources.gpu
    return {
        "num_workers": resources.workers,
        "use_gpu": resources.gpu > 0,
        "resources_per_worker": per_worker,
    }
