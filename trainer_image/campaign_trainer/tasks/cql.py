"""Offline RL for bet / no-bet decisions: a Q-network trained with a conservative (CQL) penalty.

Each logged decision is a one-step episode (a bet settles before the next state), so the Bellman
target is the reward itself. The CQL(H) term alpha * E[logsumexp_a Q(s,a) - Q(s,a_data)] pushes down
Q-values of actions the logging policy did not take -- the "alpha" swept in seed 001.
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
    write_predictions,
)

N_ACTIONS = 2  # 0 = no bet, 1 = bet


def cql_loss(q: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, alpha: float) -> torch.Tensor:
    q_taken = q.gather(1, action.view(-1, 1)).squeeze(1)
    bellman = F.mse_loss(q_taken, reward)
    conservative = (torch.logsumexp(q, dim=1) - q_taken).mean()
    return bellman + alpha * conservative


class CQLModule(pl.LightningModule):
    def __init__(self, state_dim: int, cfg: TaskConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hidden = [int(h) for h in cfg.param("hidden_dims", [64, 32])]
        self.q = mlp(state_dim, hidden, N_ACTIONS, float(cfg.param("dropout", 0.0)))
        self.alpha = float(cfg.param("alpha", 0.3))
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        q: torch.Tensor = self.q(state)  # Module.__call__ is typed to return Any
        return q

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        state, action, reward, _ = batch
        loss = cql_loss(self(state).float(), action, reward, self.alpha)
        self.log("loss", loss, on_step=False, on_epoch=True, batch_size=len(state))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        state, action, reward, bet_reward = batch
        q = self(state).float()
        self.log("val_loss", cql_loss(q, action, reward, self.alpha), on_epoch=True, batch_size=len(state))
        self._val.append((q.detach().cpu(), bet_reward.detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        q = torch.cat([v[0] for v in self._val]).numpy()
        bet_reward = torch.cat([v[1] for v in self._val]).numpy()
        bet = q[:, 1] > q[:, 0]  # greedy policy
        out = {"q_mean": float(np.mean(q)), "q_std": float(np.std(q))}
        out.update(metrics.betting_metrics(bet, bet_reward))
        self.log_dict(out)

    def configure_optimizers(self) -> Any:
        return make_optimizer(self.parameters(), self.cfg, default_lr=1e-3)

    def write_outputs(self, outputs_dir: Path, datamodule: pl.LightningDataModule) -> None:
        """predictions: the greedy decision (1 = bet) with both Q-values; target: the logged reward
        (with the logged action beside it: the reward is that action's)."""
        rows = dataset_rows(datamodule)
        save_model(self, outputs_dir)
        q = predict_rows(self, rows["state"], self.device)
        columns = {
            "prediction": (q[:, 1] > q[:, 0]).astype(np.int64),
            "q_no_bet": q[:, 0],
            "q_bet": q[:, 1],
            "target": rows["reward"],
            "action": rows["action"],
        }
        write_predictions(outputs_dir, np.arange(len(q)), columns)


def _arrays(cfg: TaskConfig) -> dict[str, np.ndarray]:
    ds = dict(cfg.dataset or {})
    if ds.get("path"):
        # Table layout: state columns, `action` (0/1), reward (`target`, default `reward`) and optionally
        # `bet_reward` (profit of a one-unit bet). Without it only logged bets can be scored.
        df = load_dataset_table(ds)
        target = str(ds.get("target") or "reward")
        cols = feature_columns(df, ["action", target, "bet_reward"], ds.get("features"))
        action = column(df, "action").astype(np.int64)
        reward = column(df, target).astype(np.float32)
        if "bet_reward" in df.columns:
            bet_reward = column(df, "bet_reward").astype(np.float32)
        else:
            bet_reward = np.where(action == 1, reward, np.nan).astype(np.float32)
        return {"state": float_matrix(df, cols), "action": action, "reward": reward, "bet_reward": bet_reward}
    syn = dict(ds.get("synthetic") or {})
    return synthetic.betting(
        int(syn.get("samples", 4096)), int(syn.get("seed", cfg.seed)), syn.get("options")
    )


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    arrays = _arrays(cfg)
    keys = ("state", "action", "reward", "bet_reward")
    train, val = split_arrays(arrays, keys, float(cfg.param("val_fraction", 0.2)))
    module = CQLModule(arrays["state"].shape[1], cfg)
    return module, ArrayDataModule(train, val, cfg.batch_size, cfg.seed, rows=arrays)
