"""What a task is: a LightningModule and a LightningDataModule built from the trial's parameters."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


@dataclass(frozen=True)
class TaskConfig:
    """Everything a task builder gets. User tasks (``module:Callable``) receive exactly this."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    dataset: Mapping[str, Any] | None = None
    batch_size: int = 256
    epochs: int = 10
    seed: int = 0

    def param(self, name: str, default: Any) -> Any:
        value = self.parameters.get(name)
        return default if value is None else value


TaskBuilder = Callable[[TaskConfig], tuple[pl.LightningModule, pl.LightningDataModule]]


def split_index(n: int, val_fraction: float) -> int:
    """Index of the first validation row: the tail is held out (time order matters for returns)."""
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise ValueError(f"dataset of {n} rows is too small to hold out {val_fraction:.0%}")
    return n - n_val


class ArrayDataModule(pl.LightningDataModule):
    """In-memory tensors; deterministic shuffling (its own seeded generator)."""

    def __init__(
        self,
        train: tuple[torch.Tensor, ...],
        val: tuple[torch.Tensor, ...],
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.train_set = TensorDataset(*train)
        self.val_set = TensorDataset(*val)
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self) -> DataLoader[Any]:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=gen)

    def val_dataloader(self) -> DataLoader[Any]:
        # Validation has no gradients; bigger batches are cheaper per sample.
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 1024), shuffle=False)


def split_arrays(
    arrays: Mapping[str, np.ndarray], keys: tuple[str, ...], val_fraction: float
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    n = len(arrays[keys[0]])
    cut = split_index(n, val_fraction)
    tensors = [torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in keys]
    return tuple(t[:cut] for t in tensors), tuple(t[cut:] for t in tensors)


def make_optimizer(params: Any, cfg: TaskConfig, default_lr: float = 1e-3) -> torch.optim.Optimizer:
    lr = float(cfg.param("lr", default_lr))
    wd = float(cfg.param("weight_decay", 0.0))
    name = str(cfg.param("optimizer", "adamw")).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=float(cfg.param("momentum", 0.9)))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r} (adam, adamw, sgd)")


def mlp(in_dim: int, hidden_dims: list[int], out_dim: int, dropout: float) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    prev = in_dim
    for h in hidden_dims:
        layers += [torch.nn.Linear(prev, int(h)), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        prev = int(h)
    layers.append(torch.nn.Linear(prev, out_dim))
    return torch.nn.Sequential(*layers)


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
