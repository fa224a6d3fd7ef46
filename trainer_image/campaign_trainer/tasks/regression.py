"""Tabular MLP regression with variance diagnostics and an optional variance-preserving loss.

loss = mse + variance_lambda * (1 - pred_var / target_var)^2 (per batch): the penalty that kept the
field report's model (seed 004) from collapsing to a constant prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from campaign_trainer import metrics
from campaign_trainer.data import synthetic
from campaign_trainer.data.loaders import column, feature_columns, float_matrix, load_dataset_table
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
        self._val_pred: list[torch.Tensor] = []
        self._val_target: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)  # Module.__call__ is typed to return Any
        return out.squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        pred = self(x).float()
        loss = F.mse_loss(pred, y)
        if self.variance_lambda > 0:
            loss = loss + self.variance_lambda * variance_penalty(pred, y)
        self.log("loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
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


def _arrays(cfg: TaskConfig) -> dict[str, np.ndarray]:
    ds = dict(cfg.dataset or {})
    if ds.get("path"):
        df = load_dataset_table(ds)
        target = str(ds.get("target") or "y")
        cols = feature_columns(df, [target], ds.get("features"))
        return {"x": float_matrix(df, cols), "y": column(df, target).astype(np.float32)}
    syn = dict(ds.get("synthetic") or {})
    return synthetic.regression(
        int(syn.get("samples", 2048)), int(syn.get("seed", cfg.seed)), syn.get("options") or {}
    )


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    arrays = _arrays(cfg)
    # A student trains on the target blended with its teacher's predictions, and is validated on y.
    fit = {**arrays, "y_fit": student_target(cfg, arrays["y"])}
    train, val = split_arrays(fit, ("x", "y_fit", "y"), float(cfg.param("val_fraction", 0.2)))
    module = RegressionModule(arrays["x"].shape[1], cfg)
    return module, ArrayDataModule(train[:2], val[::2], cfg.batch_size, cfg.seed, rows=arrays)
