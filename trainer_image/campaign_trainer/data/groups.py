"""Batches of whole groups (days): per-day loss terms need every row of a day in the same batch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch.utils.data import Sampler


def group_codes(values: NDArray[Any], where: str) -> NDArray[np.int64]:
    """Integer codes of a group column (dates, strings or numbers); missing values are an error."""
    if pd.isna(values).any():
        raise ValueError(f"{where} has missing values: every row must belong to a day")
    codes, _ = pd.factorize(values, sort=True)
    return codes.astype(np.int64)


class WholeGroupBatchSampler(Sampler[list[int]]):
    """Each epoch: the groups in a seeded random order, ``groups_per_batch`` of them per batch."""

    def __init__(self, groups: NDArray[np.int64], groups_per_batch: int, generator: torch.Generator) -> None:
        super().__init__()
        order = np.argsort(groups, kind="stable")
        _, starts = np.unique(groups[order], return_index=True)
        self.members = [m.tolist() for m in np.split(order, starts[1:])]
        self.groups_per_batch = max(1, groups_per_batch)
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.members) // self.groups_per_batch)

    def __iter__(self) -> Iterator[list[int]]:
        perm = torch.randperm(len(self.members), generator=self.generator).tolist()
        for start in range(0, len(perm), self.groups_per_batch):
            yield [i for g in perm[start : start + self.groups_per_batch] for i in self.members[g]]


def groups_per_batch(groups: NDArray[np.int64], batch_size: int, parameters: Mapping[str, Any]) -> int:
    """``days_per_batch`` if set, else as many average-sized days as fill ``batch_size`` rows (>= 1)."""
    explicit = parameters.get("days_per_batch")
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 1:
            raise ValueError(f"hyperparameter days_per_batch: expected an integer >= 1, got {explicit!r}")
        return explicit
    rows_per_day = len(groups) / max(1, len(np.unique(groups)))
    return max(1, round(batch_size / rows_per_day))
