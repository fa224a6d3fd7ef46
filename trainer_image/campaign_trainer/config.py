"""The trainer's view of a Trial: parsed once from the Trial object (dict/JSON/YAML or the API model).

The API package's pydantic ``Trial`` model is the source of truth for the schema; this module only
reads the fields the trainer needs, with the same defaults, so the trainer also runs from a bare
spec mapping (benchmarks, Ray Tune trainables) without importing the operator package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 0


@dataclass(frozen=True)
class CheckpointSpec:
    uri: str | None = None
    every_epochs: int = 1
    keep: int = 2
    endpoint_url: str | None = None


@dataclass(frozen=True)
class TrialConfig:
    name: str
    namespace: str = "default"
    task: str = "regression"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    dataset: Mapping[str, Any] | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    resources: Resources = Resources()
    precision: str = "auto"
    objective_metric: str = "val_loss"
    objective_mode: str = "min"
    stop_rules: tuple[Mapping[str, Any], ...] = ()
    early_stopping: Mapping[str, Any] | None = None
    checkpoint: CheckpointSpec = CheckpointSpec()
    attempt: int = 1
    campaign: str | None = None
    phase: str | None = None

    @property
    def seed(self) -> int:
        return int(self.parameters.get("seed", 0))


def _to_mapping(trial: Any) -> Mapping[str, Any]:
    if isinstance(trial, Mapping):
        return trial
    if isinstance(trial, str | bytes):
        text = trial.decode() if isinstance(trial, bytes) else trial
        loaded = yaml.safe_load(text)  # YAML is a superset of JSON
        if not isinstance(loaded, Mapping):
            raise ValueError("trial document is not a mapping")
        return loaded
    dump = getattr(trial, "model_dump", None)  # the API package's pydantic model
    if callable(dump):
        dumped = dump(by_alias=True, mode="json", exclude_none=True)
        assert isinstance(dumped, Mapping)
        return dumped
    raise TypeError(f"cannot read a trial from {type(trial).__name__}")


def _pick(m: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if n in m and m[n] is not None:
            return m[n]
    return default


def parse_trial(trial: Any) -> TrialConfig:
    """Accept a full Trial object, a bare spec mapping, a JSON/YAML string, or the pydantic model."""
    doc = _to_mapping(trial)
    spec = doc.get("spec", doc)
    meta = doc.get("metadata") or {}
    status = doc.get("status") or {}
    name = str(_pick(meta, "name", default=None) or _pick(spec, "name", default="trial"))
    res = spec.get("resources") or {}
    objective = spec.get("objective") or {}
    ckpt = spec.get("checkpoint") or {}
    early = _pick(spec, "earlyStopping", "early_stopping")
    return TrialConfig(
        name=name,
        namespace=str(meta.get("namespace") or "default"),
        task=str(spec.get("task") or "regression"),
        parameters=dict(spec.get("parameters") or {}),
        dataset=dict(spec["dataset"]) if spec.get("dataset") else None,
        epochs=int(_pick(spec, "epochs", default=DEFAULT_EPOCHS)),
        batch_size=int(_pick(spec, "batchSize", "batch_size", default=DEFAULT_BATCH_SIZE)),
        resources=Resources(
            cpu=float(res.get("cpu", 1.0)),
            gpu=float(res.get("gpu", 0.0)),
            workers=int(res.get("workers", 0)),
        ),
        precision=str(spec.get("precision") or "auto"),
        objective_metric=str(objective.get("metric") or "val_loss"),
        objective_mode=str(objective.get("mode") or "min"),
        stop_rules=tuple(dict(r) for r in _pick(spec, "stopRules", "stop_rules", default=[])),
        early_stopping=dict(early) if early else None,
        checkpoint=CheckpointSpec(
            uri=ckpt.get("uri"),
            every_epochs=max(1, int(_pick(ckpt, "everyEpochs", "every_epochs", default=1))),
            keep=max(1, int(ckpt.get("keep", 2))),
            endpoint_url=_pick(ckpt, "endpointUrl", "endpoint_url"),
        ),
        attempt=int(status.get("attempt") or 1),
        campaign=spec.get("campaign"),
        phase=spec.get("phase"),
    )
