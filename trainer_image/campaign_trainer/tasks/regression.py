"""Tabular MLP regression with variance diagnostics and an optional variance-preserving loss.

loss = mse + variance_lambda * (1 - pred_var / target_var)^2 (per batch): the penalty that kept the
field report's model (seed 004) from collapsing to a constant prediction. The ``loss`` hyperparameter
replaces the MSE by a weighted sum of mse, huber and per-day finance terms (campaign_trainer.losses);
with ``group_column`` each training batch holds whole days.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from campaign_trainer import metrics
from campaign_trainer.data import synthetic
from campaign_trainer.data.groups import WholeGroupBatchSampler, group_codes, groups_per_batch
from campaign_trainer.data.loaders import column, feature_columns, float_matrix, load_dataset_table
from campaign_trainer.losses import loss_from_parameters
from campaign_trainer.tasks.base import (
    ArrayDataModule,
    TaskConfig,
    dataset_rows,
    make_optimizer,
    mlp,
    predict_rows,
    save_model,
    split_arrays,
    student_target,
    write_predictions,
)


def variance_penalty(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    target_var = target.var(unbiased=False).clamp_min(1e-8)
    return (1.0 - pred.var(unbiased=False) / target_var) ** 2


class RegressionModule(pl.LightningModule):
    def __init__(self, n_features: int, cfg: TaskConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hidden = [int(h) for h in cfg.param("hidden_dims", [64, 32])]
        self.net = mlp(n_features, hidden, 1, float(cfg.param("dropout", 0.0)))
        out = self.net[-1]
        assert isinstance(out, torch.nn.Linear)
        # The output init scale decides whether predictions start with any spread (seed 004, fix 3).
        torch.nn.init.normal_(out.weight, std=float(cfg.param("output_init_std", 0.5)))
        torch.nn.init.zeros_(out.bias)
        self.variance_lambda = float(cfg.param("variance_lambda", 0.0))
        self.loss_fn = loss_from_parameters(cfg.parameters)
        self._val_pred: list[torch.Tensor] = []
        self._val_target: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)  # Module.__call__ is typed to return Any
        return out.squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, y, *day = batch  # a day column only with group_column (whole-day batches)
        loss = self.fit_loss(self(x).float(), y, day[0] if day else None)
        self.log("loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def fit_loss(self, pred: torch.Tensor, y: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        """One batch's training loss (also computed per member, under vmap, by campaign_trainer.ensemble)."""
        loss = self.loss_fn(pred, y, day)
        if self.variance_lambda > 0:
            loss = loss + self.variance_lambda * variance_penalty(pred, y)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_pred, self._val_target = [], []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self(x).float()
        self.log("val_loss", F.mse_loss(pred, y), on_step=False, on_epoch=True, batch_size=len(x))
        self._val_pred.append(pred.detach().cpu())
        self._val_target.append(y.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_pred:
            return
        pred = torch.cat(self._val_pred).numpy()
        target = torch.cat(self._val_target).numpy()
        self.log_dict(metrics.regression_metrics(pred, target))

    def configure_optimizers(self) -> Any:
        return make_optimizer(self.parameters(), self.cfg)

    def write_outputs(self, outputs_dir: Path, datamodule: pl.LightningDataModule) -> None:
        rows = dataset_rows(datamodule)
        save_model(self, outputs_dir)
        pred = predict_rows(self, rows["x"], self.device)
        write_predictions(outputs_dir, np.arange(len(pred)), {"prediction": pred, "target": rows["y"]})


def regression_arrays(cfg: TaskConfig) -> dict[str, np.ndarray]:
    ds = dict(cfg.dataset or {})
    if ds.get("path"):
        df = load_dataset_table(ds)
        target = str(ds.get("target") or "y")
        group = cfg.param("group_column", None)
        cols = feature_columns(df, [target, *([str(group)] if group else [])], ds.get("features"))
        out: dict[str, np.ndarray] = {"x": float_matrix(df, cols), "y": column(df, target).astype(np.float32)}
        if group:
            out["day"] = group_codes(column(df, str(group)), f"hyperparameter group_column ({group!r})")
        return out
    syn = dict(ds.get("synthetic") or {})
    out = synthetic.regression(
        int(syn.get("samples", 2048)), int(syn.get("seed", cfg.seed)), syn.get("options") or {}
    )
    group = cfg.param("group_column", None)
    if group is not None and (group != "day" or "day" not in out):
        raise ValueError(
            f"hyperparameter group_column: {group!r} is not a column of the synthetic regression data;"
            " it has a 'day' column when dataset.synthetic.options.days is set (group_column: day)"
        )
    return out


class DayBatchedDataModule(ArrayDataModule):
    """Training batches of whole days (``days_per_batch`` of them), the day code as a third tensor."""

    def __init__(self, base: ArrayDataModule, day: np.ndarray, days_per_batch: int) -> None:
        self.__dict__.update(base.__dict__)  # the same data module, only batched differently
        self.day = day
        self.days_per_batch = days_per_batch

    def train_dataloader(self) -> DataLoader[Any]:
        gen = torch.Generator().manual_seed(self.seed)
        data = TensorDataset(*self.train_set.tensors, torch.from_numpy(self.day))
        return DataLoader(data, batch_sampler=WholeGroupBatchSampler(self.day, self.days_per_batch, gen))


def by_day(datamodule: ArrayDataModule, cfg: TaskConfig, day: np.ndarray | None) -> ArrayDataModule:
    """Whole-day batches when the trial names a group column; the data module unchanged otherwise."""
    if day is None:
        return datamodule
    train_day = day[: len(datamodule.train_set)]  # the training rows are the head (split_arrays)
    per_batch = groups_per_batch(train_day, cfg.batch_size, cfg.parameters)
    if per_batch < 2 and "sharpe" in loss_from_parameters(cfg.parameters).weights:
        raise ValueError(
            f"hyperparameter loss.sharpe: batches of 1 day (batchSize {cfg.batch_size}); the Sharpe of"
            " daily returns needs at least 2 days per batch: raise batchSize or set days_per_batch >= 2"
        )
    return DayBatchedDataModule(datamodule, train_day, per_batch)


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    arrays = regression_arrays(cfg)
    # A student trains on the target blended with its teacher's predictions, and is validated on y.
    fit = {**arrays, "y_fit": student_target(cfg, arrays["y"])}
    train, val = split_arrays(fit, ("x", "y_fit", "y"), float(cfg.param("val_fraction", 0.2)))
    module = RegressionModule(arrays["x"].shape[1], cfg)
    datamodule = ArrayDataModule(train[:2], val[::2], cfg.batch_size, cfg.seed, rows=arrays)
    return module, by_day(datamodule, cfg, arrays.get("day"))
