"""Levels (clusters of estimated liquidations) and the cumulative liquidation map."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIDES = ("long", "short")


@dataclass(frozen=True)
class Level:
    price: float          # USD-weighted mean price of the cluster's bins
    side: str             # "long" or "short": the positions that would be liquidated
    usd: float            # estimated notional resting in the cluster
    distance_pct: float   # signed distance from the reference price, negative below
    cumulative_usd: float # all of that side's USD from the price out through the cluster
    tiers: dict = field(default_factory=dict)  # USD per leverage tier label
    low: float = 0.0      # lower edge of the lowest bin holding USD
    high: float = 0.0     # upper edge of the highest bin holding USD


@dataclass(frozen=True)
class LiquidationMap:
    prices: np.ndarray     # bin centres
    long_usd: np.ndarray   # long USD liquidated if price falls to each bin (bins ≥ i)
    short_usd: np.ndarray  # short USD liquidated if price rises to each bin (bins ≤ i)
    reference_price: float


def smooth3(y: np.ndarray) -> np.ndarray:
    """[1, 1, 1]/3 moving average, zero outside the span."""
    p = np.pad(y, 1)
    return (p[:-2] + p[1:-1] + p[2:]) / 3.0


def clusters(y: np.ndarray, centre_index: float) -> list[tuple[int, int]]:
    """Partition the bins around the local maxima of ``y`` into (first, last) bin ranges.

    Peaks are plateau-aware maxima (runs of equal values higher than both neighbouring runs,
    zero outside). Between two peaks the split is the lowest bin (the middle of a flat lowest
    run); it belongs to the larger peak, or on a tie the one nearer ``centre_index`` (the price).
    """
    n = len(y)
    if n == 0:
        return []
    change = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    run_end = np.r_[change[1:], n] - 1
    val = y[change]
    left = np.r_[0.0, val[:-1]]
    right = np.r_[val[1:], 0.0]
    peak_runs = np.flatnonzero((val > 0) & (val > left) & (val > right))
    if peak_runs.size == 0:
        return []
    peaks = [(int(change[r]), int(run_end[r]), float(val[r])) for r in peak_runs]
    bounds = []
    first = 0
    for (a0, a1, av), (b0, b1, bv) in zip(peaks, peaks[1:]):
        seg = y[a1 + 1 : b0]
        lo = float(seg.min())
        where = np.flatnonzero(seg == lo) + a1 + 1
        # the middle of the first lowest run
        run = where[: int(np.argmax(np.r_[np.diff(where) > 1, True])) + 1]
        m = int(run[len(run) // 2])
        to_left = av > bv or (av == bv and abs((a0 + a1) / 2 - centre_index) <= abs((b0 + b1) / 2 - centre_index))
        bounds.append((first, m if to_left else m - 1))
        first = m + 1 if to_left else m
    bounds.append((first, n - 1))
    return bounds


def find_levels(usd_tiers: np.ndarray, labels: list[str], prices: np.ndarray, width: float,
                reference: float, top: int = 10) -> list[Level]:
    """Levels from the final USD per (tier, side, bin) of the enabled tiers and sides."""
    side_usd = usd_tiers.sum(axis=0)  # (2, B)
    centre_index = (reference - prices[0]) / width if len(prices) else 0.0
    found: list[Level] = []
    for s, side in enumerate(SIDES):
        raw = side_usd[s]
        if not raw.any():
            continue
        # cumulative from the price outward: longs fall top-down, shorts bottom-up
        cum = np.cumsum(raw[::-1])[::-1] if s == 0 else np.cumsum(raw)
        for a, b in clusters(smooth3(raw), centre_index):
            part = raw[a : b + 1]
            usd = float(part.sum())
            if usd <= 0:
                continue
            held = np.flatnonzero(part > 0) + a
            price = float((part * prices[a : b + 1]).sum() / usd)
            found.append(Level(
                price=price, side=side, usd=usd,
                distance_pct=(price / reference - 1.0) * 100.0,
                cumulative_usd=float(cum[held[0]] if s == 0 else cum[held[-1]]),
                tiers={lab: float(usd_tiers[t, s, a : b + 1].sum()) for t, lab in enumerate(labels)},
                low=float(prices[held[0]] - width / 2), high=float(prices[held[-1]] + width / 2),
            ))
    found.sort(key=lambda lv: (-lv.usd, abs(lv.price - reference)))
    return found[:top]


def liquidation_map(long_usd: np.ndarray, short_usd: np.ndarray, prices: np.ndarray,
                    reference: float) -> LiquidationMap:
    return LiquidationMap(
        prices=prices,
        long_usd=np.cumsum(long_usd[::-1])[::-1],
        short_usd=np.cumsum(short_usd),
        reference_price=reference,
    )
