"""Reading a Trial (the API package's shape) into the trainer's config."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from campaign_operator.api import Trial
from campaign_trainer.config import parse_trial

pytestmark = pytest.mark.unit

TRIAL_YAML = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: Trial
metadata: {name: nba-deep-exploration-3f2a9c1d, namespace: team-a, labels: {campaign: nba-deep}}
spec:
  campaign: nba-deep
  phase: exploration
  task: cql
  parameters: {alpha: 0.3, lr: 0.0001, hidden_dims: [256, 128, 64], seed: 42}
  dataset: {synthetic: {samples: 2048, seed: 0, options: {}}}
  epochs: 10
  batchSize: 256
  resources: {cpu: 1, gpu: 0.25, workers: 0}
  precision: auto
  objective: {metric: val_loss, mode: min}
  stopRules:
    - {metric: variance_ratio, comparison: "<", threshold: 0.1, afterEpoch: 2, patience: 1,
       action: Stop, reason: VarianceCollapse}
  earlyStopping: {metric: r2, mode: max, patience: 3, minDelta: 0.0}
  checkpoint: {uri: "s3://bucket/prefix/nba-deep-exploration-3f2a9c1d", everyEpochs: 2, keep: 3}
status: {attempt: 2, state: Running}
"""


def test_full_trial_document() -> None:
    cfg = parse_trial(TRIAL_YAML)
    assert (cfg.name, cfg.namespace, cfg.task, cfg.campaign, cfg.phase) == (
        "nba-deep-exploration-3f2a9c1d",
        "team-a",
        "cql",
        "nba-deep",
        "exploration",
    )
    assert cfg.parameters["hidden_dims"] == [256, 128, 64] and cfg.seed == 42
    assert (cfg.epochs, cfg.batch_size) == (10, 256)
    assert (cfg.resources.cpu, cfg.resources.gpu, cfg.resources.workers) == (1.0, 0.25, 0)
    assert cfg.stop_rules[0].reason == "VarianceCollapse" and cfg.stop_rules[0].after_epoch == 2
    assert cfg.early_stopping is not None and (cfg.early_stopping.metric, cfg.early_stopping.patience) == (
        "r2",
        3,
    )
    assert cfg.checkpoint.uri == "s3://bucket/prefix/nba-deep-exploration-3f2a9c1d"
    assert (cfg.checkpoint.every_epochs, cfg.checkpoint.keep) == (2, 3)


def test_bare_spec_json_and_defaults() -> None:
    cfg = parse_trial(json.dumps({"name": "t1", "task": "regression", "epochs": 3}))
    assert (cfg.name, cfg.epochs, cfg.batch_size, cfg.precision) == ("t1", 3, 256, "auto")
    assert (cfg.objective_metric, cfg.objective_mode, cfg.seed) == ("val_loss", "min", 0)
    assert cfg.checkpoint.uri is None and cfg.dataset is None and cfg.stop_rules == ()


def test_api_models_are_accepted() -> None:
    model = Trial.model_validate(yaml.safe_load(TRIAL_YAML))
    assert parse_trial(model) == parse_trial(TRIAL_YAML)
    assert parse_trial(model.spec).task == "cql"


def test_json_numbers_stay_numbers() -> None:
    # The operator sends JSON; read as YAML 1.1, `1e-05` (no dot) would become the string "1e-05".
    doc = yaml.safe_load(TRIAL_YAML)
    doc["spec"]["parameters"] = {"lr": 1e-05, "scale": 1e20, "note": "$HOME `id`"}
    cfg = parse_trial(json.dumps(doc))
    assert cfg.parameters == {"lr": 1e-05, "scale": 1e20, "note": "$HOME `id`"}


def test_invalid_documents_are_rejected_naming_the_field() -> None:
    with pytest.raises(ValueError):
        parse_trial("- just\n- a list\n")
    with pytest.raises(TypeError):
        parse_trial(42)
    doc = yaml.safe_load(TRIAL_YAML)
    doc["spec"]["batchSize"] = 0
    with pytest.raises(ValidationError, match=r"batchSize|batch_size"):
        parse_trial(doc)
    doc = yaml.safe_load(TRIAL_YAML)
    doc["spec"]["task"] = "teleport"
    with pytest.raises(ValidationError, match="task"):
        parse_trial(doc)
