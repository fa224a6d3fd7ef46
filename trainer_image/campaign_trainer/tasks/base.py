"""What a task is: a LightningModule and a LightningDataModule built from the trial's parameters.

Outputs: a task's module that implements ``WritesOutputs`` writes what it produced (its model, its
predictions over the dataset's rows) into ``outputs_dir`` once training ended with a usable model;
the harness publishes that directory next to the trial's checkpoints (status.outputs). Inputs: an
earlier phase's outputs arrive as local directories in ``TaskConfig.inputs`` (``input_predictions``
reads their predictions aligned by row). A user task may write into ``TaskConfig.outputs_dir`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.parquet"
"""One row per dataset row: ``row`` (its index in the dataset), ``prediction``, ``target``, and
task-specific columns."""
PREDICT_BATCH = 4096


@dataclass(frozen=True)
class TaskConfig:
    """Everything a task builder gets. User tasks (``module:Callable``) receive exactly this."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    dataset: Mapping[str, Any] | None = None
    batch_size: int = 256
    epochs: int = 10
    seed: int = 0
    inputs: Mapping[str, Path] = field(default_factory=dict)
    """Input name -> local directory holding an earlier phase's trial outputs (spec.inputs)."""
    outputs_dir: Path | None = None
    """Where this trial's outputs go (published when it ends with a usable model); None: nowhere."""

    def param(self, name: str, default: Any) -> Any:
        value = self.parameters.get(name)
        return default if value is None else value

    def input_dir(self, name: str, parameter: str) -> Path:
        """The directory of input `name`, which hyperparameter `parameter` named."""
        if name not in self.inputs:
            have = ", ".join(sorted(self.inputs)) or "none"
            raise ValueError(
                f"{parameter}: {name!r} is not one of this trial's inputs ({have}): declare it in the"
                " phase's inputs (name, fromPhase, match)"
            )
        return self.inputs[name]


@runtime_checkable
class WritesOutputs(Protocol):
    """A module that writes its outputs after training (every built-in task's)."""

    def write_outputs(self, outputs_dir: Path, datamodule: pl.LightningDataModule) -> None: ...


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
        rows: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.train_set = TensorDataset(*train)
        self.val_set = TensorDataset(*val)
        self.batch_size = batch_size
        self.seed = seed
        self.rows: Mapping[str, np.ndarray] = rows or {}
        """Every row of the dataset, unsplit and in order (what the outputs' predictions cover)."""

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


def dataset_rows(datamodule: pl.LightningDataModule) -> Mapping[str, np.ndarray]:
    rows = getattr(datamodule, "rows", None)
    if not rows:
        raise TypeError(f"{type(datamodule).__name__} holds no dataset rows to predict over")
    return dict(rows)


def predict_rows(
    fn: Callable[[torch.Tensor], torch.Tensor], inputs: np.ndarray, device: torch.device
) -> np.ndarray:
    """``fn`` over every row in batches, without gradients, as float32 numpy on the CPU."""
    out: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(inputs), PREDICT_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + PREDICT_BATCH]))
            out.append(fn(batch.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0,), dtype=np.float32)


def save_model(module: torch.nn.Module, outputs_dir: Path) -> None:
    """The trained weights (a state dict on the CPU): loads with torch.load(weights_only=True)."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, outputs_dir / MODEL_FILE)


def write_predictions(outputs_dir: Path, row: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
    """predictions.parquet: ``row`` first, then `columns` (``prediction``, ``target``, ...)."""
    frame = pd.DataFrame(
        {"row": np.asarray(row, dtype=np.int64)} | {k: np.asarray(v) for k, v in columns.items()}
    )
    frame.to_parquet(outputs_dir / PREDICTIONS_FILE, index=False)


def input_predictions(cfg: TaskConfig, name: str, parameter: str, n_rows: int) -> np.ndarray:
    """The ``prediction`` column of input `name`'s predictions.parquet, aligned to this dataset's
    rows 0..n_rows-1 by its ``row`` column (another row count or other rows is a clear error)."""
    path = cfg.input_dir(name, parameter) / PREDICTIONS_FILE
    if not path.is_file():
        raise ValueError(f"{parameter}: input {name!r} has no {PREDICTIONS_FILE} (looked for {path})")
    frame = pd.read_parquet(path, columns=["row", "prediction"]).sort_values("row")
    if len(frame) != n_rows:
        raise ValueError(
            f"{parameter}: input {name!r} predicts {len(frame)} rows but this trial's dataset has"
            f" {n_rows}: both phases must train on the same rows"
        )
    if not np.array_equal(frame["row"].to_numpy(), np.arange(n_rows)):
        raise ValueError(f"{parameter}: input {name!r} predicts other rows than 0..{n_rows - 1}")
    return frame["prediction"].to_numpy(dtype=np.float32)


def student_target(cfg: TaskConfig, target: np.ndarray) -> np.ndarray:
    """The training target of a student: ``(1 - w) * y + w * teacher`` with the teacher's predictions
    (hyperparameters ``teacher_input``: the input's name, ``teacher_weight``: w, default 0.7);
    without ``teacher_input`` the target itself."""
    name = cfg.param("teacher_input", None)
    if name is None:
        return target
    weight = float(cfg.param("teacher_weight", 0.7))
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"teacher_weight must be within [0, 1], got {weight}")
    teacher = input_predictions(cfg, str(name), "teacher_input", len(target))
    return ((1.0 - weight) * target + weight * teacher).astype(np.float32)
