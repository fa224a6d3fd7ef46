"""User tasks: ``pkg.module:callable`` -> (LightningModule, LightningDataModule), given a TaskConfig."""

from __future__ import annotations

import importlib
from typing import Any

import lightning.pytorch as pl

from campaign_trainer.tasks.base import TaskBuilder, TaskConfig


def load_user_task(ref: str) -> TaskBuilder:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"user task must be 'module:callable', got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref} is not callable")
    fn = obj

    def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
        result = fn(cfg)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"{ref} must return (LightningModule, LightningDataModule), got {type(result)}")
        module, datamodule = result
        if not isinstance(module, pl.LightningModule):
            raise TypeError(
                f"{ref} returned {type(module).__name__}, not a lightning.pytorch LightningModule"
            )
        if not isinstance(datamodule, pl.LightningDataModule):
            raise TypeError(f"{ref} returned {type(datamodule).__name__}, not a LightningDataModule")
        return module, datamodule

    return build
