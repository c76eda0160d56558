"""Several venues on one grid (liqtui.model.venues): hand-made heatmaps with exact expectations,
and the engine's own output for a market seen through three venues."""

from __future__ import annotations

import numpy as np
import pytest

from liqtui.model import Grid, Heatmap, ModelParams, build_heatmap
from liqtui.model.venues import MAX_OI_RATIO, aggregate, build_venues

from conftest import market

STEP = 300_000
T0 = 1_760_000_000_000 // STEP * STEP
P1 = ModelParams(leverages=(10.0, 50.0), weights=(0.6, 0.4))
X = 60_025.0  # the centre of bin 1200 on the $50 grid


def make(width=50.0, off=1190, nb=30, *, long=None, short=None, history=None, closes=(61_000.0,),
         oi=1_000.0, params=P1):
    """A heatmap on the grid of ``width`` over bins off..off+nb−1: ``long``/``short`` map an
    absolute bin to final USD (split 75/25 over the two tiers); ``history`` is a list of
    {bin: USD} columns (default: one column, the final state), one per close."""
    grid = Grid.from_width(width)
    prices = grid.centre(np.arange(off, off + nb))
    state = np.zeros((2, 2, nb))
    for side, bins in ((0, long or {}), (1, short or {})):
        for b, usd in bins.items():
            state[0, side, b - off] = 0.75 * usd / prices[b - off]
            state[1, side, b - off] = 0.25 * usd / prices[b - off]
    history = history or [{**(long or {}), **{b: (long or {}).get(b, 0) + u for b, u in (short or {}).items()}}]
    assert len(history) == len(closes)
    columns = np.zeros((len(history), nb), dtype=np.float32)
    for k, col in enumerate(history):
        for b, usd in col.items():
            columns[k, b - off] = usd
    n = len(closes)
    times = T0 + STEP * np.arange(1, n + 1)
    zeros2 = np.zeros(2)
    hm = Heatmap(params=params, grid=grid, bin_offset=off, prices=prices, times=times,
                 columns=columns, state=state, consumed=np.zeros((n, 2)),
                 accounting={k: zeros2.copy() for k in ("deposited", "consumed", "closed",
                                                         "unmatched", "decayed", "resting")},
                 reference_price=closes[-1], start=T0, as_of=int(times[-1]),
                 interval_ms=STEP, last_open_interest=oi)
    steps = {"time": T0 + STEP * np.arange(n), "close": np.array(closes, dtype=float)}
    return hm, steps


def bin_of(agg, price):
    return int(agg.grid.index(price)) - agg.bin_offset


def test_a_band_at_one_underlying_price_lands_in_one_bin_whatever_the_basis():
    k = 1.003  # a large basis: $180 at $60k, 3.6 bins
    a, sa = make(long={1200: 1_000.0}, closes=(61_000.0,))
    jb = int(Grid.from_width(50).index(X * k))  # where venue B's engine puts the same band
    assert jb == 1204
    b, sb = make(off=1190, long={jb: 500.0}, closes=(61_000.0 * k,))
    agg = aggregate({"a": a, "b": b}, {"a": sa, "b": sb})
    u = agg.usd(side="long")
    assert u[bin_of(agg, X)] == pytest.approx(1_500.0)
    assert np.count_nonzero(u) == 1
    assert agg.columns[0, bin_of(agg, X)] == pytest.approx(1_500.0)
    assert np.count_nonzero(agg.columns[0]) == 1
    # without the mapping they would be two bands four bins apart
    assert agg.ratios == pytest.approx({"a": 1.0, "b": 1 / k})
    (lv,) = agg.levels(10)
    assert (lv.side, lv.usd, lv.price) == ("long", pytest.approx(1_500.0), pytest.approx(X))
    assert agg.level_venues(lv) == pytest.approx({"a": 1_000.0, "b": 500.0})
    assert lv.tiers == pytest.approx({"10x": 1_125.0, "50x": 375.0})


def test_each_history_column_uses_the_closes_of_its_own_time():
    # the basis moves from +0.3 % to −0.3 %: the same underlying band sits 4 bins above,
    # then 4 bins below, on venue B; mapped with each column's closes it stays in one bin
    c = (61_000.0, 61_500.0)
    ks = (1.003, 0.997)
    bins = [int(Grid.from_width(50).index(X * k)) for k in ks]
    assert bins == [1204, 1196]
    a, sa = make(history=[{1200: 10.0}, {1200: 20.0}], long={1200: 20.0}, closes=c)
    b, sb = make(history=[{bins[0]: 1.0}, {bins[1]: 2.0}], long={bins[1]: 2.0},
                 closes=(c[0] * ks[0], c[1] * ks[1]))
    agg = aggregate({"a": a, "b": b}, {"a": sa, "b": sb})
    j = bin_of(agg, X)
    assert agg.columns[:, j].tolist() == pytest.approx([11.0, 22.0])
    assert np.count_nonzero(agg.columns) == 2
    # the final state uses the live marks when given
    agg2 = aggregate({"a": a, "b": b}, {"a": sa, "b": sb},
                     marks={"a": 61_000.0, "b": 61_000.0 * 1.003})
    assert agg2.reference_price == 61_000.0
    moved = float(Grid.from_width(50).centre(bins[1])) / 1.003  # 59,825 / 1.003 = 59,646.06
    assert agg2.usd()[bin_of(agg2, moved)] == pytest.approx(2.0)
    assert bin_of(agg2, moved) == bin_of(agg2, X) - 8


def test_sums_conserve_usd_with_other_grids_times_and_ratios():
    rng = np.random.default_rng(5)
    n = 6
    closes = 60_000.0 + np.cumsum(rng.normal(0, 200, n))
    hist = [{int(b): float(u) for b, u in zip(rng.integers(1190, 1260, 12), rng.random(12) * 1e6)}
            for _ in range(n)]
    a, sa = make(off=1180, nb=90, long={1200: 3e6, 1210: 1e6}, short={1250: 2e6},
                 history=hist, closes=tuple(closes))
    # venue B on a $20 grid, with its own basis per step
    kb = 1 + rng.normal(0, 0.002, n)
    hist_b = [{int(b): float(u) for b, u in zip(rng.integers(2990, 3150, 20), rng.random(20) * 1e5)}
              for _ in range(n)]
    b, sb = make(width=20.0, off=2980, nb=180, long={3000: 5e5}, short={3140: 7e5},
                 history=hist_b, closes=tuple(closes * kb), oi=600.0)
    # venue C starts two steps late (fewer columns), on the $50 grid
    c_, sc = make(off=1170, nb=100, long={1205: 4e5}, history=hist[:4],
                  closes=tuple(closes[2:] * 0.999), oi=300.0)
    c_.times = c_.times + 2 * STEP
    sc["time"] = sc["time"] + 2 * STEP
    agg = aggregate({"a": a, "b": b, "c": c_}, {"a": sa, "b": sb, "c": sc})
    assert agg.venues == ("a", "b", "c") and agg.dropped == {}
    expected = a.columns.sum(axis=1) + b.columns.sum(axis=1) + np.r_[0, 0, c_.columns.sum(axis=1)]
    assert agg.columns.sum(axis=1) == pytest.approx(expected, rel=1e-6)
    total = sum(h.totals()["long_usd"] + h.totals()["short_usd"] for h in (a, b, c_))
    t = agg.totals()
    assert t["long_usd"] + t["short_usd"] == pytest.approx(total, rel=1e-12)
    assert agg.usd_by_venue().sum(axis=(1, 2)) == pytest.approx([h.usd().sum() for h in (a, b, c_)])
    assert agg.last_open_interest == pytest.approx(1_900.0)
    # the liquidation map of the sum: all longs fall by the lowest bin, all shorts by the top
    lm = agg.liquidation_map()
    assert lm.long_usd[0] == pytest.approx(t["long_usd"]) and lm.short_usd[-1] == pytest.approx(t["short_usd"])
    assert lm.reference_price == a.reference_price
    # the provisional newest column of a venue maps onto the same grid, USD kept
    col = b.usd()
    assert agg.map_column("b", col).sum() == pytest.approx(col.sum())


def test_a_venue_off_by_orders_of_magnitude_is_dropped_and_said():
    a, sa = make(long={1200: 1_000.0}, oi=80_000.0)
    b, sb = make(long={1200: 500.0}, oi=45_000.0)
    c_, sc = make(long={1200: 9e9}, oi=80_000.0 * 100)  # contracts taken for coins
    agg = aggregate({"a": a, "b": b, "c": c_}, {"a": sa, "b": sb, "c": sc})
    assert agg.venues == ("a", "b")
    assert set(agg.dropped) == {"c"} and "100×" in agg.dropped["c"]
    assert any(w.startswith("c left out of the sum: open interest") for w in agg.warnings)
    assert agg.usd().sum() == pytest.approx(1_500.0)
    assert agg.venue_usd.shape[0] == 2
    # within the ratio: kept
    d, sd = make(long={1200: 1.0}, oi=80_000.0 / (MAX_OI_RATIO * 0.9))
    assert aggregate({"a": a, "d": d}, {"a": sa, "d": sd}).venues == ("a", "d")


def test_two_venues_trust_the_reference_and_a_dropped_reference_passes_it_on():
    a, sa = make(long={1200: 1_000.0}, oi=80_000.0)
    b, sb = make(long={1200: 500.0}, oi=80.0)
    agg = aggregate({"a": a, "b": b}, {"a": sa, "b": sb})
    assert agg.venues == ("a",) and "a's (the reference)" in agg.dropped["b"]
    agg = aggregate({"a": a, "b": b}, {"a": sa, "b": sb}, reference="b")
    assert agg.venues == ("b",) and agg.reference_venue == "b"
    # the reference has no data: the next venue is the reference
    agg = aggregate({"x": None, "a": a}, {"x": None, "a": sa}, reference="x")
    assert agg.venues == ("a",) and agg.dropped == {"x": "no data"}
    assert "x left out of the sum: no data" in agg.warnings


def test_no_data_no_open_interest_and_caller_failures_are_dropped_and_said():
    a, sa = make(long={1200: 1_000.0})
    b, sb = make(long={1200: 1.0}, oi=float("nan"))
    c_, sc = make(long={1200: 1.0})
    agg = aggregate({"a": a, "b": b, "c": c_, "d": None}, {"a": sa, "b": sb, "c": sc},
                    failed={"c": "feed error: HTTP 403"})
    assert agg.venues == ("a",)
    assert agg.dropped == {"b": "no open interest", "c": "feed error: HTTP 403", "d": "no data"}
    with pytest.raises(ValueError, match="no venue to aggregate.*b: no open interest"):
        aggregate({"b": b}, {"b": sb})


def test_venues_must_share_the_model_parameters():
    a, sa = make(long={1200: 1.0})
    b, sb = make(long={1200: 1.0}, params=P1.replace(tier_filter="high"))
    with pytest.raises(ValueError, match="b: model parameters differ"):
        aggregate({"a": a, "b": b}, {"a": sa, "b": sb})


def shaped(m: dict, basis: float, share: float) -> dict:
    k = 1.0 + basis
    out = {key: np.asarray(m[key]) * k for key in ("open", "high", "low", "close")}
    out.update(time=m["time"], volume=np.asarray(m["volume"]) * share,
               quote_volume=np.asarray(m["quote_volume"]) * share * k,
               taker_buy_quote_volume=np.asarray(m["taker_buy_quote_volume"]) * share * k,
               open_interest=np.asarray(m["oi"]) * share)
    return out


def _window(hm, side: str, lo: float, hi: float) -> float:
    """USD on ``side`` in the bins whose centres lie in [lo, hi]."""
    u = hm.usd(side=side)
    return float(u[(hm.prices >= lo) & (hm.prices <= hi)].sum())


def test_one_market_through_three_venues_adds_up_on_the_engine_output():
    m = market(n=3 * 288)
    bars = {"binance": shaped(m, 0.0, 1.0), "bybit": shaped(m, 0.0004, 0.55),
            "okx": shaped(m, -0.0003, 0.35)}
    single = build_heatmap(bars["binance"])
    for threads in (False, True):
        agg = build_venues(bars, threads=threads)
        assert agg.venues == ("binance", "bybit", "okx") and agg.bin_width == single.bin_width
        # the model is linear in open interest: each venue holds its share of the USD
        shares = agg.usd_by_venue().sum(axis=(1, 2)) / single.usd().sum()
        assert shares == pytest.approx([1.0, 0.55 * 1.0004, 0.35 * 0.9997], rel=2e-3)
        w = single.bin_width
        for lv in single.levels(5):
            # the same price window (the level's bins, one more each side for the mapping's
            # rounding) holds 1 + 0.55 + 0.35 = 1.9× the single venue's USD; comparing windows,
            # not clusters, because a cluster's cut moves with any bin's shift
            lo, hi = lv.low - w, lv.high + w
            one = _window(single, lv.side, lo, hi)
            assert _window(agg, lv.side, lo, hi) == pytest.approx(1.9 * one, rel=0.05)
        for lv in agg.levels(5):
            assert sum(agg.level_venues(lv).values()) == pytest.approx(lv.usd)
        for s in (0, 1):  # the USD-weighted mean price of each side, within a bin
            w = (single.usd_tiers().sum(axis=0)[s], agg.usd_tiers().sum(axis=0)[s])
            mean = [(x * p).sum() / x.sum() for x, p in zip(w, (single.prices, agg.prices))]
            assert abs(mean[1] - mean[0]) <= single.bin_width
    # the history too: each column holds 1 + 0.55 + 0.35 of the single venue's USD
    ratio = agg.columns.sum(axis=1)[1:] / single.columns.sum(axis=1)[1:]
    assert ratio == pytest.approx(np.full(len(ratio), 1.9), rel=5e-3)


def test_build_venues_reports_a_venue_whose_bars_cannot_be_modelled():
    m = market(n=288)
    bad = shaped(m, 0.0, 1.0)
    bad["close"] = bad["close"].copy()
    bad["close"][5] = -1.0
    agg = build_venues({"binance": shaped(m, 0.0, 1.0), "okx": bad, "bybit": None})
    assert agg.venues == ("binance",)
    assert "prices must be positive" in agg.dropped["okx"] and agg.dropped["bybit"] == "no data"


def test_columns_on_the_same_grid_equal_a_bin_by_bin_scatter():
    """The slice-per-shift mapping against the plain definition: every bin of every column to
    the bin of floor(P·r / w), with ratios above and below 1 whose shift changes along a row."""
    from liqtui.model.venues import mapped_index

    rng = np.random.default_rng(9)
    n = 40
    closes = 60_000.0 * (1 + rng.normal(0, 0.01, n))
    k = 1 + np.linspace(-0.01, 0.01, n)  # −1 % … +1 %: shifts of −12 … +12 bins, varying
    hist = [{int(b): float(u) for b, u in zip(rng.integers(1100, 1500, 60), rng.random(60))}
            for _ in range(n)]
    a, sa = make(off=1090, nb=420, long={1200: 1.0}, closes=tuple(closes), history=hist)
    b, sb = make(off=1090, nb=420, long={1300: 1.0}, closes=tuple(closes * k), history=hist)
    agg = aggregate({"a": a, "b": b}, {"a": sa, "b": sb})
    expect = np.zeros(agg.columns.shape)
    for row in range(n):
        expect[row, a.bin_offset - agg.bin_offset + np.arange(420)] += a.columns[row]
        r = sa["close"][row] / sb["close"][row]  # the ratio of the closes, as aggregate takes it
        idx = mapped_index(agg.grid, b.prices, np.array([r]))[0] - agg.bin_offset
        np.add.at(expect[row], idx, b.columns[row])
    shifts = mapped_index(agg.grid, b.prices[[0, -1]], 1 / k) - (1090 + np.array([0, 419]))
    assert (shifts[:, 0] != shifts[:, 1]).sum() > n // 2  # most rows have a changing shift
    assert agg.columns == pytest.approx(expect.astype(np.float32), rel=1e-6, abs=1e-6)
