"""Who the simulated traders are: arrivals, sides, leverage, size and exit plans.

Deliberately *not* LQ-1's assumptions (the fidelity score would be circular otherwise):

* leverage is continuous and heavy-tailed (integer 2x–125x, most at 3–20x, a tail at
  50–125x), drawn per trader type, lower for bigger positions and capped by the bracket table
  for the position's own notional, instead of five fixed tiers with fixed weights;
* sides come from four behaviours (trend followers, mean reverters, momentum scalpers and
  long-biased retail) reacting to the price history, not from the candle's taker share;
* exits are planned at entry: a holding time that shrinks with leverage, an optional
  take-profit and stop-loss placed relative to the liquidation distance, and a loser held once
  past its planned time (the disposition effect), instead of LQ-1's proportional close.

Everything that does not depend on the market at the moment of opening is drawn in advance for
a pool of future positions (one numpy pass for thousands of positions, and reproducible from
the pool number alone); only the side is decided at opening, from the signals.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

TREND, MEANREV, SCALPER, RETAIL = range(4)
KINDS = ("trend", "meanrev", "scalper", "retail")

SHARE = np.array([0.32, 0.24, 0.14, 0.30])           # of new positions
LEV_MEDIAN = np.array([10.0, 6.0, 40.0, 15.0])       # lognormal leverage per type
LEV_SIGMA = np.array([0.70, 0.60, 0.55, 0.85])
HOLD_MEDIAN = np.array([1080.0, 480.0, 60.0, 720.0])  # minutes at 10x; × (10/L)^0.5
HOLD_SIGMA = 1.0
TP_PROB = np.array([0.30, 0.75, 0.85, 0.45])         # take-profit at a fraction of the
TP_FRAC = np.array([1.40, 0.45, 0.30, 0.60])         #   liquidation distance beyond entry
SL_PROB = np.array([0.55, 0.30, 0.50, 0.15])         # stop-loss at a fraction of the way
SL_FRAC = np.array([0.55, 0.80, 0.50, 0.65])         #   from entry to the liquidation price
EXTEND_PROB = 0.5                                    # a loser at its planned time: hold on
SIZE_SIGMA = 1.4                                     # lognormal notional (USD)
MAX_HOLD = 21 * 1440
POOL_SIZE = 16384


def side_prob(kind: np.ndarray, trend: float, revert: float, mom: float) -> np.ndarray:
    """P(long) per new position from the market signals (in units of recent volatility).

    trend: fast minus slow moving average; revert: price minus a 2-hour average; mom: the last
    five minutes' return.
    """
    p = np.array([
        0.5 + 0.40 * math.tanh(1.5 * trend),
        0.5 - 0.40 * math.tanh(1.2 * revert),
        0.5 + 0.42 * math.tanh(1.5 * mom),
        0.56 + 0.15 * math.tanh(mom),
    ])
    return p[kind]


def draw_pool(seed: int, symbol: str, regime_id: int, number: int, median_usd: float) -> dict:
    """The pre-drawn attributes of the next ``POOL_SIZE`` positions of a symbol."""
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode()), regime_id, 2, number])
    n = POOL_SIZE
    u = rng.random((10, n))
    z = rng.standard_normal((3, n))
    kind = np.searchsorted(np.cumsum(SHARE), u[0] * SHARE.sum(), side="right").clip(0, 3)
    usd = median_usd * np.exp(SIZE_SIGMA * z[1])
    lev = np.exp(np.log(LEV_MEDIAN[kind]) + LEV_SIGMA[kind] * z[0])
    # bigger positions are run by more careful traders: leverage falls with size
    lev = np.rint(lev * np.clip((median_usd / usd) ** 0.1, 0.6, 1.3)).clip(2, 125)
    hold = HOLD_MEDIAN[kind] * (10.0 / lev) ** 0.5 * np.exp(HOLD_SIGMA * z[2])
    ext = np.where(u[5] < EXTEND_PROB, hold * (0.5 + 1.5 * u[6]), 0)
    return {
        "kind": kind.astype(np.int8),
        "u_side": u[1],
        "lev": lev,
        "usd": usd,
        "hold": np.clip(hold, 2, MAX_HOLD).astype(np.int64),
        "ext": np.clip(ext, 0, MAX_HOLD).astype(np.int64),
        "tp": np.where(u[2] < TP_PROB[kind], TP_FRAC[kind] * (0.6 + 0.8 * u[3]), np.nan),
        "sl": np.where(u[4] < SL_PROB[kind], SL_FRAC[kind] * (0.8 + 0.4 * u[7]), np.nan),
        "sec": (u[8] * 60).astype(np.int64),
        "csec": (u[9] * 60).astype(np.int64),  # the second of the planned close
    }


def mean_life(pool: dict) -> float:
    """A rough mean lifetime (minutes): planned holding, extensions, early exits."""
    return float(np.mean(pool["hold"] + 0.5 * pool["ext"]) * 0.7)
