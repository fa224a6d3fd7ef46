"""The trainer's view of a Trial, read through the API package's pydantic models (one schema).

``parse_trial`` validates with ``campaign_operator.api.Trial`` (a full Trial object) or
``TrialSpec`` (a bare spec, as benchmarks and Ray Tune trainables pass it), then flattens what the
trainer needs into a small frozen dataclass that pickles cheaply into Ray workers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from campaign_operator.api import Trial, TrialSpec
from campaign_operator.api.common import EarlyStopping, StopRule


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


@dataclass(frozen=True)
class TrialConfig:
    name: str
    epochs: int
    namespace: str = "default"
    task: str = "regression"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    dataset: Mapping[str, Any] | None = None  # the DatasetSpec in wire form (camelCase, no nulls)
    batch_size: int = 256
    resources: Resources = Resources()
    precision: str = "auto"
    objective_metric: str = "val_loss"
    objective_mode: str = "min"
    stop_rules: tuple[StopRule, ...] = ()
    early_stopping: EarlyStopping | None = None
    keep_metrics: tuple[str, ...] = ()
    checkpoint: CheckpointSpec = CheckpointSpec()
    campaign: str | None = None
    phase: str | None = None
    sweep_point: Mapping[str, Any] = field(default_factory=dict)
    """What makes this trial distinct in its phase: how its messages name it (symbol=LICI ...)."""
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Input name -> URI of an earlier phase's trial outputs (spec.inputs)."""

    @property
    def seed(self) -> int:
        return int(self.parameters.get("seed", 0))


def _load_text(text: str) -> Any:
    # JSON first: PyYAML reads JSON's `1e-05` (no dot) as the string "1e-05", not a number.
    try:
        return json.loads(text)
    except ValueError:
        return yaml.safe_load(text)


def _to_mapping(trial: Any) -> Mapping[str, Any]:
    if isinstance(trial, Mapping):
        return trial
    if isinstance(trial, str | bytes):
        loaded = _load_text(trial.decode() if isinstance(trial, bytes) else trial)
        if not isinstance(loaded, Mapping):
            raise ValueError("trial document is not a mapping")
        return loaded
    raise TypeError(f"cannot read a trial from {type(trial).__name__}")


def _from_spec(spec: TrialSpec, name: str, namespace: str) -> TrialConfig:
    return TrialConfig(
        name=name,
        namespace=namespace,
        task=spec.task,
        parameters=dict(spec.parameters),
        dataset=spec.dataset.to_wire() if spec.dataset else None,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        resources=Resources(cpu=spec.resources.cpu, gpu=spec.resources.gpu, workers=spec.resources.workers),
        precision=spec.precision,
        objective_metric=spec.objective.metric,
        objective_mode=str(spec.objective.mode.value),
        stop_rules=tuple(spec.stop_rules),
        early_stopping=spec.early_stopping,
        keep_metrics=tuple(spec.keep_metrics),
        checkpoint=CheckpointSpec(spec.checkpoint.uri, spec.checkpoint.every_epochs, spec.checkpoint.keep),
        campaign=spec.campaign,
        phase=spec.phase,
        sweep_point=dict(spec.sweep_point),
        inputs=dict(spec.inputs),
    )


def parse_trial(trial: Any) -> TrialConfig:
    """Accept a Trial (model, mapping, JSON/YAML text) or a bare TrialSpec (model or mapping)."""
    if isinstance(trial, Trial):
        model = trial
    elif isinstance(trial, TrialSpec):
        return _from_spec(trial, "trial", "default")
    else:
        doc = dict(_to_mapping(trial))
        if "spec" not in doc:
            # A bare spec, as a benchmark or a Tune trainable passes it. Campaign and phase only label
            # a trial in the cluster; defaults let a spec run on its own. `name` may ride along.
            name = str(doc.pop("name", "trial"))
            spec_doc = {"campaign": "adhoc", "phase": "adhoc", **doc}
            return _from_spec(TrialSpec.model_validate(spec_doc), name, "default")
        model = Trial.model_validate(doc)
    return _from_spec(model.spec, model.metadata.name, model.metadata.namespace or "default")


def best_effort_name(trial: Any) -> str:
    """The trial's name from a document that failed validation, so its failure is still attributed."""
    try:
        doc = _to_mapping(trial)
    except (TypeError, ValueError, yaml.YAMLError):
        return "trial"
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else doc.get("name")
    return str(name) if isinstance(name, str) and name else "trial"
