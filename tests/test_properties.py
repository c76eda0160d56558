"""Invariants of the fast engine on hypothesis-generated bars (no oracle involved).

Each run uses ``keep_ledger=True`` and ``max_columns`` far above the number of steps, so column
``u`` is the state at the end of step ``u`` and every deposit is in the ledger.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategies import bars_strategy  # noqa: E402

from liqtui.model import build_heatmap, liquidation_price  # noqa: E402

LONG, SHORT = 0, 1
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

params_strategy = st.fixed_dictionaries({
    "bin_width": st.sampled_from([5.0, 10.0, 20.0, 50.0]),
    "alpha": st.sampled_from([0.0, 0.5, 1.0]),
    "half_life_ms": st.sampled_from([None, None, 1_800_000.0, 12 * 3_600_000.0]),
    "both_sides": st.booleans(),
    "seed": st.booleans(),
})


def run(bars, **params):
    params.setdefault("max_columns", 100_000)
    # paths of up to 40 steps of ±6 % at a fixed 5-dollar bin can span more than the default
    # bin budget, which build_heatmap rightly refuses; these properties are not about it
    params.setdefault("max_bins", 200_000)
    return build_heatmap(bars, dtype=np.float64, keep_ledger=True, **params)


def extremes(bars):
    """The low / high consumption uses: mark where given (finite), else the bar's."""
    ohlc = np.array([bars["open"], bars["high"], bars["low"], bars["close"]], dtype=float)
    low, high = ohlc.min(axis=0), ohlc.max(axis=0)
    if "mark_low" in bars:
        ml = np.asarray(bars["mark_low"])
        low = np.where(np.isfinite(ml), ml, low)
    if "mark_high" in bars:
        mh = np.asarray(bars["mark_high"])
        high = np.where(np.isfinite(mh), mh, high)
    return low, high


def ledger_rows(h):
    led = h.ledger
    return list(zip(*(np.asarray(led[k]).tolist() for k in ("step", "side", "tier", "bin", "qty",
                                                            "death"))))


def centre(h, j):
    return (j + 0.5) * h.bin_width


@SETTINGS
@given(bars=bars_strategy(), params=params_strategy)
def test_no_heat_survives_past_the_extreme_that_reached_it(bars, params):
    h_long = run(bars, side_filter="long", **params)
    h_short = run(bars, side_filter="short", **params)
    T = len(bars["time"])
    assert len(h_long.times) == T  # one column per step
    low, high = extremes(bars)
    deposited = np.zeros((2, T, len(h_long.prices)))
    for (u, side, tier, j, q, d) in ledger_rows(h_long):
        deposited[side, u, j - h_long.bin_offset] += q
    cols_long = np.asarray(h_long.columns)
    cols_short = np.asarray(h_short.columns)
    prices = np.asarray(h_long.prices)
    scale = max(cols_long.max(initial=0.0), cols_short.max(initial=0.0), 1e-300)
    for u in range(T):
        hit = prices >= low[u]
        allowed = deposited[LONG, u, hit] * prices[hit]
        assert np.all(cols_long[u, hit] <= allowed + 1e-9 * scale), u
        hit = prices <= high[u]
        allowed = deposited[SHORT, u, hit] * prices[hit]
        assert np.all(cols_short[u, hit] <= allowed + 1e-9 * scale), u


@SETTINGS
@given(bars=bars_strategy(), params=params_strategy)
def test_conservation_per_side(bars, params):
    h = run(bars, **params)
    acc = h.accounting
    for side in (LONG, SHORT):
        lhs = acc["deposited"][side]
        rhs = acc["resting"][side] + acc["consumed"][side] + acc["closed"][side] + acc["decayed"][side]
        assert abs(lhs - rhs) <= 1e-9 * max(lhs, rhs, 1e-300), (side, lhs, rhs)
        assert acc["resting"][side] == pytest.approx(float(np.asarray(h.state)[:, side].sum()),
                                                     rel=1e-9, abs=1e-12)
        assert acc["consumed"][side] == pytest.approx(float(np.asarray(h.consumed)[:, side].sum()),
                                                      rel=1e-9, abs=1e-12)
        for k in ("deposited", "consumed", "closed", "unmatched", "decayed", "resting"):
            assert acc[k][side] >= 0.0, k
    if not params["half_life_ms"]:
        assert np.all(np.asarray(acc["decayed"]) == 0.0)
    # the ledger adds up to what was deposited
    dep = np.zeros(2)
    for (u, side, tier, j, q, d) in ledger_rows(h):
        dep[side] += q
    np.testing.assert_allclose(dep, acc["deposited"], rtol=1e-9, atol=1e-12)


@SETTINGS
@given(bars=bars_strategy(max_steps=25), params=params_strategy,
       split=st.lists(st.booleans(), min_size=5, max_size=5))
def test_filters_commute_with_the_sum(bars, params, split):
    levs = [5, 10, 25, 50, 100]
    A = [L for L, b in zip(levs, split) if b]
    B = [L for L, b in zip(levs, split) if not b]

    def cols(**kw):
        return np.asarray(run(bars, **params, **kw).columns)

    full = cols()
    scale = max(full.max(initial=0.0), 1e-300)
    parts = [cols(tier_filter=X) if X else np.zeros_like(full) for X in (A, B)]
    assert np.abs(parts[0] + parts[1] - full).max(initial=0.0) <= 1e-9 * scale
    assert np.abs(cols(side_filter="long") + cols(side_filter="short") - full).max(
        initial=0.0) <= 1e-9 * scale
    assert np.array_equal(cols(tier_filter="high"), cols(tier_filter=[25, 50, 100]))
    assert np.array_equal(cols(tier_filter="low"), cols(tier_filter=[5, 10]))
    # presets follow the leverages, not the default tier list
    lev = (3, 10, 20, 25, 75)
    kw = dict(params, leverages=lev, weights=(0.2, 0.2, 0.2, 0.2, 0.2))
    high = np.asarray(run(bars, tier_filter="high", **kw).columns)
    assert np.array_equal(high, np.asarray(run(bars, tier_filter=[25, 75], **kw).columns))
    low = np.asarray(run(bars, tier_filter="low", **kw).columns)
    assert np.array_equal(low, np.asarray(run(bars, tier_filter=[3, 10], **kw).columns))
    # a filter hides tiers; it does not renormalise, and the state is unfiltered
    h_all = run(bars, **params)
    h_A = run(bars, tier_filter=A, **params) if A else None
    if h_A is not None:
        np.testing.assert_array_equal(np.asarray(h_A.state), np.asarray(h_all.state))


@SETTINGS
@given(bars=bars_strategy(), params=params_strategy)
def test_ledger_deaths_are_the_first_later_step_reaching_the_bin(bars, params):
    h = run(bars, **params)
    T = len(bars["time"])
    low, high = extremes(bars)
    for (u, side, tier, j, q, d) in ledger_rows(h):
        c = centre(h, j)
        later = range(u + 1, T)
        if side == LONG:
            hits = [v for v in later if low[v] <= c]
        else:
            hits = [v for v in later if high[v] >= c]
        if hits:
            assert d == hits[0], (u, side, tier, j, d, hits[0])
        else:
            assert d < 0 or d >= T, (u, side, tier, j, d)


def delta_oi(bars, interval, max_gap_ms=3_600_000, seed=False):
    """ΔOI per step (model-notes: between consecutive known values; long gaps dropped)."""
    t = np.asarray(bars["time"])
    oi = np.asarray(bars["open_interest"], dtype=float)
    d = np.zeros(len(t))
    prev = None
    for u in range(len(t)):
        if not math.isfinite(oi[u]):
            continue
        if prev is None:
            d[u] = oi[u] if seed else 0.0
        elif t[u] - t[prev] - interval <= max_gap_ms:
            d[u] = oi[u] - oi[prev]
        prev = u
    return d


@SETTINGS
@given(bars=bars_strategy(), params=params_strategy)
def test_deposits_on_the_right_side_at_the_right_bins_and_sizes(bars, params):
    h = run(bars, **params)
    w = h.bin_width
    lev = (5, 10, 25, 50, 100)
    om = (0.10, 0.25, 0.30, 0.20, 0.15)
    V = np.asarray(bars["volume"])
    Q = np.asarray(bars["quote_volume"])
    Qb = np.asarray(bars["taker_buy_quote_volume"])
    ohlc = np.array([bars["open"], bars["high"], bars["low"], bars["close"]], dtype=float)
    lo, hi = ohlc.min(axis=0), ohlc.max(axis=0)
    c = np.asarray(bars["close"])
    vwap = np.clip(np.where(V > 0, Q / np.where(V > 0, V, 1), (hi + lo + c) / 3), lo, hi)
    s = np.where((V > 0) & (Q > 0), Qb / np.where(Q > 0, Q, 1), 0.5)
    sp = 0.5 + params["alpha"] * (np.clip(s, 0.2, 0.8) - 0.5)
    n = delta_oi(bars, h.interval_ms, seed=params["seed"]) + np.asarray(h.consumed).sum(axis=1)
    T = len(c)
    sums = np.zeros((T, 2))
    for (u, side, tier, j, q, d) in ledger_rows(h):
        sums[u, side] += q
        P = float(liquidation_price(vwap[u], lev[tier], "long" if side == LONG else "short"))
        # not on the wrong side of its step's close
        if side == LONG:
            assert P < c[u], (u, tier, P, c[u])
        else:
            assert P > c[u], (u, tier, P, c[u])
        x = P / w - 0.5
        assert j in (math.floor(x), math.floor(x) + 1), (u, side, tier, j, x)
        assert q >= 0
    for u in range(T):
        if n[u] <= 0:
            assert sums[u].sum() == 0.0, (u, n[u], sums[u])
            continue
        kept = [np.array([float(liquidation_price(vwap[u], L, "long")) < c[u] for L in lev]),
                np.array([float(liquidation_price(vwap[u], L, "short")) > c[u] for L in lev])]
        q_side = (n[u], n[u]) if params["both_sides"] else (n[u] * sp[u], n[u] * (1 - sp[u]))
        for side in (LONG, SHORT):
            want = q_side[side] * float(np.dot(om, kept[side]))
            # n·s' in total over the tiers (not n per tier)
            assert sums[u, side] == pytest.approx(want, rel=1e-9, abs=1e-12), (u, side)


@SETTINGS
@given(bars=bars_strategy(), params=params_strategy,
       tf=st.sampled_from(["all", "high", "low"]), sf=st.sampled_from(["both", "long", "short"]))
def test_levels_are_ranked_and_consistent(bars, params, tf, sf):
    h = run(bars, tier_filter=tf, side_filter=sf, **params)
    levels = h.levels(top=1000)
    usd = [lv.usd for lv in levels]
    assert usd == sorted(usd, reverse=True)
    ref = h.reference_price
    prices = np.asarray(h.prices)
    side_usd = {"long": h.usd(side="long"), "short": h.usd(side="short")}
    total = {k: float(v.sum()) for k, v in side_usd.items()}
    for lv in levels:
        assert lv.side in ("long", "short")
        if sf != "both":
            assert lv.side == sf
        assert lv.usd > 0
        assert lv.low <= lv.price <= lv.high
        inside = (prices >= lv.low) & (prices <= lv.high)
        assert float(side_usd[lv.side][inside].sum()) == pytest.approx(lv.usd, rel=1e-9)
        assert lv.cumulative_usd >= lv.usd * (1 - 1e-12)
        assert lv.cumulative_usd <= total[lv.side] * (1 + 1e-12)
        assert lv.distance_pct == pytest.approx((lv.price / ref - 1) * 100, rel=1e-9, abs=1e-12)
        assert (lv.distance_pct < 0) == (lv.price < ref)
        tiers = lv.tiers
        vals = list(tiers.values()) if isinstance(tiers, dict) else list(np.asarray(tiers))
        assert sum(vals) == pytest.approx(lv.usd, rel=1e-9)
    # clusters partition the heat: the levels' USD adds up to everything shown
    for side in ("long", "short"):
        if sf in ("both", side):
            got = sum(lv.usd for lv in levels if lv.side == side)
            assert got == pytest.approx(total[side], rel=1e-9, abs=1e-6)
    top = h.levels(top=3)
    assert [lv.usd for lv in top] == usd[:3]
