"""Fitting a campaign's per-trial resources to the machine an embedded run has.

A manifest states what a trial needs on the cluster (8 CPUs and an A100, say). On a laptop such a
trial can never be scheduled: the local executor would report it Unschedulable attempt after attempt
until the failure budget is spent. So before anything runs, every phase's request is compared with
this machine: larger requests are scaled down to what the machine has (one warning lists them), or,
under `--strict-resources`, refused up front with the numbers. The decision is pure (`fit`); only
`this_machine` looks at the host.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from campaign_operator.api.campaign import Phase, TrainingCampaign
from campaign_operator.api.common import Resources
from campaign_operator.api.quantity import gibibytes, quantity_bytes

MIXED_PRECISIONS = ("bf16-mixed", "16-mixed")
CPU_PRECISION = "32-true"
"""What a mixed-precision trial uses once its GPU is gone: the trainer's own choice on CPU (`auto`),
where mixed precision buys little and 16-mixed is unsupported."""


@dataclass(frozen=True)
class Machine:
    """What the embedded Ray gets on this host (the runner starts Ray with exactly these)."""

    cpu: int
    gpu: int
    memory_bytes: int

    def describe(self) -> str:
        gpus = "no GPU" if self.gpu == 0 else f"{self.gpu} GPU{'s' if self.gpu != 1 else ''}"
        cpus = f"{self.cpu} CPU{'s' if self.cpu != 1 else ''}"
        return f"{cpus}, {gpus}, {self.memory_bytes // 2**30} GiB memory"


def _cgroup_cpu_limit() -> float | None:
    """The cgroup v2 CPU quota (cpu.max "quota period"), None when unlimited or absent."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _gpus() -> int:
    """NVIDIA GPUs visible to this process: CUDA_VISIBLE_DEVICES when set (as Ray reads it), else
    the driver's device files. Without a GPU the answer is 0 without importing torch or CUDA."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len([p for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia[0-9]+", p.name)])


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def this_machine() -> Machine:
    """This host's CPUs (the ones this process may use, within any cgroup quota), GPUs and memory."""
    cpus = float(len(os.sched_getaffinity(0)))
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, limit)
    return Machine(cpu=max(1, math.floor(cpus)), gpu=_gpus(), memory_bytes=_memory_bytes())


@dataclass(frozen=True)
class PhaseFit:
    """One phase whose per-trial request is larger than the machine."""

    phase: str
    field: str
    """Where the request is written: spec.template.resources or spec.phases[i].resources."""
    asked: Resources
    gets: Resources

    def _pairs(self) -> list[tuple[str, str, str]]:
        pairs = [
            ("cpu", f"{self.asked.cpu:g}", f"{self.gets.cpu:g}"),
            ("gpu", f"{self.asked.gpu:g}", f"{self.gets.gpu:g}"),
        ]
        pairs.append(("memory", self.asked.memory or "", self.gets.memory or ""))
        return [(k, a, g) for k, a, g in pairs if a != g]

    def scaled(self) -> str:
        """What changed, e.g. `cpu 8 -> 2, gpu 1 -> 0 (runs on CPU)`."""
        parts = [f"{k} {a} -> {g}" for k, a, g in self._pairs()]
        if self.asked.gpu > 0 and self.gets.gpu == 0:
            parts[[k for k, _, _ in self._pairs()].index("gpu")] += " (runs on CPU)"
        return ", ".join(parts) + self._per_worker()

    def asks(self) -> str:
        """What it asks beyond the machine, e.g. `cpu 8, gpu 1`."""
        return ", ".join(f"{k} {a}" for k, a, _ in self._pairs()) + self._per_worker()

    def _per_worker(self) -> str:
        n = self.asked.workers
        return f" (each of its {n} Ray Train workers and its own task)" if n > 0 else ""


@dataclass(frozen=True)
class Fit:
    """The campaign as it runs on `machine`, and what had to change for it."""

    campaign: TrainingCampaign
    machine: Machine
    phases: tuple[PhaseFit, ...] = ()
    precision: tuple[str, str] | None = None
    """(asked, gets) when a mixed precision loses the GPU it was meant for."""

    @property
    def changed(self) -> bool:
        return bool(self.phases)

    def warning(self) -> str:
        """The one warning a run prints (several lines: one per phase)."""
        lines = [
            f"resources scaled down to fit this machine ({self.machine.describe()}; "
            "--strict-resources refuses instead):"
        ]
        lines += [f"  phase {p.phase}: {p.scaled()}" for p in self.phases]
        if self.precision is not None:
            asked, gets = self.precision
            lines.append(
                f"  precision {asked} -> {gets} (spec.template.precision: mixed precision needs a GPU)"
            )
        return "\n".join(lines)

    def problems(self) -> list[str]:
        """One line per phase that does not fit, naming the field and the fix (for a refusal or
        `campaign validate`)."""
        return [
            f"{p.field}: phase {p.phase} asks {p.asks()} per trial, this machine has "
            f"{self.machine.describe()}; lower it, or run without --strict-resources to scale it down"
            for p in self.phases
        ]


def processes(resources: Resources) -> int:
    """How many holders of `resources` one trial is here: its own Ray task, plus each Ray Train
    worker it starts (each asks the same per-worker cpu/gpu while the task still holds its own)."""
    return 1 + resources.workers if resources.workers > 0 else 1


def _share(total: int, holders: int) -> float:
    """`total` split between `holders`, rounded down to hundredths (Ray's CPU granularity is finer)."""
    return math.floor(total * 100 / holders) / 100


def fit_resources(asked: Resources, machine: Machine) -> Resources:
    """`asked`, its cpu and gpu capped so that all of a trial's processes fit the machine together,
    and its memory capped at the machine's."""
    memory = asked.memory
    if memory is not None and quantity_bytes(memory) > machine.memory_bytes:
        memory = gibibytes(machine.memory_bytes)
    n = processes(asked)
    return asked.model_copy(
        update={
            "cpu": min(asked.cpu, _share(machine.cpu, n)),
            "gpu": min(asked.gpu, _share(machine.gpu, n)),
            "memory": memory,
        }
    )


def _phase_fits(campaign: TrainingCampaign, machine: Machine) -> list[PhaseFit]:
    out = []
    template = campaign.spec.template.resources
    for i, phase in enumerate(campaign.spec.phases):
        asked = phase.resources or template
        field = "spec.template.resources" if phase.resources is None else f"spec.phases[{i}].resources"
        gets = fit_resources(asked, machine)
        if gets != asked:
            out.append(PhaseFit(phase.name, field, asked, gets))
    return out


def _fitted_phase(phase: Phase, machine: Machine) -> Phase:
    if phase.resources is None:
        return phase
    return phase.model_copy(update={"resources": fit_resources(phase.resources, machine)})


def fit(campaign: TrainingCampaign, machine: Machine) -> Fit:
    """The campaign with every per-trial request that exceeds `machine` capped at it. A GPU trial on a
    machine without GPUs runs on CPU; its mixed precision becomes the trainer's CPU choice (32-true)."""
    phases = _phase_fits(campaign, machine)
    if not phases:
        return Fit(campaign, machine)
    spec = campaign.spec
    template = spec.template.model_copy(update={"resources": fit_resources(spec.template.resources, machine)})
    precision = None
    if machine.gpu == 0 and template.precision in MIXED_PRECISIONS and any(p.asked.gpu > 0 for p in phases):
        precision = (template.precision, CPU_PRECISION)
        template = template.model_copy(update={"precision": CPU_PRECISION})
    new_spec = spec.model_copy(
        update={"template": template, "phases": [_fitted_phase(p, machine) for p in spec.phases]}
    )
    return Fit(campaign.model_copy(update={"spec": new_spec}), machine, tuple(phases), precision)
