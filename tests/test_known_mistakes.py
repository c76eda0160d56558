"""One test per "Known mistake in open implementations" at the end of MODEL.md.

Each shows that ours does not make it. Model-level mistakes run through both the engine and the
oracle; formula-level ones check ``liquidation_price`` and the grid directly.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oracle import LONG, SHORT, run  # noqa: E402
from strategies import make_bars, random_bars  # noqa: E402

from liqtui.model import Grid, build_heatmap, choose_bin_width, liquidation_price  # noqa: E402

IMPLS = ["engine", "oracle"]
LEV = (5, 10, 25, 50, 100)
OMEGA = (0.10, 0.25, 0.30, 0.20, 0.15)


def flat(price, oi):
    return dict(o=price, h=price, l=price, c=price, v=1.0, vwap=price, s=0.5, oi=oi)


def test_mmr_is_not_divided_by_leverage():
    # the mistake: E(1 − 1/L + m/L), in which the maintenance rate all but vanishes
    for L in (5, 10, 25, 50, 100, 125):
        ours = liquidation_price(100_000.0, L, "long")
        assert ours == pytest.approx(100_000.0 * (1 - 1 / L) / (1 - 0.004), rel=1e-12)
        wrong = 100_000.0 * (1 - 1 / L + 0.004 / L)
        assert abs(ours - wrong) > 100.0, L
    # the maintenance rate moves the price by about E·Δm whatever the leverage (not E·Δm/L)
    d = liquidation_price(100_000.0, 100, "long", mmr=0.014) - liquidation_price(100_000.0, 100,
                                                                                 "long", mmr=0.004)
    assert d > 0.9 * 100_000.0 * 0.01


def test_bracket_follows_the_positions_notional_not_total_open_interest():
    # a 1 BTC position at 67,000 is in the [50k, 250k) bracket (m = 0.5 %, cum = 50) whatever
    # the market's open interest is
    p = liquidation_price(67_000.0, 10, "long", notional=67_000.0)
    assert p == pytest.approx(67_000.0 * (1 - 0.1 - 50 / 67_000.0) / (1 - 0.005), rel=1e-12)
    total_oi_usd = 80_000 * 67_000.0  # what the mistake would look the bracket up with
    wrong = liquidation_price(67_000.0, 10, "long", notional=total_oi_usd)
    assert abs(p - wrong) > 1_000.0
    # the model's deposits have no known size: first bracket; scaling the open interest by 10^6
    # changes their quantities, never their liquidation prices (bins)
    bars = random_bars(5, n_steps=300)
    big = dict(bars, open_interest=np.asarray(bars["open_interest"]) * 1e6)
    a = build_heatmap(bars, dtype=np.float64, keep_ledger=True, bin_width=50.0)
    b = build_heatmap(big, dtype=np.float64, keep_ledger=True, bin_width=50.0)
    assert len(a.ledger["qty"]) > 100
    for k in ("step", "side", "tier", "bin", "death"):
        np.testing.assert_array_equal(np.asarray(a.ledger[k]), np.asarray(b.ledger[k]))
    np.testing.assert_allclose(np.asarray(b.ledger["qty"]), np.asarray(a.ledger["qty"]) * 1e6,
                               rtol=1e-9)
    np.testing.assert_allclose(np.asarray(b.columns), np.asarray(a.columns) * 1e6, rtol=1e-9,
                               atol=1e-9 * np.asarray(b.columns).max())


def test_no_maintenance_rate_growing_with_leverage_100x_long_liquidates_below_entry():
    E = 67_000.0
    for L in range(1, 126):
        assert liquidation_price(E, L, "long") < E, L
        assert liquidation_price(E, L, "short") > E, L
    # monotone: more leverage, closer to entry, never across it
    longs = [liquidation_price(E, L, "long") for L in range(1, 126)]
    assert all(a < b for a, b in zip(longs, longs[1:]))
    # the engine's deposits: every long below its step's VWAP entry, every short above
    bars = make_bars([flat(100_000.0, 1000.0),
                      dict(o=1e5, h=1e5 + 30, l=1e5 - 30, c=1e5, v=1.0, vwap=1e5, s=0.5,
                           oi=1010.0)])
    h = build_heatmap(bars, dtype=np.float64, keep_ledger=True, bin_width=1.0,
                      leverages=(100, 125), weights=(0.5, 0.5))
    for side, j in zip(h.ledger["side"], h.ledger["bin"]):
        c = (j + 0.5) * 1.0
        assert (c < 1e5) if side == LONG else (c > 1e5)


def test_long_and_short_offsets_differ():
    E = 100_000.0
    for L in (5, 10, 25, 50, 100):
        lo = E - liquidation_price(E, L, "long")
        hi = liquidation_price(E, L, "short") - E
        assert abs(lo - hi) > 1.0, L
    # 10x: 9,638.55 below, 9,561.75 above
    assert E - liquidation_price(E, 10, "long") == pytest.approx(9_638.55, abs=0.005)
    assert liquidation_price(E, 10, "short") - E == pytest.approx(9_561.75, abs=0.005)


@pytest.mark.parametrize("impl", IMPLS)
def test_tiers_share_one_trade(impl):
    # ΔOI = 10: total deposited over all five tiers is 10 (n), not 10 per tier
    rows = [flat(100_000.0, 1000.0),
            dict(o=1e5, h=1e5 + 50, l=1e5 - 50, c=1e5, v=1.0, vwap=1e5, s=0.5, oi=1010.0)]
    h = run(impl, make_bars(rows), bin_width=10.0)
    assert float(np.sum(h.accounting["deposited"])) == pytest.approx(10.0, rel=1e-12)
    st = np.asarray(h.state)
    for i, om in enumerate(OMEGA):
        assert float(st[i].sum()) == pytest.approx(10.0 * om, rel=1e-12)
    # and in USD: each tier shows its share, the sum is about 10 × price, not 50 × price
    total_usd = float(np.asarray(h.columns)[-1].sum())
    assert 0.7 * 10 * 1e5 < total_usd < 1.1 * 10 * 1e5


@pytest.mark.parametrize("impl", IMPLS)
def test_side_comes_from_taker_share_not_candle_colour(impl):
    # a red candle (close < open) whose taker-buy share is 0.7 deposits 70 % long
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_400.0, h=100_450.0, l=99_950.0, c=100_000.0, v=2.0, vwap=100_200.0, s=0.7,
                 oi=1010.0)]
    h = run(impl, make_bars(rows), bin_width=10.0)
    np.testing.assert_allclose(h.accounting["deposited"], [7.0, 3.0], rtol=1e-12)
    # and a green candle with share 0.3 deposits 30 % long
    rows[1] = dict(o=99_600.0, h=100_050.0, l=99_550.0, c=100_000.0, v=2.0, vwap=99_800.0, s=0.3,
                   oi=1010.0)
    h = run(impl, make_bars(rows), bin_width=10.0)
    np.testing.assert_allclose(h.accounting["deposited"], [3.0, 7.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_netting_liquidations_reduce_open_interest(impl):
    # bar 1 opens 10 (5 long, 5 short). Bar 2 wicks to 95,000 and liquidates the 25x/50x/100x
    # longs (3.25); open interest falls by exactly that. n = ΔOI + consumed = 0: nothing is
    # created and nothing is closed. (Without netting, 3.25 would be closed from the survivors.)
    liq = 5 * (0.30 + 0.20 + 0.15)
    rows = [flat(100_000.0, 1000.0),
            dict(o=1e5, h=1e5 + 50, l=1e5 - 50, c=1e5, v=1.0, vwap=1e5, s=0.5, oi=1010.0),
            dict(o=1e5, h=1e5 + 100, l=95_000.0, c=99_000.0, v=3.0, vwap=99_000.0, s=0.2,
                 oi=1010.0 - liq)]
    h = run(impl, make_bars(rows), bin_width=10.0)
    assert np.asarray(h.consumed)[2, LONG] == pytest.approx(liq, rel=1e-12)
    acc = h.accounting
    assert float(np.sum(acc["closed"])) < 1e-12
    assert float(np.sum(acc["unmatched"])) < 1e-12
    assert float(np.sum(acc["deposited"])) == pytest.approx(10.0, rel=1e-12)  # bar 1 only
    st = np.asarray(h.state)
    assert float(st[:, LONG].sum()) == pytest.approx(5 - liq, rel=1e-12)
    assert float(st[:, SHORT].sum()) == pytest.approx(5.0, rel=1e-12)
    # and when open interest does not move while positions are liquidated, the same amount was
    # opened: n = 0 + consumed > 0 creates new positions (entry = close = 99,000: no tier is
    # on the wrong side of the close)
    rows[2] = dict(rows[2], oi=1010.0)
    h = run(impl, make_bars(rows), bin_width=10.0)
    assert float(np.sum(h.accounting["deposited"])) == pytest.approx(10.0 + liq, rel=1e-12)


def test_published_worked_example_short_25x():
    # 0.5 BTC 25x short at 67,000 (notional 33,500: first bracket)
    p = liquidation_price(67_000.0, 25, "short")
    assert round(p, 2) == 69_402.39
    assert round(float(liquidation_price(67_000.0, 25, "short", notional=33_500.0)), 2) == 69_402.39
    assert abs(p - 69_920.32) > 500


@pytest.mark.parametrize("w", [50.0, 10.0, 5.0, 1.0, 0.5, 0.01, 0.001, 0.0001, 5e-05, 2e-06])
def test_a_price_on_a_bin_boundary_is_in_exactly_one_bin(w):
    g = Grid.from_width(w)
    for k in (1, 7, 123, 2000, 98_765):
        edge = float(f"{k * round(w / 10 ** math.floor(math.log10(w)))}e{math.floor(math.log10(w))}")
        # the boundary k·w belongs to bin k ([k·w, (k+1)·w)), not to bin k − 1 as well
        assert int(g.index(edge)) == k, (w, k, edge)
        below = np.nextafter(edge, 0.0)
        assert int(g.index(edge - w / 1000)) == k - 1
        # at most one bin for any price: index is a function; the next float below the edge may
        # round onto the edge (units are 10^(e−6)) but never lands in two bins
        assert int(g.index(below)) in (k - 1, k)
        c = float(g.centre(k))
        assert c == pytest.approx((k + 0.5) * w, rel=1e-12)
        assert int(g.index(c)) == k
    # and the auto width is a 1-2-5 value: BTC at 100k → 50
    assert choose_bin_width(100_000.0) == 50.0


@pytest.mark.parametrize("impl", IMPLS)
def test_a_low_exactly_on_a_boundary_consumes_by_centre_once(impl):
    # 10x longs from bar 1 in bins 9035 (centre 90,355) and 9036 (centre 90,365); a low exactly
    # on the boundary 90,360 takes bin 9036 only
    rows = [flat(100_000.0, 1000.0),
            dict(o=1e5, h=1e5 + 50, l=1e5 - 50, c=1e5, v=1.0, vwap=1e5, s=0.5, oi=1010.0),
            dict(o=99_000.0, h=99_100.0, l=90_360.0, c=99_000.0, v=1.0, vwap=99_000.0, s=0.5,
                 oi=np.nan)]
    h = run(impl, make_bars(rows), bin_width=10.0)
    st = np.asarray(h.state)
    k = 9035 - int(h.bin_offset)
    assert st[1, LONG, k] > 0 and st[1, LONG, k + 1] == 0.0
