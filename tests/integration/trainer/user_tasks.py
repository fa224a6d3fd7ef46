"""User tasks for the harness tests (imported as ``user_tasks:<name>``)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from campaign_trainer.tasks.base import ArrayDataModule, TaskConfig


class Tiny(pl.LightningModule):
    def __init__(self, lr: float, poison_from_epoch: int | None = None) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)
        self.lr = lr
        self.poison_from_epoch = poison_from_epoch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), y)
        if self.poison_from_epoch is not None and self.current_epoch + 1 >= self.poison_from_epoch:
            loss = loss * float("nan")  # what a diverging run looks like
        self.log("loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("my_val", torch.nn.functional.l1_loss(self.lin(x).squeeze(-1), y), on_epoch=True)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _data(cfg: TaskConfig) -> ArrayDataModule:
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(256, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return ArrayDataModule((x[:200], y[:200]), (x[200:], y[200:]), cfg.batch_size, cfg.seed)


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    return Tiny(float(cfg.param("lr", 0.1))), _data(cfg)


def diverging(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    return Tiny(0.1, poison_from_epoch=2), _data(cfg)


def crash(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    raise RuntimeError("dataset shard 7 is missing " + "x" * 2000)


def not_a_pair(cfg: TaskConfig) -> Any:
    return "nope"
