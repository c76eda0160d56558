"""The fast engine against the slow oracle (tests/oracle.py).

Part 1: tiny hand-computed scenarios, run through both the oracle and the engine (so the oracle
itself is checked against arithmetic done by hand from MODEL.md / model-notes.md).
Part 2: seeded random paths with nasty features and every parameter varied; the engine in
float64 must match the oracle to 1e-9 relative (max|a − b| / max|b|, per array), the default
float32 columns to ~1e-6, and levels / the liquidation map must match an independent
computation from the oracle's final state.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oracle import (  # noqa: E402
    LONG, SHORT, align, column_at, qty, reference_levels, reference_liquidation_map, rel_err,
    run, run_oracle,
)
from strategies import MINUTE, make_bars, random_bars  # noqa: E402

IMPLS = ["oracle", "engine"]
W = 10.0  # bin width of the hand scenarios
LEV = (5, 10, 25, 50, 100)
OMEGA = (0.10, 0.25, 0.30, 0.20, 0.15)
M = 0.004


def long_p(E, L):
    return E * (1 - 1 / L) / (1 - M)


def short_p(E, L):
    return E * (1 + 1 / L) / (1 + M)


def split(P, w=W):
    """(j, weight on j, j + 1, weight on j + 1) for a deposit at P (model-notes: x = P/w − ½)."""
    x = P / w - 0.5
    j = math.floor(x)
    f = x - j
    return j, 1 - f, j + 1, f


def flat(price, oi, **kw):
    row = dict(o=price, h=price, l=price, c=price, v=1.0, vwap=price, s=0.5, oi=oi)
    row.update(kw)
    return row


def opening_rows(oi_gain=10.0, s=0.5):
    """Bar 0 sets the OI baseline (ΔOI = 0), bar 1 adds ``oi_gain`` at VWAP 100,000."""
    return [
        flat(100_000.0, 1000.0),
        dict(o=100_000.0, h=100_050.0, l=99_950.0, c=100_000.0, v=2.0, vwap=100_000.0, s=s,
             oi=1000.0 + oi_gain),
    ]


def total(res, side):
    return float(np.asarray(res.state)[:, side, :].sum())


# ------------------------------------------------------------------------------------------
# Part 1: hand scenarios


@pytest.mark.parametrize("impl", IMPLS)
def test_one_step_of_new_oi_lands_at_each_tiers_two_bins(impl):
    res = run(impl, make_bars(opening_rows()), bin_width=W)
    assert res.bin_width == W
    # ΔOI = 10, s' = 0.5: q_long = q_short = 5, each tier gets 5·ω at its price
    for i, (L, om) in enumerate(zip(LEV, OMEGA)):
        for side, P in ((LONG, long_p(100_000.0, L)), (SHORT, short_p(100_000.0, L))):
            j, a, j1, b = split(P)
            assert qty(res, side, i, j) == pytest.approx(5 * om * a, rel=1e-12, abs=1e-15)
            assert qty(res, side, i, j1) == pytest.approx(5 * om * b, rel=1e-12, abs=1e-15)
            assert float(np.asarray(res.state)[i, side].sum()) == pytest.approx(5 * om, rel=1e-12)
    # worked by hand for 10x: P = 90,361.4458 → x = 9035.6446 → bins 9035 (35.5 %), 9036 (64.5 %)
    assert qty(res, LONG, 1, 9035) == pytest.approx(1.25 * (1 - 0.6445783132530), rel=1e-9)
    assert qty(res, LONG, 1, 9036) == pytest.approx(1.25 * 0.6445783132530, rel=1e-9)
    # the column is USD = quantity × bin centre, the last column is the end state
    assert column_at(res, -1, 9036) == pytest.approx(1.25 * 0.6445783132530 * 90_365.0, rel=1e-9)
    assert column_at(res, 0, 9036) == 0.0  # bar 0 had no ΔOI
    assert np.asarray(res.consumed).sum() == 0.0
    acc = res.accounting
    np.testing.assert_allclose(acc["deposited"], [5.0, 5.0], rtol=1e-12)
    np.testing.assert_allclose(acc["resting"], [5.0, 5.0], rtol=1e-12)
    for k in ("consumed", "closed", "unmatched", "decayed"):
        np.testing.assert_array_equal(acc[k], [0.0, 0.0])


@pytest.mark.parametrize("impl", IMPLS)
def test_low_through_a_bin_removes_it_and_netting_absorbs_the_liquidations(impl):
    # bar 2 trades down to 95,000: every long bin with centre >= 95,000 (25x, 50x, 100x) is
    # liquidated, 10x (≈90,360) and 5x (≈80,320) stay. OI falls by exactly what was liquidated,
    # so n = ΔOI + consumed = 0: nothing is created or closed.
    consumed_long = 5 * (0.30 + 0.20 + 0.15)
    rows = opening_rows() + [
        dict(o=100_000.0, h=100_100.0, l=95_000.0, c=99_000.0, v=3.0, vwap=97_000.0, s=0.9,
             oi=1010.0 - consumed_long),
    ]
    res = run(impl, make_bars(rows), bin_width=W)
    cons = np.asarray(res.consumed)
    assert cons[2, LONG] == pytest.approx(consumed_long, rel=1e-12)
    assert cons[2, SHORT] == 0.0
    for i in (2, 3, 4):  # n is 0 up to rounding: nothing (or ~1e-16) is created
        assert float(np.asarray(res.state)[i, LONG].sum()) < 1e-12
    assert float(np.asarray(res.state)[0, LONG].sum()) == pytest.approx(0.5, rel=1e-12)
    assert float(np.asarray(res.state)[1, LONG].sum()) == pytest.approx(1.25, rel=1e-12)
    assert total(res, SHORT) == pytest.approx(5.0, rel=1e-12)
    acc = res.accounting
    assert float(np.sum(acc["closed"])) < 1e-12
    assert float(np.sum(acc["deposited"])) == pytest.approx(10.0, rel=1e-12)
    # the 25x bin 9638/9639 shows in bar 1's column and not in bar 2's
    j, _, _, _ = split(long_p(100_000.0, 25))
    assert column_at(res, 1, j) > 0
    assert column_at(res, 2, j) == 0.0


@pytest.mark.parametrize("impl", IMPLS)
def test_consumption_by_bin_centre_inclusive_and_mark_low(impl):
    # 10x longs sit in bins 9035 (centre 90,355) and 9036 (centre 90,365)
    for low, gone in ((90_355.0, (9035, 9036)), (90_355.5, (9036,)), (90_365.0, (9036,)),
                      (90_365.5, ())):
        rows = opening_rows() + [dict(o=99_000.0, h=99_500.0, l=low, c=99_000.0, v=1.0,
                                      vwap=99_000.0, s=0.5, oi=np.nan)]
        res = run(impl, make_bars(rows), bin_width=W)
        for j in (9035, 9036):
            if j in gone:
                assert qty(res, LONG, 1, j) == 0.0, (low, j)
            else:
                assert qty(res, LONG, 1, j) > 0.0, (low, j)
    # a mark low below the trade low decides
    rows = opening_rows() + [dict(o=99_000.0, h=99_500.0, l=98_000.0, c=99_000.0, v=1.0,
                                  vwap=99_000.0, s=0.5, oi=np.nan, ml=90_360.0, mh=np.nan)]
    res = run(impl, make_bars(rows), bin_width=W)
    assert qty(res, LONG, 1, 9035) > 0.0 and qty(res, LONG, 1, 9036) == 0.0
    assert qty(res, LONG, 2, split(long_p(1e5, 25))[0]) == 0.0
    # a mark high above the trade high consumes shorts with centre <= mark high
    j, _, j1, _ = split(short_p(1e5, 100))  # 100x shorts at ≈100,597.6: bins 10059, 10060
    rows = opening_rows() + [dict(o=99_000.0, h=99_100.0, l=98_900.0, c=99_000.0, v=1.0,
                                  vwap=99_000.0, s=0.5, oi=np.nan, ml=np.nan,
                                  mh=(j + 0.5) * W)]
    res = run(impl, make_bars(rows), bin_width=W)
    assert qty(res, SHORT, 4, j) == 0.0 and qty(res, SHORT, 4, j1) > 0.0
    assert np.asarray(res.consumed)[2, SHORT] == pytest.approx(5 * 0.15 * split(short_p(1e5, 100))[1],
                                                               rel=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
def test_deposits_are_consumed_from_the_next_step_on(impl):
    # bar 1 deposits and its own low (99,950) is below none of them; bar 1's deposits survive
    # even though 100x long sits at ≈99,397 and bar 1 is the step that made them. A second
    # bar with a deep wick both creates (n > 0) and consumes: consumption comes first.
    rows = opening_rows() + [
        dict(o=100_000.0, h=100_000.0, l=99_000.0, c=100_000.0, v=1.0, vwap=100_000.0, s=0.5,
             oi=1020.0 - 0.75 + 0.0),
    ]
    res = run(impl, make_bars(rows), bin_width=W)
    # bar 2 consumed the 100x long (0.75) made in bar 1; ΔOI = 10 − 0.75 → n = 10
    assert np.asarray(res.consumed)[2, LONG] == pytest.approx(0.75, rel=1e-12)
    # bar 2's own 100x long at the same bins is there (deposited after the consume)
    assert float(np.asarray(res.state)[4, LONG].sum()) == pytest.approx(0.75, rel=1e-12)
    np.testing.assert_allclose(res.accounting["deposited"], [10.0, 10.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_close_is_proportional_per_side_with_s_prime_and_unmatched(impl):
    rows = opening_rows() + [
        # ΔOI = −4 with taker-buy share 0.7: closing longs is selling, so R_long = 4·0.3,
        # R_short = 4·0.7
        dict(o=100_000.0, h=100_050.0, l=99_950.0, c=100_000.0, v=1.0, vwap=100_000.0, s=0.7,
             oi=1006.0),
    ]
    res = run(impl, make_bars(rows), bin_width=W)
    assert total(res, LONG) == pytest.approx(5 - 1.2, rel=1e-12)
    assert total(res, SHORT) == pytest.approx(5 - 2.8, rel=1e-12)
    # proportional: every bin scaled by the same factor
    j, a, _, _ = split(long_p(1e5, 10))
    assert qty(res, LONG, 1, j) == pytest.approx(1.25 * a * (1 - 1.2 / 5), rel=1e-12)
    np.testing.assert_allclose(res.accounting["closed"], [1.2, 2.8], rtol=1e-12)
    np.testing.assert_array_equal(res.accounting["unmatched"], [0.0, 0.0])
    # a close larger than a side empties it and counts the rest as unmatched
    rows2 = rows + [dict(o=100_000.0, h=100_050.0, l=99_950.0, c=100_000.0, v=1.0,
                         vwap=100_000.0, s=0.5, oi=1006.0 - 10.0)]
    res = run(impl, make_bars(rows2), bin_width=W)
    assert total(res, LONG) == 0.0 and total(res, SHORT) == 0.0
    np.testing.assert_allclose(res.accounting["closed"], [1.2 + 3.8, 2.8 + 2.2], rtol=1e-12)
    np.testing.assert_allclose(res.accounting["unmatched"], [5 - 3.8, 5 - 2.2], rtol=1e-12)
    # and an empty side leaves all of R unmatched
    rows3 = rows2 + [dict(o=100_000.0, h=100_050.0, l=99_950.0, c=100_000.0, v=1.0,
                          vwap=100_000.0, s=0.5, oi=1006.0 - 12.0)]
    res = run(impl, make_bars(rows3), bin_width=W)
    np.testing.assert_allclose(res.accounting["unmatched"], [1.2 + 1.0, 2.8 + 1.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_alpha_scales_the_taker_share(impl):
    # s = 0.95 clamps to 0.8; α = 0.5 → s' = 0.65; α = 0 → s' = 0.5
    for alpha, sp in ((1.0, 0.8), (0.5, 0.65), (0.0, 0.5)):
        res = run(impl, make_bars(opening_rows(s=0.95)), bin_width=W, alpha=alpha)
        np.testing.assert_allclose(res.accounting["deposited"], [10 * sp, 10 * (1 - sp)],
                                   rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_wrong_side_of_the_close_is_dropped_and_not_counted(impl):
    # VWAP 100,900, close 99,100: the 100x long (≈100,292) and 50x long (≈99,279) would be
    # liquidated at once and are dropped; 25x (≈97,253) is kept. Shorts are all kept.
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=101_000.0, l=99_000.0, c=99_100.0, v=1.0, vwap=100_900.0,
                 s=0.5, oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    assert float(np.asarray(res.state)[3, LONG].sum()) == 0.0
    assert float(np.asarray(res.state)[4, LONG].sum()) == 0.0
    assert float(np.asarray(res.state)[2, LONG].sum()) == pytest.approx(5 * 0.30, rel=1e-12)
    np.testing.assert_allclose(res.accounting["deposited"], [5 * (0.1 + 0.25 + 0.3), 5.0],
                               rtol=1e-12)
    # short side: VWAP below the close by enough drops high-leverage shorts
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=101_000.0, l=99_000.0, c=100_900.0, v=1.0, vwap=99_100.0,
                 s=0.5, oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    # 100x short at 99,100·1.01/1.004 = 99,692 <= 100,900: dropped; 50x 100,679: dropped;
    # 25x 102,654: kept
    assert float(np.asarray(res.state)[4, SHORT].sum()) == 0.0
    assert float(np.asarray(res.state)[3, SHORT].sum()) == 0.0
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5 * (0.1 + 0.25 + 0.3)],
                               rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_volume_bar_uses_typical_price_and_even_share(impl):
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_100.0, h=100_300.0, l=99_900.0, c=100_200.0, v=0.0, q=0.0, qb=0.0,
                 oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    E = (100_300.0 + 99_900.0 + 100_200.0) / 3
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5.0], rtol=1e-12)
    j, a, j1, b = split(long_p(E, 10))
    assert qty(res, LONG, 1, j) == pytest.approx(1.25 * a, rel=1e-9)
    assert qty(res, LONG, 1, j1) == pytest.approx(1.25 * b, rel=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
def test_quote_volume_zero_with_base_volume(impl):
    # model-notes: "V = 0 or Q = 0 (no trade to average): VWAP = (h + l + c)/3, s = 0.5", so the
    # entry is (100,500 + 99,500 + 100,000)/3 = 100,000, not Q/V = 0 clipped to the low.
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=100_500.0, l=99_500.0, c=100_000.0, v=1.0, q=0.0, qb=0.0,
                 oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5.0], rtol=1e-12)
    j, a, j1, b = split(long_p(100_000.0, 10))
    assert qty(res, LONG, 1, j) == pytest.approx(1.25 * a, rel=1e-6)
    assert qty(res, LONG, 1, j1) == pytest.approx(1.25 * b, rel=1e-6)


@pytest.mark.parametrize("impl", IMPLS)
def test_missing_taker_buy_volume_means_even_share(impl):
    # MODEL.md: "A venue without taker-buy volume: s = 0.5". An unknown (NaN) taker-buy volume
    # must not turn into an extreme share.
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=100_500.0, l=99_500.0, c=100_000.0, v=1.0, vwap=100_000.0,
                 qb=np.nan, oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_rows_are_widened_and_vwap_clipped(impl):
    # high below the close and a VWAP above the (widened) high: h becomes 100,500 (the close),
    # VWAP is clipped to it
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=100_200.0, l=99_900.0, c=100_500.0, v=1.0, vwap=101_000.0,
                 s=0.5, oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    j, a, j1, b = split(long_p(100_500.0, 10))
    assert qty(res, LONG, 1, j) == pytest.approx(1.25 * a, rel=1e-9)
    assert qty(res, LONG, 1, j1) == pytest.approx(1.25 * b, rel=1e-9)
    # an open above the high widens it: bar 1's 100x short (≈101,100.6, bins 10109/10110,
    # centres 101,095 / 101,105) is consumed by the widened high 101,200, not by h = 100,500
    rows.append(dict(o=101_200.0, h=100_500.0, l=100_400.0, c=100_450.0, v=1.0,
                     vwap=100_450.0, s=0.5, oi=np.nan))
    res2 = run(impl, make_bars(rows), bin_width=W)
    js, _, js1, _ = split(short_p(100_500.0, 100))
    assert (js, js1) == (10109, 10110)
    assert np.asarray(res2.consumed)[2, SHORT] == pytest.approx(0.75, rel=1e-12)
    assert qty(res2, SHORT, 4, js) == 0.0 and qty(res2, SHORT, 4, js1) == 0.0
    # a flat bar (o = h = l = c) consumes only at its single price
    rows.append(flat(100_200.0, np.nan))
    res3 = run(impl, make_bars(rows), bin_width=W)
    assert np.asarray(res3.consumed)[3].sum() == 0.0


@pytest.mark.parametrize("impl", IMPLS)
def test_inverted_bar_spans_all_its_prices(impl):
    # a garbage row with high < low. model-notes: "high = max(o, h, l, c), low = min(o, h, l, c)
    # (a bad row, e.g. swapped high and low, still spans its prices)": [99,950, 100,100], and the
    # typical price of this V = 0 bar is (100,100 + 99,950 + 100,000)/3
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=99_950.0, l=100_100.0, c=100_000.0, v=0.0, q=0.0, qb=0.0,
                 oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W)
    E = (100_100.0 + 99_950.0 + 100_000.0) / 3
    j, a, j1, b = split(long_p(E, 10))
    assert qty(res, LONG, 1, j) == pytest.approx(1.25 * a, rel=1e-9)
    assert qty(res, LONG, 1, j1) == pytest.approx(1.25 * b, rel=1e-9)
    # and consumption sees that bar's low as 99,950: bar 1 puts a 100x long at
    # 100,581·0.99/0.996 ≈ 99,975.1 (bins 9997/9998, centres 99,975 and 99,985), which a low
    # of 99,950 reaches (taking only open and close into account it would be 100,000)
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=100_700.0, l=100_000.0, c=100_600.0, v=1.0, vwap=100_581.0,
                 s=0.5, oi=1010.0),
            dict(o=100_000.0, h=99_950.0, l=100_100.0, c=100_000.0, v=1.0, vwap=100_000.0,
                 s=0.5, oi=np.nan)]
    res = run(impl, make_bars(rows), bin_width=W)
    assert split(long_p(100_581.0, 100))[0] == 9997
    assert np.asarray(res.consumed)[2, LONG] == pytest.approx(0.75, rel=1e-12)
    assert qty(res, LONG, 4, 9997) == 0.0 and qty(res, LONG, 4, 9998) == 0.0
    # the short side mirrors it: the bar's high is 100,100 (its "low" field)
    assert qty(res, SHORT, 4, split(short_p(100_581.0, 100))[0]) > 0.0


@pytest.mark.parametrize("impl", IMPLS)
def test_open_interest_gaps_and_unknown_values(impl):
    P = 100_000.0

    def bar(t, oi):
        return dict(t=t, o=P, h=P + 50, l=P - 50, c=P, v=1.0, vwap=P, s=0.5, oi=oi)

    # unknown OI in between: ΔOI is taken against the last known value
    res = run(impl, make_bars([bar(0, 1000.0), bar(1, np.nan), bar(2, np.nan), bar(3, 1012.0)]),
              bin_width=W)
    np.testing.assert_allclose(res.accounting["deposited"], [6.0, 6.0], rtol=1e-12)
    assert not res.warnings
    # 5-minute bars, next bar 65 minutes later: 65 − 5 = 60 min, not more than max_gap_ms → applied
    base = [bar(0, 1000.0), bar(1, 1000.0), bar(2, 1000.0)]
    res = run(impl, make_bars(base + [bar(15, 1010.0)]), bin_width=W)
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5.0], rtol=1e-12)
    assert not res.warnings
    # 70 minutes later: dropped, and a warning names the gap
    res = run(impl, make_bars(base + [bar(16, 1010.0)]), bin_width=W)
    np.testing.assert_array_equal(res.accounting["deposited"], [0.0, 0.0])
    assert len(res.warnings) >= 1
    # unknown OI around a long gap: the time between the two *known* bars decides
    # (bars 0 and 14: 70 − 5 = 65 min > 60 → dropped; bar 15 then adds 1)
    res = run(impl, make_bars([bar(0, 1000.0), bar(1, np.nan), bar(2, np.nan), bar(13, np.nan),
                               bar(14, 1010.0), bar(15, 1011.0)]), bin_width=W)
    np.testing.assert_allclose(res.accounting["deposited"], [0.5, 0.5], rtol=1e-12)
    assert len(res.warnings) >= 1
    # max_gap_ms is a parameter: 15 − 5 = 10 minutes is not more than 10 minutes
    res = run(impl, make_bars(base + [bar(5, 1010.0)]), bin_width=W, max_gap_ms=10 * MINUTE)
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5.0], rtol=1e-12)
    res = run(impl, make_bars(base + [bar(5, 1010.0)]), bin_width=W, max_gap_ms=10 * MINUTE - 1)
    np.testing.assert_array_equal(res.accounting["deposited"], [0.0, 0.0])


@pytest.mark.parametrize("impl", IMPLS)
def test_seed_starts_from_the_first_open_interest(impl):
    rows = opening_rows()
    res = run(impl, make_bars(rows), bin_width=W, seed=True)
    # step 0 deposits the whole first OI (1000) at bar 0's VWAP, step 1 adds 10
    np.testing.assert_allclose(res.accounting["deposited"], [505.0, 505.0], rtol=1e-12)
    assert column_at(res, 0, split(long_p(1e5, 10))[2]) > 0
    res = run(impl, make_bars(rows), bin_width=W, seed=False)
    np.testing.assert_allclose(res.accounting["deposited"], [5.0, 5.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_decay_applies_at_the_end_of_each_step_including_new_deposits(impl):
    rows = opening_rows() + [flat(100_000.0, 1010.0), flat(100_000.0, 1010.0)]
    res = run(impl, make_bars(rows), bin_width=W, half_life_ms=5 * MINUTE)
    # deposited 10 in step 1, halved at the end of steps 1, 2 and 3
    np.testing.assert_allclose(res.accounting["resting"], [5 / 8, 5 / 8], rtol=1e-12)
    np.testing.assert_allclose(res.accounting["decayed"], [5 - 5 / 8, 5 - 5 / 8], rtol=1e-12)
    cols = np.asarray(res.columns)
    j = split(long_p(1e5, 10))[2]
    k = j - int(res.bin_offset)
    np.testing.assert_allclose(cols[1:, k] / cols[1, k], [1.0, 0.5, 0.25], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_entry_spread_only_for_steps_of_five_minutes_or_more(impl):
    rows = [flat(100_000.0, 1000.0),
            dict(o=100_000.0, h=101_000.0, l=99_000.0, c=100_000.0, v=1.0, vwap=100_000.0,
                 s=0.5, oi=1010.0)]
    res = run(impl, make_bars(rows), bin_width=W, entry_spread=True)
    # 10x long: entries 99,000 (.25), 100,000 (.5), 101,000 (.25), each a 1.25-base deposit
    expected = {}
    for E, we in ((99_000.0, 0.25), (100_000.0, 0.5), (101_000.0, 0.25)):
        j, a, j1, b = split(long_p(E, 10))
        expected[j] = expected.get(j, 0) + 1.25 * we * a
        expected[j1] = expected.get(j1, 0) + 1.25 * we * b
    for j, v in expected.items():
        assert qty(res, LONG, 1, j) == pytest.approx(v, rel=1e-9)
    # 100x long from the high entry: 101,000·0.99/0.996 = 100,391 >= close: dropped
    np.testing.assert_allclose(
        res.accounting["deposited"], [5 * (1 - 0.15 * 0.25), 5 * (1 - 0.15 * 0.25)], rtol=1e-12)
    # with 1-minute bars the option does nothing
    res1 = run(impl, make_bars(rows, interval_ms=MINUTE), bin_width=W, entry_spread=True)
    j, a, j1, b = split(long_p(1e5, 10))
    assert qty(res1, LONG, 1, j) == pytest.approx(1.25 * a, rel=1e-9)
    np.testing.assert_allclose(res1.accounting["deposited"], [5.0, 5.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_both_sides_gives_each_side_the_full_n(impl):
    res = run(impl, make_bars(opening_rows(s=0.7)), bin_width=W, both_sides=True)
    np.testing.assert_allclose(res.accounting["deposited"], [10.0, 10.0], rtol=1e-12)
    res = run(impl, make_bars(opening_rows(s=0.7)), bin_width=W, both_sides=False)
    np.testing.assert_allclose(res.accounting["deposited"], [7.0, 3.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_column_period_and_alignment_to_absolute_time(impl):
    P = 100_000.0
    iv = 5 * MINUTE
    start = 1_700_000_000_000 // (3 * iv) * (3 * iv)

    def bar(t):
        return dict(t=t, o=P, h=P + 50, l=P - 50, c=P, v=1.0, vwap=P, s=0.5, oi=1000.0 + t)

    # 10 steps spanning 10 intervals, max 5 columns: p = 3 (ceil(10/3) + 1 = 5)
    res = run(impl, make_bars([bar(t) for t in range(10)], start=start), bin_width=W,
              max_columns=5)
    ends = start + (np.array([2, 5, 8, 9]) + 1) * iv
    np.testing.assert_array_equal(np.asarray(res.times), ends)
    # the same bars starting one interval later: the groups shift with absolute time
    res = run(impl, make_bars([bar(t) for t in range(1, 11)], start=start), bin_width=W,
              max_columns=5)
    np.testing.assert_array_equal(np.asarray(res.times), start + (np.array([2, 5, 8, 10]) + 1) * iv)
    # a period with no bar has no column; p = 1 while the span fits
    res = run(impl, make_bars([bar(t) for t in (0, 1, 2, 6, 7)], start=start), bin_width=W,
              max_columns=8)
    np.testing.assert_array_equal(np.asarray(res.times), start + (np.array([0, 1, 2, 6, 7]) + 1) * iv)
    res = run(impl, make_bars([bar(t) for t in (0, 1, 2, 6, 7)], start=start), bin_width=W,
              max_columns=7)  # S = 8 > 7: p = 2 (4 + 1 <= 7)
    np.testing.assert_array_equal(np.asarray(res.times), start + (np.array([1, 2, 7]) + 1) * iv)
    # each column is the state at the end of its last step
    res_all = run(impl, make_bars([bar(t) for t in range(10)], start=start), bin_width=W)
    res_5 = run(impl, make_bars([bar(t) for t in range(10)], start=start), bin_width=W,
                max_columns=5)
    a, b, _ = align(np.asarray(res_5.columns), res_5.bin_offset,
                    np.asarray(res_all.columns)[[2, 5, 8, 9]], res_all.bin_offset)
    assert rel_err(a, b) <= 1e-12


@pytest.mark.parametrize("impl", IMPLS)
def test_filters_hide_tiers_without_renormalising(impl):
    rows = opening_rows()
    full = run(impl, make_bars(rows), bin_width=W)
    for tf, tiers in (("high", [2, 3, 4]), ("low", [0, 1]), ([10, 50], [1, 3])):
        for sf, sides in (("both", [0, 1]), ("long", [0]), ("short", [1])):
            res = run(impl, make_bars(rows), bin_width=W, tier_filter=tf, side_filter=sf)
            st = np.asarray(full.state)
            want = st[tiers][:, sides].sum(axis=(0, 1)) * np.asarray(full.prices)
            a, b, _ = align(np.asarray(res.columns)[-1], res.bin_offset, want, full.bin_offset)
            assert rel_err(a, b) <= 1e-12, (tf, sf)
            # the state itself is unfiltered
            a, b, _ = align(np.asarray(res.state), res.bin_offset, st, full.bin_offset)
            assert rel_err(a, b) <= 1e-12


@pytest.mark.parametrize("seed", [101, 102])
def test_oracle_is_self_consistent(seed):
    # the oracle on its own: conservation per side, columns = the per-step snapshots at the
    # end of each column, deaths agree with consumption
    bars = random_bars(seed, n_steps=400, oi_crashes=4)
    orc = run_oracle(bars, half_life_ms=4 * 3_600_000, max_columns=50, keep_steps=True)
    acc = orc.accounting
    lhs = acc["deposited"]
    rhs = acc["resting"] + acc["consumed"] + acc["closed"] + acc["decayed"]
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    assert acc["consumed"].sum() > 0 and acc["closed"].sum() > 0 and acc["unmatched"].sum() > 0
    assert len(orc.times) <= 50 and orc.period > 1
    np.testing.assert_array_equal(orc.columns, orc.step_usd[orc.column_steps])
    T = len(bars["time"])
    killed = np.zeros((T, 2))
    for (u, side, i, j, q) in orc.deposits:
        d = orc.deaths[(u, side, i, j)]
        if d >= 0:
            killed[d, side] += q
    # what died at a step is at least what was consumed there (closes and decay shrink it)
    assert np.all(orc.consumed <= killed * (1 + 1e-12) + 1e-12)
    assert np.all((orc.consumed > 0) <= (killed > 0))


# ------------------------------------------------------------------------------------------
# Part 2: random paths, engine vs oracle

CASES = [
    # (seed, generator kwargs, model params)
    (1, dict(n_steps=600), dict()),
    (2, dict(n_steps=2000), dict()),
    (3, dict(n_steps=800, interval_ms=MINUTE), dict(entry_spread=True)),
    (4, dict(n_steps=900), dict(entry_spread=True, alpha=0.5)),
    (5, dict(n_steps=700), dict(both_sides=True, half_life_ms=6 * 3_600_000)),
    (6, dict(n_steps=1500), dict(seed=True, max_columns=300)),
    (7, dict(n_steps=1200, interval_ms=MINUTE), dict(max_columns=500, half_life_ms=3_600_000)),
    (8, dict(n_steps=500), dict(tier_filter="high", side_filter="long")),
    (9, dict(n_steps=500), dict(tier_filter="low", side_filter="short")),
    (10, dict(n_steps=500), dict(tier_filter=[25, 100])),
    (11, dict(n_steps=700), dict(leverages=(2, 3, 20, 75, 125), weights=(0.3, 0.1, 0.2, 0.25, 0.15))),
    (12, dict(n_steps=700), dict(leverages=(10, 20), weights=(0.6, 0.4), mmr=0.01)),
    (13, dict(n_steps=700), dict(alpha=0.0)),
    (14, dict(n_steps=700), dict(alpha=0.85)),
    (15, dict(n_steps=700, price=3_000.0), dict(tick_size=0.01)),
    (16, dict(n_steps=700, price=0.1234), dict()),
    (17, dict(n_steps=700, price=100_000.0, tick=1.0), dict(bin_width=5.0, max_bins=20_000)),
    # prices on multiples of 5: lows and highs exactly on bin edges and centres
    (18, dict(n_steps=700, price=100_000.0, tick=5.0), dict(bin_width=10.0, max_bins=9_000)),
    (19, dict(n_steps=600, long_gaps=4, short_gaps=6), dict(max_gap_ms=2 * 3_600_000)),
    (20, dict(n_steps=600, long_gaps=3), dict(max_gap_ms=10 * MINUTE)),
    (21, dict(n_steps=800, oi_crashes=12, nan_oi_frac=0.2), dict()),
    (22, dict(n_steps=800, flat_frac=0.3, zero_volume_frac=0.3), dict()),
    (23, dict(n_steps=800, mark_frac=1.0, jumps=20), dict(seed=True)),
    (24, dict(n_steps=1000, interval_ms=MINUTE, vol=0.004), dict(max_columns=100, seed=True,
                                                                  entry_spread=True)),
    (25, dict(n_steps=400), dict(bin_width=100.0, max_columns=7)),
    (26, dict(n_steps=700, mark_frac=0.0), dict(half_life_ms=20 * MINUTE, both_sides=True,
                                                 alpha=0.3, tier_filter="high")),
]


def _cmp(name, a, b, tol=1e-9):
    e = rel_err(a, b)
    assert e <= tol, f"{name}: relative error {e:.3g} > {tol:g}"


def level_mismatch(got, want, orc, half):
    """None if the engine's levels match the reference list, else a description."""
    if len(got) != min(10, len(want)):
        return f"{len(got)} levels, expected {min(10, len(want))}"
    scale = max([lv.usd for lv in want] + [1e-300])
    for k, (g, w) in enumerate(zip(got, want[:10])):
        if g.side != w.side or abs(g.usd - w.usd) > 1e-9 * scale:
            return f"level {k}: got {g.side} {g.usd!r} at {g.price!r}, want {w.side} {w.usd!r} at {w.price!r}"
        if g.price != pytest.approx(w.price, rel=1e-9):
            return f"level {k}: price {g.price!r} != {w.price!r}"
        if g.distance_pct != pytest.approx(w.distance_pct, rel=1e-7, abs=1e-9):
            return f"level {k}: distance_pct {g.distance_pct!r} != {w.distance_pct!r}"
        if abs(g.cumulative_usd - w.cumulative_usd) > 1e-9 * max(w.cumulative_usd, scale):
            return f"level {k}: cumulative_usd {g.cumulative_usd!r} != {w.cumulative_usd!r}"
        # low/high: "the outermost bins holding USD". model-notes does not say whether a bin is
        # given by its centre or its edges; accept either convention, used consistently
        as_centres = (g.low, g.high) == pytest.approx((w.low, w.high), rel=1e-12)
        as_edges = (g.low, g.high) == pytest.approx((w.low - half, w.high + half), rel=1e-12)
        if not (as_centres or as_edges):
            return f"level {k}: low/high {(g.low, g.high)} vs centres {(w.low, w.high)}"
        tiers = g.tiers
        if isinstance(tiers, dict):
            vals = np.array([float(tiers.get(f"{int(L)}x", tiers.get(L, 0.0)))
                             for L in orc.leverages])
        else:
            vals = np.asarray(tiers, dtype=float)
            if vals.shape[0] != len(orc.leverages):  # only the enabled tiers
                full = np.zeros(len(orc.leverages))
                full[orc.tier_mask] = vals
                vals = full
        if np.abs(vals - w.tiers).max() > 1e-9 * scale:
            return f"level {k}: tiers {vals} != {w.tiers}"
    return None


def check_levels_and_map(eng, orc):
    """Levels and the liquidation map against an independent computation from the oracle."""
    ref = orc.reference_price
    tmask = orc.tier_mask
    smask = orc.side_mask
    side_tier_usd = np.transpose(orc.state, (1, 0, 2)) * orc.prices[None, None, :]
    side_tier_usd = side_tier_usd * tmask[None, :, None] * smask[:, None, None]
    sides = [s for s in (LONG, SHORT) if smask[s]]
    got = eng.levels(top=10)
    # a tie for "the lowest smoothed bin" between two peaks is not decided by the docs: the
    # engine must match the reference with one of the two tie rules
    problems = {}
    for tie in ("first", "last"):
        want = reference_levels(side_tier_usd, orc.prices, ref, sides=sides, tie=tie)
        problems[tie] = level_mismatch(got, want, orc, eng.bin_width / 2)
    assert problems["first"] is None or problems["last"] is None, problems
    # liquidation map over the engine's span
    lm = eng.liquidation_map()
    assert lm.reference_price == ref
    prices = np.asarray(lm.prices, dtype=float)
    np.testing.assert_allclose(prices, np.asarray(eng.prices), rtol=1e-15)
    long_usd = side_tier_usd[LONG].sum(axis=0)
    short_usd = side_tier_usd[SHORT].sum(axis=0)
    lo = eng.bin_offset
    a_long, b_long, _ = align(np.zeros(len(prices)), lo, long_usd, orc.bin_offset)
    a_short, b_short, u_lo = align(np.zeros(len(prices)), lo, short_usd, orc.bin_offset)
    want_long, want_short = reference_liquidation_map(b_long, b_short)
    k0 = lo - u_lo
    _cmp("liquidation_map.long_usd", np.asarray(lm.long_usd, dtype=float),
         want_long[k0:k0 + len(prices)])
    _cmp("liquidation_map.short_usd", np.asarray(lm.short_usd, dtype=float),
         want_short[k0:k0 + len(prices)])


@pytest.mark.parametrize("seed,gen,params", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_engine_matches_oracle(seed, gen, params):
    from liqtui.model import build_heatmap

    bars = random_bars(seed, **gen)
    keep_ledger = seed % 2 == 0
    orc = run_oracle(bars, **params)
    eng = build_heatmap(bars, dtype=np.float64, keep_ledger=keep_ledger, **params)

    T = len(bars["time"])
    # grid
    assert eng.bin_width == orc.bin_width, (eng.bin_width, orc.bin_width)
    assert eng.interval_ms == orc.interval_ms
    assert int(eng.start) == orc.start and int(eng.as_of) == orc.as_of
    assert float(eng.reference_price) == orc.reference_price
    B = len(eng.prices)
    assert B <= params.get("max_bins", 6000)
    assert list(eng.tier_labels) == [f"{int(L)}x" for L in orc.leverages]
    want_prices = (eng.bin_offset + np.arange(B) + 0.5) * eng.bin_width
    np.testing.assert_allclose(np.asarray(eng.prices), want_prices, rtol=1e-12)
    # columns and their times
    np.testing.assert_array_equal(np.asarray(eng.times, dtype=np.int64), orc.times)
    assert np.asarray(eng.columns).dtype == np.float64
    a, b, _ = align(eng.columns, eng.bin_offset, orc.columns, orc.bin_offset)
    _cmp("columns", a, b)
    a, b, _ = align(eng.state, eng.bin_offset, orc.state, orc.bin_offset)
    _cmp("state", a, b)
    assert np.asarray(eng.consumed).shape == (T, 2)
    _cmp("consumed", eng.consumed, orc.consumed)
    for k in ("deposited", "consumed", "closed", "unmatched", "decayed", "resting"):
        _cmp(f"accounting[{k}]", eng.accounting[k], orc.accounting[k])
    if getattr(eng, "step_net", None) is not None:  # n_t per step, where the engine exposes it
        _cmp("step_net", eng.step_net, orc.n)
    # final USD under the filters, and per side / tier set
    a, b, _ = align(eng.usd(), eng.bin_offset, orc.usd(), orc.bin_offset)
    _cmp("usd()", a, b)
    for side in ("long", "short"):
        a, b, _ = align(eng.usd(side=side, tiers="all"), eng.bin_offset,
                        orc.usd(side=side, tiers="all"), orc.bin_offset)
        _cmp(f"usd({side})", a, b)
    tot = eng.totals()
    ol = float(orc.usd(side="long").sum()) if orc.side_mask[LONG] else 0.0
    os_ = float(orc.usd(side="short").sum()) if orc.side_mask[SHORT] else 0.0
    assert tot["long_usd"] == pytest.approx(ol, rel=1e-9, abs=1e-9)
    assert tot["short_usd"] == pytest.approx(os_, rel=1e-9, abs=1e-9)
    # warnings: a dropped gap is reported
    if orc.dropped_gaps:
        assert len(eng.warnings) >= 1
    # the ledger, aggregated by (step, side, tier, bin)
    if keep_ledger:
        led = eng.ledger
        got = {}
        for u, s, t, j, q in zip(led["step"], led["side"], led["tier"], led["bin"], led["qty"]):
            key = (int(u), int(s), int(t), int(j))
            got[key] = got.get(key, 0.0) + float(q)
        want = {}
        for (u, s, t, j, q) in orc.deposits:
            want[(u, s, t, j)] = want.get((u, s, t, j), 0.0) + q
        scale = max(want.values(), default=1.0)
        keys = set(got) | set(want)
        bad = [k for k in keys if abs(got.get(k, 0.0) - want.get(k, 0.0)) > 1e-9 * scale]
        assert not bad, f"{len(bad)} ledger entries differ, e.g. {sorted(bad)[:3]}"
        deaths = {}
        for u, s, t, j, q, d in zip(led["step"], led["side"], led["tier"], led["bin"],
                                    led["qty"], led["death"]):
            if q > 1e-12 * scale:
                deaths[(int(u), int(s), int(t), int(j))] = int(d)
        for key, d in deaths.items():
            od = orc.deaths[key]
            if od == -1:
                assert d < 0 or d >= T, (key, d)
            else:
                assert d == od, (key, d, od)
    check_levels_and_map(eng, orc)
    # the default float32 columns agree to ~1e-6 relative
    eng32 = build_heatmap(bars, **params)
    assert np.asarray(eng32.columns).dtype == np.float32
    assert rel_err(np.asarray(eng32.columns, dtype=float), np.asarray(eng.columns)) <= 1e-6


@pytest.mark.parametrize("seed", [31, 32])
def test_auto_bin_width_is_the_125_value_near_5bp_of_the_last_close(seed):
    from liqtui.model import build_heatmap, choose_bin_width

    bars = random_bars(seed, n_steps=300, price=67_000.0)
    eng = build_heatmap(bars)
    assert eng.bin_width == choose_bin_width(float(bars["close"][-1]))
    bars = random_bars(seed, n_steps=300, price=2.0)
    eng = build_heatmap(bars, tick_size=0.01)
    assert eng.bin_width == choose_bin_width(float(bars["close"][-1]), 0.01) == 0.01


def test_an_explicit_bin_width_never_silently_exceeds_max_bins():
    # model-notes: max_bins is a "cap on the grid span". With an explicit width too fine for
    # the range the engine may refuse (ValueError) or coarsen; it must not exceed the cap.
    from liqtui.model import build_heatmap

    bars = random_bars(17, n_steps=700, price=100_000.0, tick=1.0)
    try:
        eng = build_heatmap(bars, bin_width=5.0)
    except ValueError as e:
        assert "bin" in str(e).lower()
    else:
        assert len(eng.prices) <= 6000


def test_max_bins_coarsens_the_width():
    from liqtui.model import build_heatmap

    bars = random_bars(41, n_steps=400)
    params = dict(leverages=(2, 100), weights=(0.5, 0.5))
    eng = build_heatmap(bars, dtype=np.float64, max_bins=300, **params)
    assert len(eng.prices) <= 300
    w = eng.bin_width
    e = math.floor(math.log10(w))
    assert round(w / 10 ** e, 9) in (1.0, 2.0, 5.0)
    assert w > 50.0
    # whatever width it picked, the model on that grid matches the oracle
    orc = run_oracle(bars, bin_width=w, **params)
    a, b, _ = align(eng.columns, eng.bin_offset, orc.columns, orc.bin_offset)
    _cmp("columns", a, b)
