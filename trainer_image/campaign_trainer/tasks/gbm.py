"""Gradient-boosted trees (LightGBM) for tabular regression, on the same harness as every task.

Why a Lightning module and not ``ray.train.lightgbm.LightGBMTrainer``: the harness already runs each
trial under Ray Train (TorchTrainer) with the campaign's per-epoch reporting, stop rules, early
stopping, checkpoints and resumption built on Lightning's loop; LightGBMTrainer would need its own
copy of all of that (and Ray Data inputs) for a model that trains on one worker at these sizes. So an
"epoch" here boosts ``rounds_per_epoch`` trees (default ``ceil(n_estimators / epochs)``; the total
never exceeds ``n_estimators``, default 100), then validates: the regression task's metrics, with
``loss`` the training MSE and ``val_loss`` the validation MSE. The checkpoint carries the booster's
model text; a resumed trial continues boosting from it (the same trees as an uninterrupted run, except
that row/column sampling draws afresh: LightGBM does not save its samplers' state).

Hyperparameters LightGBM knows (any alias: num_leaves, max_depth, learning_rate, min_child_samples,
subsample, colsample_bytree, device_type, gpu_use_dp, ...) pass through; so does every key of a
``lightgbm`` mapping, which must all be LightGBM's. Other names are the trial's own labels (symbol,
window, role) and are ignored, unless they look like a misspelt LightGBM name: that is an error.
``device_type: gpu`` (or cuda) without a usable device falls back to the CPU with one warning: a
manifest written for the GPU cluster must still run on a laptop, and the trees are the same algorithm.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.strategies import ParallelStrategy
from torch.utils.data import DataLoader, TensorDataset

from campaign_trainer import metrics
from campaign_trainer.tasks.base import TaskConfig, split_index, write_predictions
from campaign_trainer.tasks.regression import regression_arrays

log = logging.getLogger("campaign_trainer.gbm")

MODEL_FILE = "model.txt"
"""The booster in LightGBM's text format (``lightgbm.Booster(model_file=...)`` loads it)."""
CHECKPOINT_KEY = "lightgbm_model"
TASK_PARAMETERS = frozenset({"rounds_per_epoch", "val_fraction", "seed", "lightgbm", "group_column"})
"""Hyperparameters of the task itself, not passed to LightGBM as such (group_column, LightGBM's name
for a ranking query column, is the regression task's day column here: excluded from the features)."""
RESERVED = {
    "metric": "the task reports loss/val_loss (MSE) and the regression metrics itself",
    "early_stopping_round": "use the trial's earlyStopping and stopRules, evaluated every epoch",
    "task": "the task trains; LightGBM's CLI task does not apply",
    "data": "the data is the trial's dataset",
    "valid": "the validation rows are the dataset's tail (val_fraction)",
    "input_model": "a resumed trial continues from its checkpoint",
    "output_model": "the model is written to the trial's outputs",
    "num_machines": "the task trains on one worker",
}
DEVICE_UNAVAILABLE = ("No OpenCL device", "not enabled in this build", "OpenCL", "CUDA")


@functools.cache
def lightgbm_aliases() -> dict[str, str]:
    """Every LightGBM parameter name and alias -> its canonical name (from the library itself)."""
    # _get_all_param_aliases is LightGBM's own dump of its parameter table (C API
    # LGBM_DumpParamAliases); a unit test pins that it still answers for the names we rely on.
    table = lgb.basic._ConfigAliases._get_all_param_aliases()
    return {alias: name for name, aliases in table.items() for alias in aliases}


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, list(lightgbm_aliases()), n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(names: list[str], where: str) -> ValueError:
    listed = ", ".join(f"{n!r}{_suggestion(n)}" for n in names)
    return ValueError(f"{where}: not LightGBM {lgb.__version__} parameter(s): {listed}")


def lightgbm_params(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The LightGBM parameters among a trial's hyperparameters (canonical names), validated."""
    aliases = lightgbm_aliases()
    explicit = parameters.get("lightgbm") or {}
    if not isinstance(explicit, Mapping):
        raise ValueError(
            f"hyperparameter lightgbm: expected a mapping of LightGBM parameters, got {explicit!r}"
        )
    unknown = sorted(str(k) for k in explicit if k not in aliases)
    if unknown:
        raise _unknown(unknown, "hyperparameter lightgbm")
    flat = {k: v for k, v in parameters.items() if k not in TASK_PARAMETERS}
    misspelt = sorted(k for k in flat if k not in aliases and _suggestion(k))
    if misspelt:
        raise _unknown(misspelt, "hyperparameters")
    if isinstance(flat.get("loss"), Mapping):
        raise ValueError(
            "hyperparameter loss: the gbm task's loss is LightGBM's objective (e.g. objective: huber);"
            " weighted loss terms are the regression task's"
        )
    out: dict[str, Any] = {}
    for name, value in [*((k, v) for k, v in flat.items() if k in aliases), *explicit.items()]:
        canonical = aliases[name]
        if canonical in RESERVED:
            raise ValueError(f"hyperparameter {name}: not settable for the gbm task: {RESERVED[canonical]}")
        if value is not None:
            out[canonical] = value
    return out


def boosting_plan(parameters: Mapping[str, Any], epochs: int) -> tuple[int, int]:
    """(total rounds, rounds per epoch) from n_estimators (any alias) and rounds_per_epoch."""
    total = lightgbm_params(parameters).get("num_iterations")
    per_epoch = parameters.get("rounds_per_epoch")
    for name, value in (("n_estimators", total), ("rounds_per_epoch", per_epoch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"hyperparameter {name}: expected an integer >= 1, got {value!r}")
    if per_epoch is None:
        total = 100 if total is None else total
        return total, math.ceil(total / epochs)
    if total is None:
        return per_epoch * epochs, per_epoch
    if per_epoch * (epochs - 1) >= total:
        raise ValueError(
            f"hyperparameter rounds_per_epoch: {per_epoch} rounds x {epochs} epochs reach n_estimators"
            f" ({total}) before the last epoch; lower epochs or rounds_per_epoch"
        )
    return total, per_epoch


def _wants_device(params: Mapping[str, Any]) -> bool:
    return str(params.get("device_type", "cpu")).lower() in ("gpu", "cuda")


class GbmModule(pl.LightningModule):
    """A LightGBM booster trained a few rounds per Lightning epoch (no torch parameters, no optimizer)."""

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray, cfg: TaskConfig) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.train_x, self.train_y = train_x, train_y
        self.total_rounds, self.rounds_per_epoch = boosting_plan(cfg.parameters, cfg.epochs)
        given = {k: v for k, v in lightgbm_params(cfg.parameters).items() if k != "num_iterations"}
        if float(given.get("bagging_fraction", 1.0)) < 1.0:
            # LightGBM ignores subsample unless bagging_freq > 0 (scikit-learn's subsample_freq=0 trap).
            given.setdefault("bagging_freq", 1)
        self.params: dict[str, Any] = {
            "objective": "regression",
            "verbosity": -1,
            "seed": cfg.seed,
            "num_threads": torch.get_num_threads(),  # the trial's CPUs (the harness set them)
            **given,
            "metric": "l2",
        }
        self.booster: lgb.Booster | None = None
        self._resume_model: str | None = None
        self._val_pred: list[np.ndarray] = []
        self._val_target: list[np.ndarray] = []

    def setup(self, stage: str) -> None:
        # Before the strategy wraps the module: DDP refuses a module without trainable parameters.
        if isinstance(self.trainer.strategy, ParallelStrategy):
            raise ValueError(
                "the gbm task trains in the trial's own process (LightGBM is not data-parallel here):"
                " set resources.workers to 0"
            )

    def _dataset(self) -> lgb.Dataset:
        return lgb.Dataset(self.train_x, self.train_y, params=self.params, free_raw_data=False)

    def _start(self, rounds: int) -> lgb.Booster:
        prior = lgb.Booster(model_str=self._resume_model) if self._resume_model else None
        try:
            return lgb.train(
                self.params, self._dataset(), rounds, init_model=prior, keep_training_booster=True
            )
        except lgb.basic.LightGBMError as exc:
            if not (_wants_device(self.params) and any(s in str(exc) for s in DEVICE_UNAVAILABLE)):
                raise
            log.warning(
                "device_type %s is not usable here (%s): LightGBM trains on the CPU instead",
                self.params["device_type"],
                " ".join(str(exc).split())[:160],
            )
            self.params["device_type"] = "cpu"
            return lgb.train(
                self.params, self._dataset(), rounds, init_model=prior, keep_training_booster=True
            )

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> None:
        done = self.booster.current_iteration() if self.booster else 0
        if self.booster is None and self._resume_model:
            done = lgb.Booster(model_str=self._resume_model).current_iteration()
        rounds = min(self.rounds_per_epoch, self.total_rounds - done)
        if self.booster is None:
            self.booster = self._start(rounds)
        else:
            for _ in range(rounds):
                self.booster.update()
        train_mse = float(self.booster.eval_train()[0][2])
        self.log("loss", train_mse, on_step=False, on_epoch=True, batch_size=len(self.train_y))
        self.log("lr", float(self.params.get("learning_rate", 0.1)), on_step=False, on_epoch=True)
        self.log("trees", float(self.booster.current_iteration()), on_step=False, on_epoch=True)

    def predict_numpy(self, x: np.ndarray) -> np.ndarray:
        assert self.booster is not None, "predict before any boosting round"
        return np.asarray(self.booster.predict(x), dtype=np.float32)

    def on_validation_epoch_start(self) -> None:
        self._val_pred, self._val_target = [], []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        if self.booster is None:  # a sanity check before the first round: nothing to validate yet
            return
        x, y = (t.detach().cpu().numpy() for t in batch)
        self._val_pred.append(self.predict_numpy(x))
        self._val_target.append(y)

    def on_validation_epoch_end(self) -> None:
        if not self._val_pred or self.booster is None:
            return
        pred, target = np.concatenate(self._val_pred), np.concatenate(self._val_target)
        self.log("val_loss", float(np.mean((pred - target) ** 2)))
        self.log_dict(metrics.regression_metrics(pred, target))

    def configure_optimizers(self) -> None:
        return None  # boosting needs no torch optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.booster is not None:
            checkpoint[CHECKPOINT_KEY] = self.booster.model_to_string()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resume_model = checkpoint.get(CHECKPOINT_KEY)
        self.booster = None

    def write_outputs(self, outputs_dir: Path, datamodule: pl.LightningDataModule) -> None:
        assert self.booster is not None
        self.booster.save_model(str(outputs_dir / MODEL_FILE))
        rows = getattr(datamodule, "rows", {})
        pred = self.predict_numpy(rows["x"])
        write_predictions(outputs_dir, np.arange(len(pred)), {"prediction": pred, "target": rows["y"]})


class GbmDataModule(pl.LightningDataModule):
    """One training "batch" per epoch (the row indices: boosting sees every row), batched validation."""

    def __init__(self, rows: Mapping[str, np.ndarray], cut: int, batch_size: int) -> None:
        super().__init__()
        self.rows = rows
        self.cut = cut
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(TensorDataset(torch.arange(self.cut)), batch_size=self.cut)

    def val_dataloader(self) -> DataLoader[Any]:
        val = TensorDataset(
            *(torch.from_numpy(np.ascontiguousarray(self.rows[k][self.cut :])) for k in ("x", "y"))
        )
        return DataLoader(val, batch_size=max(self.batch_size, 1024), shuffle=False)


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    warnings.filterwarnings("ignore", ".*configure_optimizers.*returned `None`.*")
    lightgbm_params(cfg.parameters)  # name errors before any data is read
    rows = regression_arrays(cfg)
    cut = split_index(len(rows["y"]), float(cfg.param("val_fraction", 0.2)))
    module = GbmModule(rows["x"][:cut], rows["y"][:cut], cfg)
    return module, GbmDataModule(rows, cut, cfg.batch_size)
