"""Synthetic generators are deterministic by seed and shaped as the tasks expect; format inference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from campaign_trainer.data import synthetic
from campaign_trainer.data.loaders import infer_format

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("gen", [synthetic.regression, synthetic.betting, synthetic.sequence])
def test_same_seed_same_bytes_other_seed_other_data(gen: Callable[..., synthetic.Arrays]) -> None:
    a, b, c = gen(300, 1), gen(300, 1), gen(300, 2)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    assert any(a[k].tobytes() != c[k].tobytes() for k in a)


def test_shapes_and_value_ranges() -> None:
    r = synthetic.regression(100, 0, {"features": 5})
    assert r["x"].shape == (100, 5) and r["y"].shape == (100,) and r["x"].dtype == np.float32
    bet = synthetic.betting(500, 0)
    assert bet["state"].shape == (500, 6) and set(np.unique(bet["action"])) <= {0, 1}
    assert np.all(bet["reward"][bet["action"] == 0] == 0)  # no bet, no profit or loss
    assert np.all((bet["bet_reward"] == -1) | (bet["bet_reward"] > 0))
    seq = synthetic.sequence(400, 0, {"seq_len": 12})
    assert seq["x"].shape == (400, 12, 4) and seq["price"].shape == (400,)
    counts = np.bincount(seq["action"], minlength=3)
    assert counts.min() > 100  # tertiles: sell / hold / buy roughly balanced


def test_signal_controls_learnability() -> None:
    strong = synthetic.regression(2000, 0, {"signal": 1.0, "noise": 0.1})
    weak = synthetic.regression(2000, 0, {"signal": 0.1, "noise": 1.0})

    def linear_r2(d: synthetic.Arrays) -> float:
        x = np.c_[d["x"], np.ones(len(d["x"]))]
        coef, *_ = np.linalg.lstsq(x, d["y"], rcond=None)
        resid = d["y"] - x @ coef
        return float(1 - resid.var() / d["y"].var())

    assert linear_r2(strong) > 0.5 > 0.05 > linear_r2(weak)


def test_windows_need_enough_history() -> None:
    with pytest.raises(ValueError, match="too short"):
        synthetic.windows_from_returns(np.zeros(10), seq_len=10)


@pytest.mark.parametrize(
    "path,explicit,expected",
    [
        ("data.csv", None, "csv"),
        ("s3://b/k/data.parquet", None, "parquet"),
        ("x.pq", None, "parquet"),
        ("x.csv.gz", None, "csv"),
        ("blob", "parquet", "parquet"),
        ("x.csv", "PARQUET", "parquet"),
    ],
)
def test_infer_format(path: str, explicit: str | None, expected: str) -> None:
    assert infer_format(path, explicit) == expected


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="format"):
        infer_format("data.json")
