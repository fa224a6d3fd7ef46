"""Pure metric functions (numpy in, floats out).

Conventions, chosen so that a degenerate model never crashes a trial and stop rules keep working:

* Non-finite values: every paired metric first drops the pairs where prediction OR target is NaN/inf
  ("pairwise complete" observations). If nothing is left the metric is ``nan``.
* Constant predictions (or constant targets) make correlations undefined. ``ic`` and ``rank_ic`` then
  return ``0.0`` -- "no usable signal" -- rather than scipy's ``nan``; a collapsed model should score as
  uninformative, and a NaN would silently fail every threshold comparison.
* ``r2`` follows scikit-learn's ``force_finite`` convention when the target is constant: ``1.0`` for a
  perfect fit, ``0.0`` otherwise.
* ``variance_ratio`` is ``pred_std / target_std`` (population std, ddof=0). With a constant target it is
  ``1.0`` if the predictions are constant too, else ``inf``.
* ``sharpe`` is the Sharpe ratio of the sign strategy: position ``sign(pred)`` earns ``sign(pred) * y``
  per sample. It is the plain per-sample ratio ``mean / std`` (ddof=0), *not annualised*: the sampling
  frequency of the target is unknown here. Zero dispersion gives ``0.0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

FloatArray = NDArray[np.float64]


def _vec(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def finite_pairs(pred: ArrayLike, target: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Both inputs flattened, keeping only positions where both are finite."""
    p, t = _vec(pred), _vec(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in length: {p.size} != {t.size}")
    keep = np.isfinite(p) & np.isfinite(t)
    return p[keep], t[keep]


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    p, t = finite_pairs(pred, target)
    if p.size == 0:
        return math.nan
    return float(np.sqrt(np.mean((p - t) ** 2)))


def r2(pred: ArrayLike, target: ArrayLike) -> float:
    p, t = finite_pairs(pred, target)
    if p.size == 0:
        return math.nan
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def pred_std(pred: ArrayLike) -> float:
    p = _vec(pred)
    p = p[np.isfinite(p)]
    return float(np.std(p)) if p.size else math.nan


def pred_range(pred: ArrayLike) -> float:
    p = _vec(pred)
    p = p[np.isfinite(p)]
    return float(p.max() - p.min()) if p.size else math.nan


def variance_ratio(pred: ArrayLike, target: ArrayLike) -> float:
    p, t = finite_pairs(pred, target)
    if p.size == 0:
        return math.nan
    sp, st = float(np.std(p)), float(np.std(t))
    if st == 0.0:
        return 1.0 if sp == 0.0 else math.inf
    return sp / st


def _pearson(a: FloatArray, b: FloatArray) -> float:
    if a.size < 2:
        return 0.0
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if denom == 0.0 or not math.isfinite(denom):
        return 0.0
    # Clip: rounding can push |r| a hair above 1.
    return float(np.clip(np.dot(da, db) / denom, -1.0, 1.0))


def ic(pred: ArrayLike, target: ArrayLike) -> float:
    """Information coefficient: Pearson correlation of prediction and target."""
    return _pearson(*finite_pairs(pred, target))


def rank_ic(pred: ArrayLike, target: ArrayLike) -> float:
    """Rank IC: Spearman correlation (Pearson of average ranks: ties share the mean of their ranks)."""
    p, t = finite_pairs(pred, target)
    if p.size < 2:
        return 0.0
    return _pearson(rankdata(p, method="average"), rankdata(t, method="average"))


def sharpe(pred: ArrayLike, target: ArrayLike) -> float:
    """Per-sample (non-annualised) Sharpe ratio of trading ``sign(pred)`` against returns ``target``."""
    p, t = finite_pairs(pred, target)
    if p.size == 0:
        return math.nan
    pnl = np.sign(p) * t
    sd = float(np.std(pnl))
    if sd == 0.0:
        return 0.0
    return float(np.mean(pnl)) / sd


def regression_metrics(pred: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """All regression diagnostics the campaign stop rules and gates refer to."""
    return {
        "rmse": rmse(pred, target),
        "r2": r2(pred, target),
        "variance_ratio": variance_ratio(pred, target),
        "pred_std": pred_std(pred),
        "pred_range": pred_range(pred),
        "ic": ic(pred, target),
        "rank_ic": rank_ic(pred, target),
        "sharpe": sharpe(pred, target),
    }


def accuracy(pred_labels: ArrayLike, labels: ArrayLike) -> float:
    p, t = _vec(pred_labels), _vec(labels)
    if p.size == 0:
        return math.nan
    return float(np.mean(p == t))


def betting_metrics(bet: ArrayLike, bet_reward: ArrayLike) -> dict[str, float]:
    """Outcome of a bet / no-bet policy on held-out data.

    ``bet`` is a boolean mask of where the policy bets one unit; ``bet_reward`` is the profit of a
    one-unit bet at each position (odds - 1 on a win, -1 on a loss; NaN where unknown, ignored).
    With no bets placed win_rate and roi are 0.0 (nothing won, nothing lost) and bet_rate tells the story.
    """
    b = _vec(bet) > 0.5
    r = _vec(bet_reward)
    if b.shape != r.shape:
        raise ValueError(f"bet and bet_reward differ in length: {b.size} != {r.size}")
    keep = np.isfinite(r)  # unknown counterfactual outcomes (NaN) cannot be scored
    b, r = b[keep], r[keep]
    if r.size == 0:
        return {"win_rate": math.nan, "roi": math.nan, "bet_rate": math.nan}
    n_bets = int(b.sum())
    if n_bets == 0:
        return {"win_rate": 0.0, "roi": 0.0, "bet_rate": 0.0}
    placed = r[b]
    return {
        "win_rate": float(np.mean(placed > 0)),
        "roi": float(placed.sum() / n_bets),
        "bet_rate": n_bets / r.size,
    }


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def scalar_metrics(raw: Mapping[str, object]) -> dict[str, float]:
    """Keep the scalar entries of a metrics mapping (tensors of one element included) as floats."""
    out: dict[str, float] = {}
    for key, value in raw.items():
        v: object = value
        item = getattr(v, "item", None)
        if callable(item):
            try:
                v = item()
            except (ValueError, RuntimeError):  # more than one element: not a scalar metric
                continue
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            out[str(key)] = float(v)
    return out
