"""Small transformer over price windows with two heads: action (sell/hold/buy) and next-return price.

loss = action_weight * cross_entropy + price_weight * mse; LR: linear warmup then cosine decay per step
(the quick-test setup of seed 003).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from campaign_trainer.data import synthetic
from campaign_trainer.data.loaders import column, load_dataset_table
from campaign_trainer.tasks.base import (
    ArrayDataModule,
    TaskConfig,
    dataset_rows,
    make_optimizer,
    predict_rows,
    save_model,
    split_arrays,
    warmup_cosine,
    write_predictions,
)

ACTIONS = ("sell", "hold", "buy")


class SequenceModel(torch.nn.Module):
    def __init__(self, n_features: int, seq_len: int, d_model: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.inp = torch.nn.Linear(n_features, d_model)
        self.pos = torch.nn.Parameter(torch.zeros(1, seq_len, d_model))
        torch.nn.init.normal_(self.pos, std=0.02)
        block = torch.nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True
        )
        # enable_nested_tensor only matters for padded batches; off avoids a warning on every build.
        self.encoder = torch.nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(d_model)
        self.action_head = torch.nn.Linear(d_model, 3)
        self.price_head = torch.nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(self.inp(x) + self.pos[:, : x.shape[1]])
        last = self.norm(h[:, -1])
        return self.action_head(last), self.price_head(last).squeeze(-1)


class SequenceModule(pl.LightningModule):
    def __init__(self, n_features: int, seq_len: int, cfg: TaskConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = SequenceModel(
            n_features,
            seq_len,
            int(cfg.param("d_model", 32)),
            int(cfg.param("layers", 2)),
            int(cfg.param("heads", 4)),
            float(cfg.param("dropout", 0.1)),
        )
        self.action_weight = float(cfg.param("action_weight", 1.0))
        self.price_weight = float(cfg.param("price_weight", 0.5))
        self.param_count = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self._correct = 0
        self._seen = 0

    def _losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x, action, price = batch
        logits, pred_price = self.model(x)
        action_loss = F.cross_entropy(logits.float(), action)
        price_loss = F.mse_loss(pred_price.float(), price)
        total = self.action_weight * action_loss + self.price_weight * price_loss
        return total, action_loss, price_loss, logits

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        total, _, _, _ = self._losses(batch)
        self.log("loss", total, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return total

    def on_validation_epoch_start(self) -> None:
        self._correct, self._seen = 0, 0

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        total, action_loss, price_loss, logits = self._losses(batch)
        n = len(batch[0])
        self.log_dict(
            {"val_loss": total, "action_loss": action_loss, "price_loss": price_loss},
            on_step=False,
            on_epoch=True,
            batch_size=n,
        )
        self._correct += int((logits.argmax(dim=1) == batch[1]).sum())
        self._seen += n

    def on_validation_epoch_end(self) -> None:
        acc = self._correct / self._seen if self._seen else float("nan")
        self.log_dict({"accuracy": acc, "param_count": float(self.param_count)})

    def write_outputs(self, outputs_dir: Path, datamodule: pl.LightningDataModule) -> None:
        """predictions: the action (0 sell, 1 hold, 2 buy) with its probabilities and the predicted
        next return; target: the action label. ``row``: for a price file, the row the window ends on."""
        rows = dataset_rows(datamodule)
        save_model(self.model, outputs_dir)
        out = predict_rows(self._probabilities_and_price, rows["x"], self.device)
        columns: dict[str, np.ndarray] = {"prediction": out[:, :3].argmax(axis=1), "target": rows["action"]}
        columns |= {f"prob_{a}": out[:, i] for i, a in enumerate(ACTIONS)}
        columns |= {"price_prediction": out[:, 3], "price_target": rows["price"]}
        write_predictions(outputs_dir, rows.get("row", np.arange(len(out))), columns)

    def _probabilities_and_price(self, x: torch.Tensor) -> torch.Tensor:
        logits, price = self.model(x)
        return torch.cat([logits.float().softmax(dim=1), price.float()[:, None]], dim=1)

    def configure_optimizers(self) -> Any:
        opt = make_optimizer(self.parameters(), self.cfg, default_lr=2e-4)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = self.cfg.param("warmup_steps", None)
        warmup_steps = (
            int(warmup) if warmup is not None else int(float(self.cfg.param("warmup_ratio", 0.1)) * total)
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, warmup_steps, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _arrays(cfg: TaskConfig, seq_len: int) -> dict[str, np.ndarray]:
    ds = dict(cfg.dataset or {})
    if ds.get("path"):
        # A price column (`target`, default `close`) in time order; windows are built from its returns.
        prices = column(load_dataset_table(ds), str(ds.get("target") or "close")).astype(np.float64)
        returns = np.diff(np.log(prices))
        windows = synthetic.windows_from_returns(returns, seq_len)
        windows["row"] = np.arange(len(windows["x"])) + seq_len  # the price row each window ends on
        return windows
    syn = dict(ds.get("synthetic") or {})
    options = {"seq_len": seq_len, **(syn.get("options") or {})}
    return synthetic.sequence(int(syn.get("samples", 2048)), int(syn.get("seed", cfg.seed)), options)


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    seq_len = int(cfg.param("seq_len", 30))
    arrays = _arrays(cfg, seq_len)
    train, val = split_arrays(arrays, ("x", "action", "price"), float(cfg.param("val_fraction", 0.2)))
    module = SequenceModule(arrays["x"].shape[2], seq_len, cfg)
    return module, ArrayDataModule(train, val, cfg.batch_size, cfg.seed, rows=arrays)
