"""The regression task's weighted multi-term loss (seed 000's finance objective).

``loss: {huber: 1.0, sharpe: 0.1, ic: 0.05, rank_ic: 0.05}`` trains on the weighted sum of:

* ``mse`` / ``huber`` -- pointwise errors (huber's transition point: ``huber_delta``, default 1.0);
* ``sharpe`` -- minus the Sharpe ratio of the daily returns of a prediction-weighted portfolio: each
  day holds ``w_i = p_i / sum_j |p_j|`` (unit gross exposure, the sign of a prediction is its side) and
  earns ``sum_i w_i y_i``; Sharpe = mean / std (ddof=0) over the days of the batch, not annualised;
* ``ic`` -- minus the mean over days of the cross-sectional Pearson correlation of prediction and target;
* ``rank_ic`` -- the same with ranks: exact (average) ranks of the target against a *soft* rank of the
  prediction, ``r_i = 1/2 + sum_j sigmoid((z_i - z_j) / t)`` over the day's z-scored predictions
  (the pairwise-sigmoid smooth rank of SoftRank/ApproxNDCG; t = ``soft_rank_temperature``, default 0.1).
  As t -> 0 it is the average rank, ties included (sigmoid(0) = 1/2), so the term tends to minus
  Spearman's rho; its cost is O(n^2) per day, fine for cross-sections of a few thousand names.

The per-day terms need batches of whole days (``data.groups.WholeGroupBatchSampler``). A day with
fewer than two rows, or without spread, contributes a correlation of 0 ("no signal"), as in metrics.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSS_TERMS = ("mse", "huber", "sharpe", "ic", "rank_ic")
PER_DAY_TERMS = frozenset({"sharpe", "ic", "rank_ic"})
DEFAULT_LOSS = {"mse": 1.0}
_EPS = 1e-8


def parse_loss_weights(value: object) -> dict[str, float]:
    """``loss`` hyperparameter -> {term: weight}: a mapping of weights, one term name, or unset (MSE)."""
    if value is None:
        return dict(DEFAULT_LOSS)
    if isinstance(value, str):
        value = {value: 1.0}
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"hyperparameter loss: expected a mapping of term -> weight, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in LOSS_TERMS)
    if unknown:
        raise ValueError(f"hyperparameter loss: unknown term(s) {unknown}; the terms are {list(LOSS_TERMS)}")
    weights: dict[str, float] = {}
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
            raise ValueError(f"hyperparameter loss.{name}: weight must be a finite number, got {weight!r}")
        if weight < 0:
            raise ValueError(f"hyperparameter loss.{name}: weight must be >= 0, got {weight}")
        if weight > 0:
            weights[str(name)] = float(weight)
    if not weights:
        raise ValueError("hyperparameter loss: every weight is 0; give at least one term a positive weight")
    return weights


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    da, db = a - a.mean(), b - b.mean()
    denom = torch.sqrt((da * da).sum() * (db * db).sum())
    if a.numel() < 2 or float(denom.detach()) < _EPS:
        return a.new_zeros(())
    return (da * db).sum() / denom


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks, ties sharing the mean of their ranks (scipy's ``rankdata(method="average")``)."""
    less = (x.unsqueeze(0) < x.unsqueeze(1)).sum(dim=1)
    equal = (x.unsqueeze(0) == x.unsqueeze(1)).sum(dim=1)
    return less.to(x.dtype) + (equal.to(x.dtype) + 1.0) / 2.0


def soft_ranks(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable ranks of ``x``: pairwise sigmoids of its z-scores (scale-free temperature)."""
    z = (x - x.mean()) / (x.std(unbiased=False) + _EPS)
    return 0.5 + torch.sigmoid((z.unsqueeze(1) - z.unsqueeze(0)) / temperature).sum(dim=1)


def _day_slices(groups: torch.Tensor) -> list[torch.Tensor]:
    _, inverse = torch.unique(groups, return_inverse=True)
    return [torch.nonzero(inverse == k).squeeze(1) for k in range(int(inverse.max()) + 1)]


def daily_ic(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    return torch.stack([_pearson(pred[i], target[i]) for i in _day_slices(groups)]).mean()


def daily_rank_ic(
    pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor, temperature: float
) -> torch.Tensor:
    days = _day_slices(groups)
    return torch.stack(
        [_pearson(soft_ranks(pred[i], temperature), average_ranks(target[i])) for i in days]
    ).mean()


def portfolio_sharpe(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Sharpe (mean/std over days) of the daily return of holding ``pred / sum|pred|`` each day."""
    daily = []
    for i in _day_slices(groups):
        p = pred[i]
        daily.append((p * target[i]).sum() / (p.abs().sum() + _EPS))
    returns = torch.stack(daily)
    if returns.numel() < 2:  # one day has no dispersion to divide by
        return returns.new_zeros(())
    return returns.mean() / (returns.std(unbiased=False) + _EPS)


@dataclass(frozen=True)
class WeightedLoss:
    weights: Mapping[str, float]
    huber_delta: float = 1.0
    soft_rank_temperature: float = 0.1

    @property
    def per_day(self) -> bool:
        return bool(PER_DAY_TERMS & set(self.weights))

    def term(
        self, name: str, pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None
    ) -> torch.Tensor:
        if name == "mse":
            return F.mse_loss(pred, target)
        if name == "huber":
            return F.huber_loss(pred, target, delta=self.huber_delta)
        if groups is None:
            raise ValueError(f"loss term {name!r} is computed per day: set the group_column hyperparameter")
        if name == "sharpe":
            return -portfolio_sharpe(pred, target, groups)
        if name == "ic":
            return -daily_ic(pred, target, groups)
        if name == "rank_ic":
            return -daily_rank_ic(pred, target, groups, self.soft_rank_temperature)
        raise ValueError(f"unknown loss term {name!r}")

    def __call__(
        self, pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None
    ) -> torch.Tensor:
        total = pred.new_zeros(())
        for name, weight in self.weights.items():
            total = total + weight * self.term(name, pred, target, groups)
        return total


def _positive(parameters: Mapping[str, object], name: str, default: float) -> float:
    value = parameters.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"hyperparameter {name}: expected a number > 0, got {value!r}")
    return float(value)


def loss_from_parameters(parameters: Mapping[str, object]) -> WeightedLoss:
    """The trial's loss: ``loss`` (weights), ``huber_delta``, ``soft_rank_temperature``; per-day terms
    need ``group_column``."""
    loss = WeightedLoss(
        parse_loss_weights(parameters.get("loss")),
        huber_delta=_positive(parameters, "huber_delta", 1.0),
        soft_rank_temperature=_positive(parameters, "soft_rank_temperature", 0.1),
    )
    if loss.per_day and not parameters.get("group_column"):
        per_day = sorted(PER_DAY_TERMS & set(loss.weights))
        raise ValueError(
            f"hyperparameter loss: {per_day} are computed per day; set group_column to the dataset"
            " column naming each row's day (synthetic data: group_column: day with options.days)"
        )
    return loss
