"""A user task that logs thousands of metrics every epoch (per-class recalls of a wide classifier,
with long names), imported by the trainer as ``tests.integration.k8s.wide_task:build``.

Parameters: ``metrics`` (how many, default 3000); ``objective: false`` logs no ``val_loss`` (a task
whose metric names do not match the campaign's objective)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from campaign_trainer.tasks.base import ArrayDataModule, TaskConfig

SUFFIX = "/recall_at_top_k_over_the_held_out_validation_windows_of_every_symbol_in_the_universe"
TOO_LONG = 2  # names past the name-length bound, dropped whatever the count


def metric_name(i: int) -> str:
    return f"per_class/{i:04d}{SUFFIX}"


class Wide(pl.LightningModule):
    def __init__(self, metrics: int, objective: bool) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)
        self.metrics, self.objective = metrics, objective

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), y)
        self.log("loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), y)
        self.log("val_loss" if self.objective else "holdout_mse", loss, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        epoch = self.current_epoch + 1
        wide = {metric_name(i): (i % 97) / 97 + epoch / 1000 for i in range(self.metrics)}
        wide |= {"x" * 200 + str(i): 1.0 for i in range(TOO_LONG)}
        self.log_dict(wide, on_epoch=True)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(128, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    data = ArrayDataModule((x[:96], y[:96]), (x[96:], y[96:]), cfg.batch_size, cfg.seed)
    model = Wide(int(cfg.param("metrics", 3000)), bool(cfg.param("objective", True)))
    return model, data
