"""Writes the examples' sample data: synthetic, deterministic stand-ins for the seed teams' private data.

    python examples/data/generate.py        # rewrites examples/data/{aapl_daily.csv,nifty100/*.parquet}

Nothing here is market data. The series have the shape the seeds describe (daily bars; one feature
table per NSE symbol, starting at its listing date) and a weak predictable component, so a model has
something to learn and a broken pipeline shows up as no skill.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
HISTORY_START = "2021-09-01"  # some history before the first walk-forward window (2022-01-01)
HISTORY_END = "2024-12-01"


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def aapl_daily(rows: int = 2240) -> pd.DataFrame:
    """Daily OHLCV bars, a geometric random walk with mild momentum (seed 003's quick test)."""
    rng = _rng("aapl")
    ret = np.empty(rows)
    ret[0] = 0.0
    noise = rng.normal(0.0004, 0.017, rows)
    for t in range(1, rows):
        ret[t] = 0.08 * ret[t - 1] + noise[t]
    close = 40.0 * np.exp(np.cumsum(ret))
    spread = np.abs(rng.normal(0, 0.008, rows)) * close
    open_ = close * np.exp(-ret * rng.uniform(0.2, 0.8, rows))
    dates = pd.bdate_range("2016-01-04", periods=rows)
    return pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "open": open_.round(4),
            "high": (np.maximum(open_, close) + spread).round(4),
            "low": (np.minimum(open_, close) - spread).round(4),
            "close": close.round(4),
            "volume": rng.integers(20_000_000, 90_000_000, rows),
        }
    )


def symbol_features(name: str, listed: str | None, market: pd.Series) -> pd.DataFrame:
    """One symbol's daily features and its 5-day forward return (seed 002's per-symbol table)."""
    rng = _rng(name)
    dates = market.index
    n = len(dates)
    alpha = np.convolve(rng.normal(0, 1, n + 9), np.ones(10) / 10, mode="valid")[:n]  # slow signal
    ret = rng.uniform(0.6, 1.4) * market.to_numpy() + 0.004 * alpha + rng.normal(0, 0.014, n)
    price = pd.Series(np.exp(np.cumsum(ret)), index=dates)
    frame = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "mom_5": price.pct_change(5),
            "mom_20": price.pct_change(20),
            "vol_20": pd.Series(ret, index=dates).rolling(20).std(),
            "market_5": market.rolling(5).sum(),
            "signal": alpha + rng.normal(0, 1.0, n),  # the predictable part, seen through noise
            "volume_z": rng.normal(0, 1, n),
            "fwd_return_5d": price.shift(-5) / price - 1.0,
        }
    ).dropna()
    if listed is not None:
        frame = frame[frame["date"] >= listed]
    return frame.reset_index(drop=True).astype({c: "float32" for c in frame.columns if c != "date"})


def nifty_universe() -> list[dict[str, str]]:
    manifest = yaml.safe_load((HERE.parent / "teacher-student.yaml").read_text())
    axes = manifest["spec"]["phases"][0]["sweep"]["matrix"]["axes"]
    return list(axes["symbol"])


def main() -> int:
    aapl_daily().to_csv(HERE / "aapl_daily.csv", index=False)
    dates = pd.bdate_range(HISTORY_START, HISTORY_END)
    market = pd.Series(_rng("market").normal(0.0003, 0.009, len(dates)), index=dates)
    out = HERE / "nifty100"
    out.mkdir(exist_ok=True)
    for symbol in nifty_universe():
        frame = symbol_features(symbol["name"], symbol.get("listed"), market)
        frame.to_parquet(out / f"{symbol['name']}.parquet", index=False, compression="zstd")
    print(f"wrote {HERE / 'aapl_daily.csv'} and {len(nifty_universe())} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
