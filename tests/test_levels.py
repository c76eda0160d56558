import numpy as np
import pytest

from liqtui.model.levels import clusters, find_levels, liquidation_map, smooth3


def test_smoothing_is_zero_outside_the_span():
    assert smooth3(np.array([3.0, 0, 0])) == pytest.approx([1, 1, 0])


def test_two_peaks_split_at_the_lowest_bin_which_goes_to_the_larger_peak():
    y = np.array([0, 1, 5, 2, 1, 3, 0], dtype=float)
    # peaks at 2 (5) and 5 (3); the valley minimum is bin 4, given to the larger peak (left)
    assert clusters(y, centre_index=100) == [(0, 4), (5, 6)]
    y2 = y[::-1].copy()
    assert clusters(y2, centre_index=100) == [(0, 1), (2, 6)]


def test_equal_peaks_give_the_valley_to_the_one_nearer_the_price():
    y = np.array([0, 4, 1, 4, 0], dtype=float)
    assert clusters(y, centre_index=0) == [(0, 2), (3, 4)]
    assert clusters(y, centre_index=4) == [(0, 1), (2, 4)]


def test_plateau_is_one_peak():
    y = np.array([1, 3, 3, 3, 1], dtype=float)
    assert clusters(y, centre_index=0) == [(0, 4)]
    assert clusters(np.zeros(4), 0) == []


def _usd(long_bins, short_bins, nbins=40, ntiers=2):
    u = np.zeros((ntiers, 2, nbins))
    for side, bins in ((0, long_bins), (1, short_bins)):
        for b, v in bins.items():
            u[0, side, b] = v * 0.75
            u[1, side, b] = v * 0.25
    return u


def test_levels_rows():
    prices = 100.0 + 10.0 * np.arange(40) + 5.0  # centres of bins of width 10 from 100
    usd = _usd({5: 100.0, 6: 300.0, 7: 100.0, 14: 50.0}, {30: 40.0, 31: 40.0})
    levels = find_levels(usd, ["10x", "50x"], prices, 10.0, reference=300.0, top=10)
    assert [lv.side for lv in levels] == ["long", "short", "long"]
    top = levels[0]
    assert top.usd == pytest.approx(500.0)
    assert top.price == pytest.approx((100 * 155 + 300 * 165 + 100 * 175) / 500)
    assert top.distance_pct == pytest.approx((top.price / 300 - 1) * 100) and top.distance_pct < 0
    # from the price down through the whole cluster: the 145-bin level (50) plus this one (500)
    assert top.cumulative_usd == pytest.approx(550.0)
    assert top.tiers == pytest.approx({"10x": 375.0, "50x": 125.0})
    assert (top.low, top.high) == (150.0, 180.0)
    short = levels[1]
    assert short.usd == pytest.approx(80.0) and short.distance_pct > 0
    assert short.cumulative_usd == pytest.approx(80.0)
    assert len(find_levels(usd, ["10x", "50x"], prices, 10.0, 300.0, top=1)) == 1


def test_liquidation_map_is_cumulative_from_the_price():
    prices = np.arange(5, dtype=float)
    m = liquidation_map(np.array([1.0, 2, 0, 0, 0]), np.array([0, 0, 0, 3.0, 4]), prices, 2.0)
    assert list(m.long_usd) == [3, 2, 0, 0, 0]   # falling to bin 0 liquidates all longs
    assert list(m.short_usd) == [0, 0, 0, 3, 7]  # rising to bin 4 liquidates all shorts
