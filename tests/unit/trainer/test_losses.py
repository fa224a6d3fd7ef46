"""The regression task's loss terms against references computed here with numpy/scipy, their
validation, and the whole-day batching they rely on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, rankdata, spearmanr

from campaign_trainer.data import synthetic
from campaign_trainer.data.groups import WholeGroupBatchSampler, group_codes, groups_per_batch
from campaign_trainer.losses import (
    WeightedLoss,
    average_ranks,
    loss_from_parameters,
    parse_loss_weights,
    soft_ranks,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def panel() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Five days of 40 names: predictions with a little skill, day codes out of order."""
    rng = np.random.default_rng(3)
    day = np.repeat(np.array([4, 0, 3, 1, 2]), 40)
    y = rng.standard_normal(day.size)
    pred = 0.3 * y + rng.standard_normal(day.size)
    return pred, y, day


def _term(name: str, pred: np.ndarray, y: np.ndarray, day: np.ndarray | None, **kw: float) -> float:
    loss = WeightedLoss({name: 1.0}, **kw)
    t = torch.from_numpy
    return float(loss(t(pred), t(y), None if day is None else t(day)))


def _by_day(day: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(day == d) for d in np.unique(day)]


def test_mse_and_huber_match_numpy(panel: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred, y, _ = panel
    err = pred - y
    assert _term("mse", pred, y, None) == pytest.approx(np.mean(err**2))
    delta = 0.5
    quad = np.abs(err) <= delta
    huber = np.where(quad, 0.5 * err**2, delta * (np.abs(err) - 0.5 * delta))
    assert _term("huber", pred, y, None, huber_delta=delta) == pytest.approx(huber.mean())


def test_sharpe_is_minus_the_sharpe_of_the_prediction_weighted_daily_portfolio(
    panel: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    pred, y, day = panel
    daily = np.array([pred[i] @ y[i] / np.abs(pred[i]).sum() for i in _by_day(day)])
    assert _term("sharpe", pred, y, day) == pytest.approx(-daily.mean() / daily.std(), rel=1e-6)


def test_ic_is_minus_the_mean_daily_pearson(panel: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred, y, day = panel
    reference = np.mean([pearsonr(pred[i], y[i])[0] for i in _by_day(day)])
    assert _term("ic", pred, y, day) == pytest.approx(-reference, rel=1e-6)
    pooled = pearsonr(pred, y)[0]
    shifted = y + np.repeat(np.arange(5.0), 40) * 3  # a per-day level the cross-section ignores
    assert _term("ic", pred, shifted, day) == pytest.approx(-reference, rel=1e-6)
    assert pearsonr(pred, shifted)[0] != pytest.approx(pooled, abs=0.05)


def test_rank_ic_tends_to_minus_the_mean_daily_spearman(
    panel: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    pred, y, day = panel
    reference = np.mean([spearmanr(pred[i], y[i])[0] for i in _by_day(day)])
    assert _term("rank_ic", pred, y, day, soft_rank_temperature=1e-4) == pytest.approx(-reference, abs=1e-3)
    smooth = _term("rank_ic", pred, y, day, soft_rank_temperature=0.5)
    assert smooth != pytest.approx(-reference, abs=1e-3) and abs(smooth + reference) < 0.1


def test_soft_ranks_against_their_formula_and_average_ranks_against_scipy() -> None:
    x = np.array([0.3, -1.0, 2.0, 0.3, 0.7])
    z = (x - x.mean()) / x.std()
    t = 0.2
    formula = 0.5 + (1.0 / (1.0 + np.exp(-(z[:, None] - z[None, :]) / t))).sum(axis=1)
    assert soft_ranks(torch.from_numpy(x), t).numpy() == pytest.approx(formula, rel=1e-6)
    assert average_ranks(torch.from_numpy(x)).numpy() == pytest.approx(rankdata(x, method="average"))


def test_the_per_day_terms_have_gradients(panel: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred, y, day = panel
    for name in ("sharpe", "ic", "rank_ic"):
        p = torch.from_numpy(pred).requires_grad_()
        loss = WeightedLoss({name: 1.0})(p, torch.from_numpy(y), torch.from_numpy(day))
        loss.backward()  # type: ignore[no-untyped-call]  # torch's stubs leave backward untyped
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_the_combination_is_the_weighted_sum(panel: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pred, y, day = panel
    weights = {"huber": 1.0, "sharpe": 0.1, "ic": 0.05, "rank_ic": 0.05}
    combined = _term_mix(weights, pred, y, day)
    assert combined == pytest.approx(sum(w * _term(n, pred, y, day) for n, w in weights.items()), rel=1e-6)


def _term_mix(weights: dict[str, float], pred: np.ndarray, y: np.ndarray, day: np.ndarray) -> float:
    t = torch.from_numpy
    return float(WeightedLoss(weights)(t(pred), t(y), t(day)))


def test_degenerate_days_score_no_signal() -> None:
    pred = np.array([1.0, 1.0, 1.0, 0.5, -0.5])
    y = np.array([0.2, -0.1, 0.3, 0.1, 0.4])
    day = np.array([0, 0, 0, 1, 2])  # day 0: constant prediction; days 1, 2: one row each
    assert _term("ic", pred, y, day) == 0.0
    assert _term("rank_ic", pred, y, day) == 0.0
    assert _term("sharpe", pred, y, np.zeros(5, dtype=np.int64)) == 0.0  # one day: no dispersion


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, {"mse": 1.0}), ("huber", {"huber": 1.0}), ({"mse": 0, "ic": 0.5}, {"ic": 0.5})],
)
def test_loss_weights_parse(value: object, expected: dict[str, float]) -> None:
    assert parse_loss_weights(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"sharp": 1.0}, r"hyperparameter loss: unknown term\(s\) \['sharp'\]"),
        ({"ic": -1}, r"loss\.ic: weight must be >= 0"),
        ({"ic": "big"}, r"loss\.ic: weight must be a finite number"),
        ({"ic": float("nan")}, r"loss\.ic: weight must be a finite number"),
        ({"ic": 0}, "every weight is 0"),
        ([1, 2], "expected a mapping of term -> weight"),
    ],
)
def test_bad_loss_weights_name_the_hyperparameter(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_loss_weights(value)


def test_per_day_terms_need_a_group_column_and_knobs_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"\['rank_ic', 'sharpe'\] are computed per day; set group_column"):
        loss_from_parameters({"loss": {"sharpe": 1.0, "rank_ic": 1.0}})
    with pytest.raises(ValueError, match="hyperparameter soft_rank_temperature: expected a number > 0"):
        loss_from_parameters({"soft_rank_temperature": 0})
    assert loss_from_parameters({"loss": {"ic": 1.0}, "group_column": "date"}).per_day


def test_batches_hold_whole_days_in_a_seeded_order() -> None:
    day = group_codes(
        np.array(["2024-01-03", "2024-01-02", "2024-01-02", "2024-01-04", "2024-01-03"] * 4), "g"
    )
    sampler = WholeGroupBatchSampler(day, 2, torch.Generator().manual_seed(0))
    first = list(sampler)
    assert len(first) == len(sampler) == 2
    assert sorted(i for b in first for i in b) == list(range(day.size))
    for batch in first:
        for d in np.unique(day[batch]):
            assert set(np.flatnonzero(day == d)) <= set(batch)  # every row of its days
    again = list(WholeGroupBatchSampler(day, 2, torch.Generator().manual_seed(0)))
    assert again == first


def test_days_per_batch() -> None:
    day = np.repeat(np.arange(10), 50)
    assert groups_per_batch(day, 256, {}) == 5
    assert groups_per_batch(day, 10, {}) == 1
    assert groups_per_batch(day, 256, {"days_per_batch": 3}) == 3
    with pytest.raises(ValueError, match="hyperparameter days_per_batch: expected an integer >= 1"):
        groups_per_batch(day, 256, {"days_per_batch": 0})


def test_group_column_with_missing_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="group_column 'date' has missing values"):
        group_codes(np.array(["a", None, "b"], dtype=object), "group_column 'date'")


def test_synthetic_regression_emits_days_on_request_only() -> None:
    plain = synthetic.regression(300, 1)
    panel = synthetic.regression(300, 1, {"days": 12})
    assert "day" not in plain
    assert panel["x"].tobytes() == plain["x"].tobytes()
    assert np.array_equal(np.unique(panel["day"]), np.arange(12)) and np.all(np.diff(panel["day"]) >= 0)
    moves = [(panel["y"] - plain["y"])[panel["day"] == d] for d in range(12)]
    assert all(np.allclose(m, m[0], atol=1e-5) for m in moves)  # one market move per day
    with pytest.raises(ValueError, match=r"options\.days must be between 1 and samples"):
        synthetic.regression(10, 1, {"days": 11})
