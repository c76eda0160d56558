"""Map a :class:`~liqtui.model.Heatmap` onto screen pixels (pure numpy, no textual).

Screen geometry: ``cols`` columns cover ``(end_ms − range_ms, end_ms]`` in equal periods; each
takes the heatmap column **as of the end of its period** (the latest column whose end time is
≤ the cell end; none → zero). ``rows`` pixel rows cover ``[price_lo, price_hi)`` in equal
heights, row 0 at the top (highest price); every price bin whose centre falls in a pixel row is
summed into it, so Σ pixels = Σ visible bins (centre in ``[price_lo, price_hi)``).

With half blocks a terminal row holds two pixel rows, so ``rows`` = 2 × terminal rows.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_HALF_SPAN = 0.06  # zoom 1: the window spans ±6 % around the centre price


def cell_ends(end_ms: float, range_ms: float, cols: int) -> np.ndarray:
    """(cols,) end time of each screen column's period, ms (the last one is ``end_ms``)."""
    j = np.arange(1, cols + 1, dtype=np.float64)
    return end_ms - range_ms + j * (range_ms / cols)


def column_index(times: np.ndarray, end_ms: float, range_ms: float, cols: int) -> np.ndarray:
    """(cols,) heatmap column per screen column (as of its end), −1 where none exists yet."""
    ends = cell_ends(end_ms, range_ms, cols)
    return np.searchsorted(np.asarray(times, dtype=np.float64), ends, side="right") - 1


def bin_bounds(prices: np.ndarray, rows: int, price_lo: float, price_hi: float) -> np.ndarray:
    """(rows + 1,) bin index bounds, top row first: pixel row r sums bins ``[b[r+1], b[r])``."""
    edges = price_lo + np.arange(rows + 1, dtype=np.float64) * ((price_hi - price_lo) / rows)
    edges[-1] = price_hi
    return np.searchsorted(prices, edges, side="left")[::-1]


def bin_rows(values: np.ndarray, prices: np.ndarray, rows: int, price_lo: float,
             price_hi: float) -> np.ndarray:
    """Sum the last axis of ``values`` (…, B) into ``rows`` pixel rows → (…, rows), row 0 = top.

    A prefix sum over the visible bins; an all-zero span stays exactly zero (adding 0.0 never
    changes a float), so black stays black.
    """
    values = np.asarray(values)
    lead = values.shape[:-1]
    if rows <= 0 or not price_hi > price_lo or values.shape[-1] == 0:
        return np.zeros(lead + (max(rows, 0),))
    b = bin_bounds(prices, rows, price_lo, price_hi)
    first, last = int(b[-1]), int(b[0])
    csum = np.zeros(lead + (last - first + 1,))
    if last > first:
        np.cumsum(values[..., first:last], axis=-1, dtype=np.float64, out=csum[..., 1:])
    rel = b - first
    return csum[..., rel[:-1]] - csum[..., rel[1:]]


def raster(hm, *, end_ms: float, range_ms: float, cols: int, rows: int, price_lo: float,
           price_hi: float) -> np.ndarray:
    """(rows, cols) USD per pixel (see the module docstring)."""
    cols, rows = max(int(cols), 0), max(int(rows), 0)
    if cols == 0 or rows == 0 or len(hm.times) == 0 or range_ms <= 0:
        return np.zeros((rows, cols))
    idx = column_index(hm.times, end_ms, range_ms, cols)
    b = bin_bounds(hm.prices, rows, price_lo, price_hi)
    first, last = int(b[-1]), int(b[0])
    # select the needed columns × visible bins once (cheap), then sum into pixel rows
    sel = hm.columns[np.maximum(idx, 0), first:last]
    out = bin_rows(sel, hm.prices[first:last], rows, price_lo, price_hi)
    out[idx < 0] = 0.0
    return out.T.copy()


def price_window(center: float, *, rows: int, bin_width: float, zoom: float = 1.0,
                 half_span: float = DEFAULT_HALF_SPAN) -> tuple[float, float]:
    """The visible ``(price_lo, price_hi)`` around ``center`` for ``rows`` pixel rows.

    At zoom 1 the window spans about ±``half_span`` of the centre; zoom > 1 narrows it. Every
    pixel row covers a whole number (≥ 1) of bins and the window starts on a bin edge, so rows
    do not alternate between 1 and 2 bins (which would draw stripes). Zooming in stops at one
    bin per pixel row.
    """
    rows = max(int(rows), 1)
    w = float(bin_width)
    if not (center > 0 and math.isfinite(center)):
        center = w * rows
    zoom = zoom if zoom > 0 and math.isfinite(zoom) else 1.0
    span = 2 * half_span * center / zoom
    per_row = max(1, round(span / (rows * w)))
    total = rows * per_row
    lo_bin = math.floor(center / w - total / 2 + 0.5)
    return lo_bin * w, (lo_bin + total) * w


def bins_per_row(price_lo: float, price_hi: float, rows: int, bin_width: float) -> float:
    return (price_hi - price_lo) / max(rows, 1) / bin_width


def pixel_to_point(col: int, row: int, *, end_ms: float, range_ms: float, cols: int, rows: int,
                   price_lo: float, price_hi: float) -> tuple[float, float, float, float]:
    """Pixel (col, row) → (cell end time ms, price at the row centre, row low, row high)."""
    t = end_ms - range_ms + (col + 1) * (range_ms / cols)
    h = (price_hi - price_lo) / rows
    hi = price_hi - row * h
    lo = hi - h
    return t, (lo + hi) / 2, lo, hi


def point_to_pixel(time_ms, price, *, end_ms: float, range_ms: float, cols: int, rows: int,
                   price_lo: float, price_hi: float):
    """(time, price) → (col, row) pixel, vectorised; out of view gives col/row outside
    ``[0, cols)`` / ``[0, rows)``. A time in cell j's period ``(end_{j−1}, end_j]`` → j."""
    t = np.asarray(time_ms, dtype=np.float64)
    p = np.asarray(price, dtype=np.float64)
    col = np.ceil((t - (end_ms - range_ms)) / (range_ms / cols)).astype(np.int64) - 1
    row = np.floor((price_hi - p) / ((price_hi - price_lo) / rows)).astype(np.int64)
    return col, row


def row_of_price(price: float, *, rows: int, price_lo: float, price_hi: float) -> int:
    """Pixel row holding ``price`` (may be outside ``[0, rows)``)."""
    return int(math.floor((price_hi - price) / ((price_hi - price_lo) / rows)))
