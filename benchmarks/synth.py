"""Synthetic bars for benchmarks: a BTC-like random walk with clustered volatility and an OI path.

Not market data: it only has the shape of it (sizes, scales, noise), so the engine's cost is
realistic. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np


def synthetic_bars(steps: int, interval_ms: int = 300_000, price: float = 95_000.0,
                   seed: int = 1, start_ms: int = 1_761_955_200_000) -> dict:
    rng = np.random.default_rng(seed)
    per_bar = 0.0025 * np.sqrt(interval_ms / 300_000)
    vol = per_bar * np.exp(np.convolve(rng.normal(0, 0.35, steps), np.ones(48) / 7, "same"))
    ret = rng.normal(0, 1, steps) * vol
    close = price * np.exp(np.cumsum(ret) - ret.sum())  # ends at `price`
    open_ = np.r_[close[0] / np.exp(ret[0]), close[:-1]]
    wick = np.abs(rng.normal(0, 0.6, (2, steps))) * vol * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.gamma(2.0, 60.0 * interval_ms / 300_000, steps) * (vol / per_bar)
    vwap = (high + low + 2 * close) / 4
    quote = volume * vwap
    taker = quote * np.clip(rng.normal(0.5, 0.08, steps) + 20 * ret, 0.05, 0.95)
    oi = 80_000 * np.exp(np.cumsum(rng.normal(0, 0.0015, steps) - 0.6 * np.abs(ret) * (rng.random(steps) < 0.3)))
    return {
        "time": start_ms + interval_ms * np.arange(steps, dtype=np.int64),
        "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "quote_volume": quote, "taker_buy_quote_volume": taker,
        "open_interest": oi,
    }
