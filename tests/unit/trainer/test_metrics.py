"""Metric functions vs numpy/scipy references, including degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from campaign_trainer import metrics

pytestmark = pytest.mark.unit

finite = st.floats(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False)


@st.composite
def paired(draw: st.DrawFn, min_size: int = 2) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=min_size, max_value=60))
    p = draw(hnp.arrays(np.float64, n, elements=finite))
    t = draw(hnp.arrays(np.float64, n, elements=finite))
    return p, t


def well_spread(x: np.ndarray) -> bool:
    # Away from the degenerate edge where any two correct implementations differ by rounding.
    return float(np.std(x)) > 1e-3


@settings(max_examples=150, deadline=None)
@given(paired())
def test_pointwise_metrics_match_numpy(pt: tuple[np.ndarray, np.ndarray]) -> None:
    p, t = pt
    assert metrics.rmse(p, t) == pytest.approx(math.sqrt(np.mean((p - t) ** 2)), rel=1e-9, abs=1e-9)
    assert metrics.pred_std(p) == pytest.approx(np.std(p), rel=1e-9, abs=1e-12)
    assert metrics.pred_range(p) == pytest.approx(np.ptp(p), rel=1e-9, abs=1e-12)
    pnl = np.sign(p) * t
    expected_sharpe = 0.0 if np.std(pnl) == 0 else np.mean(pnl) / np.std(pnl)
    assert metrics.sharpe(p, t) == pytest.approx(expected_sharpe, rel=1e-7, abs=1e-9)
    assume(well_spread(t))
    expected_r2 = 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)
    assert metrics.r2(p, t) == pytest.approx(expected_r2, rel=1e-7, abs=1e-7)
    assert metrics.variance_ratio(p, t) == pytest.approx(np.std(p) / np.std(t), rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(paired(min_size=3))
def test_correlations_match_scipy(pt: tuple[np.ndarray, np.ndarray]) -> None:
    p, t = pt
    assume(well_spread(p) and well_spread(t))
    assert metrics.ic(p, t) == pytest.approx(stats.pearsonr(p, t).statistic, abs=1e-7)
    assert metrics.rank_ic(p, t) == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-7)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.int64, st.integers(3, 50), elements=st.integers(0, 4)),
    hnp.arrays(np.int64, 50, elements=st.integers(0, 4)),
)
def test_rank_ic_with_ties_matches_scipy(p: np.ndarray, t_full: np.ndarray) -> None:
    t = t_full[: p.size]
    assume(len(set(p.tolist())) > 1 and len(set(t.tolist())) > 1)
    assert metrics.rank_ic(p, t) == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(paired(min_size=4), st.lists(st.integers(0, 59), min_size=1, max_size=5), st.booleans())
def test_non_finite_pairs_are_dropped(
    pt: tuple[np.ndarray, np.ndarray], holes: list[int], in_pred: bool
) -> None:
    p, t = pt[0].copy(), pt[1].copy()
    holes = [h for h in holes if h < p.size]
    (p if in_pred else t)[holes] = np.nan
    if holes:
        (t if in_pred else p)[holes[0]] = np.inf  # both kinds of bad value, on either side
    keep = np.isfinite(p) & np.isfinite(t)
    pk, tk = p[keep], t[keep]
    assume(pk.size >= 3 and well_spread(pk) and well_spread(tk))
    assert metrics.ic(p, t) == pytest.approx(stats.pearsonr(pk, tk).statistic, abs=1e-7)
    assert metrics.rank_ic(p, t) == pytest.approx(stats.spearmanr(pk, tk).statistic, abs=1e-7)
    assert metrics.rmse(p, t) == pytest.approx(math.sqrt(np.mean((pk - tk) ** 2)), rel=1e-9)
    assert all(math.isfinite(v) for v in metrics.regression_metrics(p, t).values())


def test_constant_predictions_are_defined_not_errors() -> None:
    rng = np.random.default_rng(0)
    t = rng.standard_normal(200)
    p = np.full(200, 0.72)  # the seed-004 collapse: one value for everything
    m = metrics.regression_metrics(p, t)
    assert m["ic"] == 0.0 and m["rank_ic"] == 0.0
    assert m["variance_ratio"] == 0.0 and m["pred_std"] == 0.0 and m["pred_range"] == 0.0
    assert m["r2"] == pytest.approx(1 - np.sum((t - 0.72) ** 2) / np.sum((t - t.mean()) ** 2))
    assert m["r2"] < 0
    # Always long: the sign strategy's PnL is the target itself.
    assert m["sharpe"] == pytest.approx(np.mean(t) / np.std(t))
    assert metrics.sharpe(np.zeros(200), t) == 0.0  # never in the market


def test_constant_target_follows_sklearn_force_finite() -> None:
    t = np.ones(10)
    assert metrics.r2(np.ones(10), t) == 1.0
    assert metrics.r2(np.arange(10.0), t) == 0.0
    assert metrics.variance_ratio(np.ones(10), t) == 1.0
    assert metrics.variance_ratio(np.arange(10.0), t) == math.inf
    assert metrics.ic(np.arange(10.0), t) == 0.0


@pytest.mark.parametrize("p,t", [([], []), ([np.nan, 1.0], [1.0, np.nan]), ([np.inf], [np.inf])])
def test_nothing_finite_gives_nan(p: list[float], t: list[float]) -> None:
    assert math.isnan(metrics.rmse(p, t))
    assert math.isnan(metrics.r2(p, t))
    assert math.isnan(metrics.variance_ratio(p, t))
    assert math.isnan(metrics.sharpe(p, t))
    assert metrics.ic(p, t) == 0.0 and metrics.rank_ic(p, t) == 0.0


def test_single_point_and_length_mismatch() -> None:
    assert metrics.ic([1.0], [2.0]) == 0.0
    assert metrics.rank_ic([1.0], [2.0]) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        metrics.rmse([1.0, 2.0], [1.0])


def test_betting_metrics() -> None:
    bet = np.array([1, 1, 0, 1, 0], dtype=bool)
    reward = np.array([0.9, -1.0, 5.0, 1.5, np.nan])
    m = metrics.betting_metrics(bet, reward)
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["roi"] == pytest.approx((0.9 - 1.0 + 1.5) / 3)
    assert m["bet_rate"] == pytest.approx(3 / 4)  # the NaN row cannot be scored
    assert metrics.betting_metrics(np.zeros(3), np.ones(3)) == {"win_rate": 0.0, "roi": 0.0, "bet_rate": 0.0}
    assert all(math.isnan(v) for v in metrics.betting_metrics([], []).values())


def test_accuracy_and_scalar_metrics() -> None:
    import torch

    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert math.isnan(metrics.accuracy([], []))
    raw = {
        "a": torch.tensor(1.5),
        "b": 2,
        "flag": True,
        "vec": torch.ones(3),
        "s": "x",
        "n": np.float32(0.25),
    }
    assert metrics.scalar_metrics(raw) == {"a": 1.5, "b": 2.0, "n": 0.25}
