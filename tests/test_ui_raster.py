"""The heatmap raster: screen columns as of their period's end, bins summed into pixel rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from liqtui.ui.raster import (
    bin_rows, bins_per_row, column_index, pixel_to_point, point_to_pixel, price_window, raster,
    row_of_price,
)

MIN = 60_000


def fake(times, prices, columns):
    return SimpleNamespace(times=np.asarray(times, dtype=np.int64),
                           prices=np.asarray(prices, dtype=np.float64),
                           columns=np.asarray(columns, dtype=np.float64))


def test_each_screen_column_takes_the_column_as_of_its_end():
    # columns end at 10, 20, 30, 40 min; the screen shows (0, 40] min in 8 cells of 5 min
    times = np.array([10, 20, 30, 40]) * MIN
    cols = np.arange(1, 5, dtype=float)[:, None] * np.ones((1, 3))  # column k holds k everywhere
    hm = fake(times, [1.5, 2.5, 3.5], cols)
    px = raster(hm, end_ms=40 * MIN, range_ms=40 * MIN, cols=8, rows=3, price_lo=1, price_hi=4)
    # cell ends 5,10,15,…,40: none yet at 5; at 10 the first column (end 10 ≤ 10); at 15 still it
    assert px[0].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    assert column_index(times, 40 * MIN, 40 * MIN, 8).tolist() == [-1, 0, 0, 1, 1, 2, 2, 3]


def test_a_view_before_the_first_column_is_zero_and_after_the_last_holds_it():
    hm = fake([10 * MIN], [1.5], [[7.0]])
    early = raster(hm, end_ms=5 * MIN, range_ms=5 * MIN, cols=4, rows=1, price_lo=1, price_hi=2)
    assert not early.any()
    late = raster(hm, end_ms=60 * MIN, range_ms=20 * MIN, cols=4, rows=1, price_lo=1, price_hi=2)
    assert late.tolist() == [[7.0] * 4]


def test_row_zero_is_the_highest_price_and_bins_are_summed():
    prices = np.arange(10) + 0.5            # bins [0,1), …, [9,10)
    col = np.arange(10, dtype=float) + 1    # bin i holds i+1
    hm = fake([MIN], prices, col[None, :])
    px = raster(hm, end_ms=MIN, range_ms=MIN, cols=1, rows=5, price_lo=0, price_hi=10)
    # row 0 = bins 8, 9 (9 + 10); row 4 = bins 0, 1 (1 + 2)
    assert px[:, 0].tolist() == [19, 15, 11, 7, 3]


def test_sum_of_pixels_equals_sum_of_visible_bins():
    rng = np.random.default_rng(5)
    B, C = 300, 50
    prices = 1000 + 5 * (np.arange(B) + 0.5)
    cols = rng.gamma(0.3, 1e5, (C, B)) * (rng.random((C, B)) < 0.4)
    times = (np.arange(C) + 1) * 25 * MIN
    hm = fake(times, prices, cols)
    lo, hi = 1123.0, 2177.0   # not on bin edges: bins are in a row iff their centre is
    px = raster(hm, end_ms=times[-1], range_ms=times[-1], cols=C, rows=37, price_lo=lo,
                price_hi=hi)
    vis = (prices >= lo) & (prices < hi)
    assert px.sum(axis=0) == pytest.approx(cols[:, vis].sum(axis=1), rel=1e-12)
    assert (px >= 0).all()


def test_zero_stays_exactly_zero_between_big_values():
    col = np.array([1e12, 0, 0, 0, 0, 0, 3.3e-3, 0, 1e9])
    out = bin_rows(col, np.arange(9) + 0.5, 9, 0, 9)[::-1]
    assert (out == 0).tolist() == (col == 0).tolist()


def test_price_window_is_on_bin_edges_with_whole_bins_per_row_and_zoom_narrows_it():
    w = 50.0
    lo, hi = price_window(95_000, rows=120, bin_width=w)
    assert lo % w == 0 and hi % w == 0 and lo < 95_000 < hi
    assert bins_per_row(lo, hi, 120, w) == int(bins_per_row(lo, hi, 120, w)) >= 1
    assert hi - lo == pytest.approx(0.12 * 95_000, rel=0.3)
    zlo, zhi = price_window(95_000, rows=120, bin_width=w, zoom=2)
    assert zhi - zlo < hi - lo and zlo < 95_000 < zhi
    # zooming in far stops at one bin per pixel row
    mlo, mhi = price_window(95_000, rows=120, bin_width=w, zoom=1e6)
    assert bins_per_row(mlo, mhi, 120, w) == 1
    # junk in: still a valid window
    for c, z in ((float("nan"), 1), (95_000, 0), (95_000, float("inf"))):
        a, b = price_window(c, rows=10, bin_width=w, zoom=z)
        assert b > a


def test_pixel_to_point_inverts_point_to_pixel():
    geo = dict(end_ms=1_000 * MIN, range_ms=600 * MIN, cols=120, rows=80, price_lo=90_000.0,
               price_hi=98_000.0)
    for col in (0, 1, 59, 119):
        for row in (0, 1, 40, 79):
            t, p, plo, phi = pixel_to_point(col, row, **geo)
            assert plo < p < phi and phi - plo == pytest.approx(100.0)
            c, r = point_to_pixel(t, p, **geo)
            assert (int(c), int(r)) == (col, row)
            assert row_of_price(p, rows=80, price_lo=90_000.0, price_hi=98_000.0) == row
    # the last cell ends at end_ms; the row 0 top is price_hi
    assert pixel_to_point(119, 0, **geo)[0] == 1_000 * MIN
    assert pixel_to_point(119, 0, **geo)[3] == 98_000.0
    # a time just after a cell's end belongs to the next cell
    c, _ = point_to_pixel(np.array([400 * MIN + 1, 405 * MIN]), np.array([95e3, 95e3]), **geo)
    assert c.tolist() == [0, 0]


def test_degenerate_sizes_never_crash():
    hm = fake([MIN], [1.5], [[1.0]])
    for cols, rows in ((0, 0), (0, 5), (5, 0), (1, 1)):
        out = raster(hm, end_ms=MIN, range_ms=MIN, cols=cols, rows=rows, price_lo=1, price_hi=2)
        assert out.shape == (rows, cols)
    empty = fake(np.zeros(0, dtype=np.int64), [1.5], np.zeros((0, 1)))
    assert raster(empty, end_ms=MIN, range_ms=MIN, cols=3, rows=2, price_lo=1,
                  price_hi=2).shape == (2, 3)
    # a window entirely outside the bins
    assert not raster(hm, end_ms=MIN, range_ms=MIN, cols=3, rows=2, price_lo=10,
                      price_hi=20).any()


def test_real_heatmap_window_conserves_usd():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from synth import synthetic_bars

    from liqtui.model import build_heatmap
    hm = build_heatmap(synthetic_bars(1500))
    lo, hi = price_window(hm.reference_price, rows=44, bin_width=hm.bin_width)
    px = raster(hm, end_ms=hm.as_of, range_ms=hm.as_of - hm.start, cols=len(hm.times), rows=44,
                price_lo=lo, price_hi=hi)
    vis = (hm.prices >= lo) & (hm.prices < hi)
    assert px.sum() == pytest.approx(hm.columns[:, vis].sum(dtype=np.float64), rel=1e-9)
