"""The newest, provisional column: the final state advanced by the forming step.

Between closed steps the live feed has the forming bar, polled open interest and the live mark
price. Rebuilding the history for each of those would be wasteful, so the provisional column
applies one step of LQ-1 (consume → net → close or create; no decay for a partial step) to the
final state of the last rebuild. It is replaced when the closed step arrives, whose rebuild is
the truth. Deposits that would fall outside the stored price span are left out of the
provisional column (counted in ``outside``); the closed step's rebuild includes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .engine import bar_features
from .heatmap import Heatmap


@dataclass(frozen=True)
class Provisional:
    column: np.ndarray    # (B,) USD under the active filters
    state: np.ndarray     # (tiers, 2, B) base quantity after the forming step
    consumed: np.ndarray  # (2,) base liquidated by the forming step, long and short
    net: float            # n = ΔOI + consumed
    outside: float        # base quantity that fell outside the stored span


def provisional(hm: Heatmap, bar: Mapping[str, float], open_interest: float | None) -> Provisional:
    """Advance ``hm``'s final state by the forming ``bar`` with ``open_interest`` now (base).

    ``bar`` holds open, high, low, close, volume, quote_volume, taker_buy_quote_volume and
    optionally mark_high, mark_low (the live mark price range so far).
    """
    p, grid, off = hm.params, hm.grid, hm.bin_offset
    nb = len(hm.prices)
    px = np.array([[bar["open"]], [bar["high"]], [bar["low"]], [bar["close"]]], dtype=np.float64)
    hi, lo, vwap, sp = (float(x[0]) for x in bar_features(
        px, np.array([bar.get("volume", 0.0)]), np.array([bar.get("quote_volume", 0.0)]),
        np.array([bar.get("taker_buy_quote_volume", math.nan)]), p.alpha))
    close = float(px[3, 0])
    mark_low, mark_high = bar.get("mark_low"), bar.get("mark_high")
    cons_low = mark_low if mark_low is not None and math.isfinite(mark_low) and mark_low > 0 else lo
    cons_high = mark_high if mark_high is not None and math.isfinite(mark_high) and mark_high > 0 else hi

    a = hm.state.copy()
    consumed = np.zeros(2)
    jl = int(grid.first_centre_at_or_above(cons_low)) - off
    if jl < nb:
        consumed[0] = a[:, 0, max(jl, 0):].sum()
        a[:, 0, max(jl, 0):] = 0.0
    jh = int(grid.last_centre_at_or_below(cons_high)) - off
    if jh >= 0:
        consumed[1] = a[:, 1, : jh + 1].sum()
        a[:, 1, : jh + 1] = 0.0
    doi = 0.0
    if open_interest is not None and math.isfinite(open_interest) and math.isfinite(hm.last_open_interest):
        doi = open_interest - hm.last_open_interest
    n = doi + consumed.sum()
    outside = 0.0
    if n < 0:
        for side, r in ((0, -n * (1 - sp)), (1, -n * sp)):
            total = a[:, side].sum()
            if total > 0:
                a[:, side] *= max(0.0, 1.0 - r / total)
    elif n > 0:
        shares = (1.0, 1.0) if p.both_sides else (sp, 1.0 - sp)
        entries = ((lo, 0.25), (vwap, 0.5), (hi, 0.25)) if (
            p.entry_spread and hm.interval_ms >= 5 * 60_000) else ((vwap, 1.0),)
        for side, sign in ((0, -1.0), (1, 1.0)):
            for k, (lev, w) in enumerate(zip(p.leverages, p.weights)):
                for entry, ew in entries:
                    price = entry * (1 + sign / lev) / (1 + sign * p.mmr)
                    if (price >= close) if side == 0 else (price <= close):
                        continue
                    q = n * shares[side] * w * ew
                    j, frac = grid.split(price)
                    for b, part in ((int(j) - off, 1.0 - float(frac)), (int(j) + 1 - off, float(frac))):
                        if 0 <= b < nb:
                            a[k, side, b] += q * part
                        else:
                            outside += q * part
    usd = a * hm.prices * (p.tier_mask[:, None, None] & p.side_mask[None, :, None])
    return Provisional(column=usd.sum(axis=(0, 1)), state=a, consumed=consumed, net=n,
                       outside=outside)
