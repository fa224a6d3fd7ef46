"""Deterministic synthetic datasets, one per built-in task (no downloads; same seed -> same bytes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

Arrays = dict[str, NDArray[Any]]


def regression(samples: int, seed: int, options: Mapping[str, Any] | None = None) -> Arrays:
    """Tabular features -> a return-like target with a tunable signal-to-noise ratio.

    ``signal`` scales the learnable part (a linear term plus a mild interaction), ``noise`` the
    unpredictable part. Low signal/noise is the regime of the variance-collapse field report: an MSE
    model is tempted to predict the mean.

    ``days`` (optional) makes it a panel: rows in time order over that many days (a ``day`` array,
    the group column of the per-day loss terms), each day's returns shifted by a common market move
    of std ``market`` (default 0.5) that no feature predicts, so per-day and pooled IC differ.
    """
    o = dict(options or {})
    n_features = int(o.get("features", 8))
    signal = float(o.get("signal", 1.0))
    noise = float(o.get("noise", 0.3))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, n_features))
    w = rng.standard_normal(n_features) / np.sqrt(n_features)
    f = x @ w + 0.5 * np.sin(x[:, 0] * x[:, 1 % n_features])
    f = (f - f.mean()) / (f.std() + 1e-12)
    y = signal * f + noise * rng.standard_normal(samples)
    out = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    if o.get("days") is not None:
        out.update(_days(y, int(o["days"]), float(o.get("market", 0.5)), seed))
    return out


def _days(y: NDArray[Any], days: int, market: float, seed: int) -> Arrays:
    if not 1 <= days <= len(y):
        raise ValueError(
            f"dataset.synthetic.options.days must be between 1 and samples ({len(y)}), got {days}"
        )
    day = np.arange(len(y)) * days // len(y)
    move = np.random.default_rng([seed, days]).standard_normal(days) * market  # own stream: x, f unchanged
    return {"day": day.astype(np.int64), "y": (y + move[day]).astype(np.float32)}


def betting(samples: int, seed: int, options: Mapping[str, Any] | None = None) -> Arrays:
    """Logged bets for offline RL: 6-dim state, action 0 = no bet / 1 = bet, one-step reward.

    The true win probability is the bookmaker's implied probability plus a hidden edge that two noisy
    state features reveal. ``bet_reward`` is the counterfactual profit of betting one unit (known for
    every row because the game outcome is), used to score a learned policy on held-out rows.
    """
    o = dict(options or {})
    edge_scale = float(o.get("edge", 0.12))
    behaviour_bet_rate = float(o.get("bet_rate", 0.5))
    rng = np.random.default_rng(seed)
    implied = rng.uniform(0.3, 0.7, samples)
    vig = 0.04
    odds = (1.0 - vig) / implied  # decimal odds
    z1, z2 = rng.standard_normal(samples), rng.standard_normal(samples)
    edge = edge_scale * np.tanh(z1) + 0.5 * edge_scale * z2.clip(-2, 2) / 2
    p_win = np.clip(implied + edge, 0.02, 0.98)
    win = rng.uniform(size=samples) < p_win
    bet_reward = np.where(win, odds - 1.0, -1.0)
    home = rng.integers(0, 2, samples).astype(np.float64)
    rest = rng.normal(0.0, 1.0, samples)
    state = np.stack(
        [
            (implied - 0.5) / 0.12,
            (odds - 2.0) / 0.6,
            z1 + 0.3 * rng.standard_normal(samples),
            z2 + 0.3 * rng.standard_normal(samples),
            home - 0.5,
            rest,
        ],
        axis=1,
    )
    action = (rng.uniform(size=samples) < behaviour_bet_rate).astype(np.int64)
    reward = np.where(action == 1, bet_reward, 0.0)
    return {
        "state": state.astype(np.float32),
        "action": action,
        "reward": reward.astype(np.float32),
        "bet_reward": bet_reward.astype(np.float32),
    }


def returns_series(length: int, seed: int, options: Mapping[str, Any] | None = None) -> NDArray[np.float64]:
    """Daily-return-like series with momentum (AR(1)) and volatility regimes, so the next move is
    partly predictable from the window."""
    o = dict(options or {})
    phi = float(o.get("momentum", 0.6))
    rng = np.random.default_rng(seed)
    vol = np.where(np.sin(np.arange(length) / 40.0) > 0, 0.01, 0.02)
    r = np.zeros(length)
    for t in range(1, length):
        r[t] = phi * r[t - 1] + vol[t] * rng.standard_normal()
    return r


def windows_from_returns(
    returns: NDArray[np.float64], seq_len: int, options: Mapping[str, Any] | None = None
) -> Arrays:
    """Sliding windows of per-step features -> (next-return action label, standardised next return).

    Features per step: standardised return, 5-step mean, 5-step volatility, sign of the return.
    Actions are tertiles of the next return: 0 = sell, 1 = hold, 2 = buy.
    """
    r = np.asarray(returns, dtype=np.float64)
    scale = r.std() + 1e-12
    z = (r - r.mean()) / scale
    kernel = np.ones(5) / 5.0
    mean5 = np.convolve(z, kernel, mode="full")[: z.size]
    vol5 = np.sqrt(np.convolve(z**2, kernel, mode="full")[: z.size])
    feats = np.stack([z, mean5, vol5, np.sign(z)], axis=1)
    n = z.size - seq_len
    if n <= 0:
        raise ValueError(f"series of length {z.size} is too short for seq_len={seq_len}")
    idx = np.arange(seq_len)[None, :] + np.arange(n)[:, None]
    x = feats[idx]
    nxt = z[seq_len:]
    lo, hi = np.quantile(nxt, [1 / 3, 2 / 3])
    action = np.where(nxt > hi, 2, np.where(nxt < lo, 0, 1)).astype(np.int64)
    return {"x": x.astype(np.float32), "action": action, "price": nxt.astype(np.float32)}


def sequence(samples: int, seed: int, options: Mapping[str, Any] | None = None) -> Arrays:
    o = dict(options or {})
    seq_len = int(o.get("seq_len", 30))
    return windows_from_returns(returns_series(samples + seq_len, seed, o), seq_len, o)
