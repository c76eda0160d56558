"""The simulated market: determinism, candles, open interest as a consequence of positions,
liquidations and cascades, the traders' own leverage mix, query semantics, live events and the
clock. Small histories keep the whole file fast."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest

from liqtui.model import DEFAULT_LEVERAGES, DEFAULT_WEIGHTS, choose_bin_width, liquidation_price
from liqtui.sim import Market, SymbolSpec
from liqtui.sim import engine as eng_mod
from liqtui.sim import market as market_mod
from liqtui.sim import traders
from liqtui.sim.triggers import TriggerBook

MIN = 60_000
NOW = 1_788_224_430_000  # mid-minute on purpose (2026-09-01 01:00:30 UTC)


@pytest.fixture(scope="module")
def market():
    m = Market(now_ms=NOW, history_days=0.5, seed=7)
    m.set_now(NOW)
    return m


@pytest.fixture(scope="module")
def live():
    """A market advanced second by second for three and a half minutes, with its events."""
    m = Market(now_ms=NOW, history_days=0.3, seed=11)
    m.set_now(NOW)
    assert m.advance() == []  # nothing new at construction time
    events = []
    for s in range(1, 211):
        m.set_now(NOW + s * 1000)
        events += m.advance()
    return m, events


# -- determinism ---------------------------------------------------------------------------------

def _fingerprint(m, sym):
    return (m.klines(sym, 5 * MIN, limit=200), m.mark_klines(sym, 5 * MIN, limit=200),
            m.open_interest_hist(sym, 5 * MIN, limit=200), m.truth_map(sym),
            {k: v.tolist() for k, v in m.liquidations(sym).items()})


def test_same_seed_same_market_other_seed_other_market():
    a = Market(symbols=("SOLUSDT",), now_ms=NOW, history_days=0.25, seed=5)
    b = Market(symbols=("SOLUSDT",), now_ms=NOW, history_days=0.25, seed=5)
    c = Market(symbols=("SOLUSDT",), now_ms=NOW, history_days=0.25, seed=6)
    for m in (a, b, c):
        m.set_now(NOW)
    assert _fingerprint(a, "SOLUSDT") == _fingerprint(b, "SOLUSDT")
    assert _fingerprint(a, "SOLUSDT")[0] != _fingerprint(c, "SOLUSDT")[0]


def test_a_symbol_does_not_depend_on_the_others():
    a = Market(symbols=("ETHUSDT",), now_ms=NOW, history_days=0.2, seed=3)
    b = Market(symbols=("BTCUSDT", "ETHUSDT"), now_ms=NOW, history_days=0.2, seed=3)
    a.set_now(NOW)
    b.set_now(NOW)
    assert a.klines("ETHUSDT", MIN, limit=300) == b.klines("ETHUSDT", MIN, limit=300)


def test_cache_reproduces_the_cold_build(tmp_path):
    kw = dict(symbols=("BTCUSDT",), now_ms=NOW, history_days=0.6, seed=9)
    cold = Market(cache_dir=tmp_path, **kw)
    assert list(tmp_path.glob("*.npz")), "a cold build past a compaction boundary saves a cache"
    warm = Market(cache_dir=tmp_path, **kw)
    assert warm.cache_hits == ["BTCUSDT"] and cold.cache_hits == []
    plain = Market(**kw)
    for m in (cold, warm, plain):
        m.set_now(NOW)
    assert _fingerprint(warm, "BTCUSDT") == _fingerprint(plain, "BTCUSDT")
    assert _fingerprint(cold, "BTCUSDT") == _fingerprint(plain, "BTCUSDT")


def test_history_is_exactly_history_days_without_a_cache():
    m = Market(symbols=("SOLUSDT",), now_ms=NOW, history_days=0.25, seed=5)
    assert m.history_start == (NOW - 6 * 60 * MIN) // MIN * MIN
    assert m._engines["SOLUSDT"].k0 * MIN == m.history_start


def test_a_run_cached_up_to_a_day_earlier_is_continued(tmp_path):
    kw = dict(symbols=("BTCUSDT",), history_days=0.6, seed=9, cache_dir=tmp_path)
    first = Market(now_ms=NOW, **kw)
    assert first.history_start == NOW // MIN * MIN - int(0.6 * 1440) * MIN
    later = NOW + 5 * 60 * MIN
    again = Market(now_ms=later, **kw)  # the same run, continued from its cached state
    assert again.history_start == first.history_start and again.cache_hits == ["BTCUSDT"]
    plain = Market(symbols=("BTCUSDT",), seed=9, now_ms=later, start_ms=first.history_start)
    for m in (again, plain):
        m.set_now(later)
    assert _fingerprint(again, "BTCUSDT") == _fingerprint(plain, "BTCUSDT")
    # another symbol's cache does not set this one's start; a day later is a new run
    other = Market(now_ms=later, **{**kw, "symbols": ("ETHUSDT",)})
    assert other.history_start == first.history_start  # the market's runs share one start
    from liqtui.sim.symbols import history_start
    assert history_start(later, 0.6, 9, "mixed", tmp_path, ("SOLUSDT",)) == (
        later - int(0.6 * 1440) * MIN) // MIN * MIN
    day_later = NOW + 25 * 60 * MIN
    fresh = Market(now_ms=day_later, **kw)
    assert fresh.history_start == day_later // MIN * MIN - int(0.6 * 1440) * MIN
    assert fresh.cache_hits == []


def test_parallel_build_equals_sequential(monkeypatch):
    kw = dict(symbols=("BTCUSDT", "SOLUSDT"), now_ms=NOW, history_days=0.1, seed=8)
    seq = Market(**kw)
    monkeypatch.setattr(market_mod, "PARALLEL_MIN_MINUTES", 0)
    monkeypatch.setenv("LIQTUI_SIM_WORKERS", "2")
    par = Market(**kw)
    for m in (seq, par):
        m.set_now(NOW)
    for sym in kw["symbols"]:
        assert _fingerprint(seq, sym) == _fingerprint(par, sym)


def test_trigger_book_matches_a_naive_book():
    rng = np.random.default_rng(0)
    book, naive = TriggerBook(), {}
    next_id = 0
    for _ in range(400):
        n = int(rng.integers(0, 60))
        keys = rng.normal(0, 1, n).round(2)
        ids = np.arange(next_id, next_id + n)
        next_id += n
        book.add(keys, ids)
        naive.update(zip(ids.tolist(), keys.tolist()))
        x = float(rng.normal(-2.5, 1))
        got = book.pop_le(x)
        want = sorted(i for i, k in naive.items() if k <= x)
        assert got.tolist() == want
        for i in want:
            del naive[i]
        assert len(book) == len(naive)
    mapping = np.full(next_id, -1)
    alive = sorted(naive)[::2]
    mapping[alive] = np.arange(len(alive))
    book.remap(mapping)
    assert book.pop_le(np.inf).tolist() == list(range(len(alive)))


# -- candles -------------------------------------------------------------------------------------

def test_realistic_levels_and_specs(market):
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} <= set(market.symbols)
    s = market.symbols
    assert (s["BTCUSDT"].tick_size, s["ETHUSDT"].tick_size, s["SOLUSDT"].tick_size) == (0.1, 0.01, 0.001)
    assert (s["BTCUSDT"].step_size, s["ETHUSDT"].step_size, s["SOLUSDT"].step_size) == (0.001, 0.001, 0.01)
    for sym, lo, hi in (("BTCUSDT", 70_000, 125_000), ("ETHUSDT", 2_500, 4_500), ("SOLUSDT", 120, 250)):
        rows = market.klines(sym, MIN, limit=1000)
        closes = np.array([r[4] for r in rows])
        assert lo < closes.min() and closes.max() < hi
        tick = s[sym].tick_size
        assert np.allclose(np.rint(closes / tick) * tick, closes, rtol=0, atol=tick * 1e-6)


def test_ohlc_consistent_and_intervals_aggregate(market):
    for sym in market.symbols:
        one = market.klines(sym, MIN, limit=1500)
        a = np.array(one, dtype=float)
        assert np.all(a[:, 3] <= np.minimum(a[:, 1], a[:, 4])) and np.all(a[:, 2] >= np.maximum(a[:, 1], a[:, 4]))
        assert np.all(a[:, 9] <= a[:, 5] + 1e-9) and np.all(a[:, 5] > 0)
        assert np.all(np.diff(a[:, 0]) == MIN)
        for iv in (5 * MIN, 15 * MIN, 60 * MIN):
            bars = market.klines(sym, iv, limit=1500)
            by_open = {r[0]: r for r in one}
            for b in bars[1:]:  # the first bar may start before the history
                mins = [by_open[t] for t in range(b[0], min(b[0] + iv, NOW // MIN * MIN + MIN), MIN)]
                assert b[1] == mins[0][1] and b[4] == mins[-1][4]
                assert b[2] == max(m[2] for m in mins) and b[3] == min(m[3] for m in mins)
                assert b[5] == pytest.approx(sum(m[5] for m in mins), rel=1e-12)
                assert b[8] == sum(m[8] for m in mins)
                assert b[9] == pytest.approx(sum(m[9] for m in mins), rel=1e-12)
                assert b[6] == b[0] + iv - 1
        mk = np.array(market.mark_klines(sym, MIN, limit=1500), dtype=float)
        assert np.all(mk[:, 3] <= np.minimum(mk[:, 1], mk[:, 4])) and np.all(mk[:, 2] >= np.maximum(mk[:, 1], mk[:, 4]))
        # mark ≈ last: a small basis
        assert np.max(np.abs(mk[:, 4] / a[-mk.shape[0]:, 4] - 1)) < 0.003


def test_volatility_clusters_and_prices_move(market):
    c = np.array([r[4] for r in market.klines("BTCUSDT", MIN, limit=1500)])
    r = np.diff(np.log(c))
    daily = r.std() * np.sqrt(1440)
    assert 0.005 < daily < 0.2
    # clustering: |returns| are autocorrelated
    x = np.abs(r) - np.abs(r).mean()
    assert np.corrcoef(x[:-10], x[10:])[0, 1] > 0.02


# -- open interest = positions -------------------------------------------------------------------

def test_open_interest_is_a_consequence_of_positions(market):
    for sym in market.symbols:
        e = market._engines[sym]
        t, n = e.tape, e.n
        longs, shorts = t["longs"][:n], t["shorts"][:n]
        prev_l = np.r_[longs[0] - (t["open_l"][0] - t["close_l"][0] - t["liq_l"][0]), longs[:-1]]
        prev_s = np.r_[shorts[0] - (t["open_s"][0] - t["close_s"][0] - t["liq_s"][0]), shorts[:-1]]
        assert np.array_equal(longs - prev_l, t["open_l"][:n] - t["close_l"][:n] - t["liq_l"][:n])
        assert np.array_equal(shorts - prev_s, t["open_s"][:n] - t["close_s"][:n] - t["liq_s"][:n])
        assert np.array_equal(t["oi"][:n], np.maximum(longs, shorts) + t["hedge"][:n])
        # the open positions add up to the book-keeping
        pos = market.positions(sym)
        k = e.snap[0]
        i = k - e.k0 - 1
        lg = pos["side"] > 0
        step = market.symbols[sym].step_size
        assert round(pos["qty"][lg].sum() / step) == longs[i]
        assert round(pos["qty"][~lg].sum() / step) == shorts[i]
        # REST: the value stamped T is the open interest at the instant T
        rows = market.open_interest_hist(sym, 5 * MIN, limit=12)
        for T, base, usd in rows:
            assert T % (5 * MIN) == 0 and T <= NOW
            assert base == pytest.approx(t["oi"][T // MIN - e.k0 - 1] * step)
            assert usd == pytest.approx(base * t["mclose"][T // MIN - e.k0 - 1])
        assert (t["hedge"][:n] > 0).all()  # the part no liquidation model can see


def test_volume_counts_every_position_trade(market):
    e = market._engines["BTCUSDT"]
    t, n = e.tape, e.n
    pos_units = sum(t[f][:n] for f in ("open_l", "open_s", "close_l", "close_s", "liq_l", "liq_s"))
    assert np.all(t["volume"][:n] >= pos_units)
    share = t["taker"][:n] / t["volume"][:n]
    assert 0.4 < np.median(share) < 0.6 and share.min() >= 0 and share.max() <= 1


# -- liquidations and cascades -------------------------------------------------------------------

def test_liquidations_happen_where_the_mark_crosses(market):
    total = 0
    for sym in market.symbols:
        e = market._engines[sym]
        lq = market.liquidations(sym)
        tick = market.symbols[sym].tick_size
        i = lq["time"] // MIN - e.k0
        lo, hi = e.tape["mlow"][i], e.tape["mhigh"][i]
        longs = lq["side"] == "SELL"
        assert np.all(lo[longs] <= lq["liq_price"][longs] + tick)
        assert np.all(hi[~longs] >= lq["liq_price"][~longs] - tick)
        # the order's price is the bankruptcy price: beyond the liquidation price
        assert np.all(lq["price"][longs] <= lq["liq_price"][longs] + tick)
        assert np.all(lq["price"][~longs] >= lq["liq_price"][~longs] - tick)
        assert np.all(lq["time"] % 1000 == 999) and np.all(np.diff(lq["time"]) >= 0)
        total += lq["time"].size
        # nothing older than a minute is still open beyond its liquidation price
        pos, k = market.positions(sym), e.snap[0]
        j = k - 1 - e.k0
        older = pos["opened"] < k - 1
        lg = pos["side"] > 0
        assert np.all(pos["liq"][lg & older] < e.tape["mlow"][j] + tick)
        assert np.all(pos["liq"][~lg & older] > e.tape["mhigh"][j] - tick)
    assert total > 0


def _ladder(eng, n=300, usd=4e5):
    """Longs with liquidation prices every 0.05 % below the price, down to −15 %."""
    P = eng.price
    lev = np.arange(n) * 0.0005 + 0.002
    target = P * (1 - lev)
    # 1/L so that the first-bracket long liquidation price lands at the target
    L = 1.0 / (1.0 - target * (1 - 0.004) / P)
    d = {"lev": L, "tp": np.full(n, np.nan), "sl": np.full(n, np.nan), "ext": np.zeros(n, np.int64),
         "csec": np.zeros(n, np.int64), "kind": np.zeros(n, np.int8)}
    units = np.full(n, int(usd / 200 / P / eng.step))  # small positions: first bracket
    units = np.maximum(units, 1)
    eng.br_max = np.full_like(eng.br_max, 1e9)  # allow the extreme leverage of the ladder
    eng._open(np.ones(n, np.int8), units, np.full(n, P), d, np.full(n, eng.k + 10_000), np.full(n, eng.k))
    eng.longs += int(units.sum())


def test_forced_closes_move_price_so_cascades_emerge(monkeypatch):
    m = Market(symbols=("BTCUSDT",), now_ms=NOW, history_days=0.05, seed=2)
    base = m._engines["BTCUSDT"]
    for _ in range(120):  # copies of the same ladder make it dense
        _ladder(base)
    base.xlog -= 0.004  # the index drops 0.4 %: the first rungs are crossed at once
    runs = {}
    for impact in (0.0, eng_mod.IMPACT_1PCT):
        e = copy.deepcopy(base)
        monkeypatch.setattr(eng_mod, "IMPACT_1PCT", impact)
        e.run_to(e.k + 1)
        i = e.n - 1
        runs[impact] = (e.tape["low"][i], e.tape["liq_l"][i], e.tape["close"][i])
    no_impact, with_impact = runs[0.0], runs[eng_mod.IMPACT_1PCT]
    assert no_impact[1] > 0  # the crossing alone liquidates some
    assert with_impact[1] > 1.5 * no_impact[1]  # their market orders liquidate more
    assert with_impact[0] < no_impact[0] * (1 - 0.001)  # and push price further down


# -- the traders are not LQ-1 --------------------------------------------------------------------

def test_leverage_mix_differs_from_lq1():
    pool = traders.draw_pool(1, "BTCUSDT", 0, 0, 6000.0)
    lev = pool["lev"]
    assert lev.min() >= 2 and lev.max() <= 125
    assert np.unique(lev).size > 40  # continuous, not five tiers
    assert 0.6 < np.mean((lev >= 3) & (lev <= 20))
    assert 0.01 < np.mean(lev >= 50) < 0.15
    # binned to LQ-1's nearest tiers, the mix is far from its weights
    tiers = np.array(DEFAULT_LEVERAGES)
    nearest = np.abs(np.log(lev)[:, None] - np.log(tiers)[None, :]).argmin(1)
    mix = np.bincount(nearest, minlength=tiers.size) / lev.size
    assert 0.5 * np.abs(mix - np.array(DEFAULT_WEIGHTS)).sum() > 0.2
    # sides react to the market: trend followers buy strength, mean reverters sell it
    kinds = np.array([traders.TREND, traders.MEANREV])
    up = traders.side_prob(kinds, 1.0, 1.0, 0.0)
    assert up[0] > 0.75 and up[1] < 0.25


def test_positions_use_the_bracket_of_their_own_notional(market):
    e = market._engines["ETHUSDT"]
    p, n = e.pos, e.np
    notional = p["units"][:n] * e.step * p["entry"][:n]
    side = np.where(p["side"][:n] > 0, "long", "short")
    want = liquidation_price(p["entry"][:n], p["lev"][:n], side, notional=notional, symbol="ETHUSDT")
    assert np.allclose(p["liq"][:n], want, rtol=1e-12)
    assert (notional > 250_000).any()  # some positions are beyond the first bracket


# -- query semantics -----------------------------------------------------------------------------

def test_klines_limit_start_end_semantics(market):
    sym, iv = "BTCUSDT", 5 * MIN
    last = market.klines(sym, iv, limit=10)
    assert len(last) == 10 and [r[0] for r in last] == sorted(r[0] for r in last)
    assert last[-1][0] <= NOW < last[-1][6] + 1  # the forming bar
    start = last[0][0] + 1  # mid-bar: the first bar opens at the next boundary
    fwd = market.klines(sym, iv, start_ms=start, limit=3)
    assert [r[0] for r in fwd] == [last[1][0], last[2][0], last[3][0]]
    upto = market.klines(sym, iv, end_ms=last[5][0] + 1, limit=2)
    assert [r[0] for r in upto] == [last[4][0], last[5][0]]
    both = market.klines(sym, iv, start_ms=last[2][0], end_ms=last[4][0], limit=500)
    assert [r[0] for r in both] == [last[2][0], last[3][0], last[4][0]]
    assert market.klines(sym, iv, start_ms=NOW + iv) == []
    e = market._engines[sym]
    early = market.klines(sym, iv, start_ms=0, limit=2)
    assert early[0][0] <= e.k0 * MIN < early[0][0] + iv  # nothing before the history
    assert market.klines(sym, iv, end_ms=e.k0 * MIN - iv) == []
    with pytest.raises(ValueError):
        market.klines(sym, 90_000)
    with pytest.raises(ValueError):
        market.klines("FOOUSDT", iv)


def test_open_interest_hist_periods_and_depth(market, monkeypatch):
    sym = "ETHUSDT"
    five = dict((t, b) for t, b, _ in market.open_interest_hist(sym, 5 * MIN, limit=100))
    hour = market.open_interest_hist(sym, 60 * MIN, limit=5)
    assert all(t % (60 * MIN) == 0 and five[t] == b for t, b, _ in hour)
    assert hour[-1][0] == NOW // (60 * MIN) * 60 * MIN
    fwd = market.open_interest_hist(sym, 15 * MIN, start_ms=NOW - 3 * 3_600_000 + 1, limit=4)
    assert [t for t, _, _ in fwd] == [NOW - NOW % (15 * MIN) - 3 * 3_600_000 + 15 * MIN * (i + 1) for i in range(4)]
    base, t = market.open_interest(sym)
    assert t == NOW and base > 0
    monkeypatch.setattr(market_mod, "OI_HIST_DEPTH_MS", 2 * 3_600_000)
    rows = market.open_interest_hist(sym, 5 * MIN, limit=500)
    assert rows[0][0] > NOW - 2 * 3_600_000 and len(rows) == 24
    with pytest.raises(ValueError):
        market.open_interest_hist(sym, 60_000)


def test_newly_listed_symbol():
    spec = SymbolSpec("FRESHUSDT", "FRESH", 0.0001, 1.0, 4, 0, onboard_ms=NOW - 90 * MIN,
                      price=1.5, oi_usd=2e6, median_usd=500.0)
    m = Market(symbols=("BTCUSDT", spec), now_ms=NOW, history_days=0.2, seed=1)
    m.set_now(NOW)
    rows = m.klines("FRESHUSDT", MIN, limit=1500)
    assert rows[0][0] == spec.onboard_ms // MIN * MIN and len(rows) == 91
    oi = m.open_interest_hist("FRESHUSDT", 5 * MIN, limit=500)
    assert oi[0][0] >= spec.onboard_ms // MIN * MIN and oi[0][1] < oi[-1][1]  # open interest builds up
    assert len(m.klines("BTCUSDT", MIN, limit=1500)) > 91
    # the catalogue's recent listing is three days before today
    cat = Market(symbols=("NEWUSDT",), now_ms=NOW, history_days=0.05, seed=1)
    assert cat.symbols["NEWUSDT"].onboard_ms == NOW // 86_400_000 * 86_400_000 - 3 * 86_400_000
    with pytest.raises(ValueError, match="BOGUS"):
        Market(symbols=("BOGUS",), now_ms=NOW, history_days=0.05)


def test_truth_map(market):
    sym = "BTCUSDT"
    tm = market.truth_map(sym)
    json.dumps(tm)
    pos = market.positions(sym)
    lg = pos["side"] > 0
    assert sum(tm["long_usd"]) == pytest.approx((pos["qty"] * pos["liq"])[lg].sum())
    assert sum(tm["short_usd"]) == pytest.approx((pos["qty"] * pos["liq"])[~lg].sum())
    assert tm["bin_width"] == choose_bin_width(tm["price"], 0.1)
    w = tm["bin_width"]
    assert np.allclose(np.diff(tm["prices"]), w)
    # longs liquidate below the price, shorts above
    p = np.array(tm["prices"])
    assert np.array(tm["long_usd"])[p > tm["price"] + w].sum() == 0
    assert np.array(tm["short_usd"])[p < tm["price"] - w].sum() == 0
    coarse = market.truth_map(sym, bin_width=500)
    assert sum(coarse["long_usd"]) == pytest.approx(sum(tm["long_usd"]))


def test_ticker_and_mark(market):
    t = market.ticker_24h("SOLUSDT")
    assert t["lowPrice"] <= t["lastPrice"] <= t["highPrice"]
    assert t["count"] == t["lastId"] - t["firstId"] + 1 and t["volume"] > 0
    mark, index, ts = market.mark_price("SOLUSDT")
    assert ts <= NOW and abs(mark / t["lastPrice"] - 1) < 0.005 and abs(index / mark - 1) < 0.005


# -- live events ---------------------------------------------------------------------------------

def test_live_events_are_ordered_and_match_klines(live):
    m, events = live
    times = [e[2] for e in events]
    assert times == sorted(times) and times[0] > NOW and times[-1] <= NOW + 210_000
    kinds = {e[0] for e in events}
    assert {"trade", "mark", "kline"} <= kinds
    for sym, spec in m.symbols.items():
        ev = [e for e in events if e[1] == sym]
        closed = [e[3] for e in ev if e[0] == "kline" and e[4]]
        assert len(closed) == 4  # the first minute was already half over at NOW
        assert m.klines(sym, MIN, start_ms=closed[0][0], limit=4) == closed
        closed = closed[1:]
        for row in closed:
            tr = [e for e in ev if e[0] == "trade" and row[0] <= e[2] < row[0] + MIN]
            p = [e[4] for e in tr]
            assert (p[0], max(p), min(p), p[-1]) == tuple(row[1:5])
            units = sum(round(e[5] / spec.step_size) for e in tr)
            assert units * spec.step_size == pytest.approx(row[5], rel=1e-12) and len(tr) == row[8]
            tb = sum(round(e[5] / spec.step_size) for e in tr if e[6])
            assert tb * spec.step_size == pytest.approx(row[9], rel=1e-12)
            gaps = np.diff([e[2] for e in tr])
            assert 60_000 / len(tr) < 600  # a trade every few hundred ms on average
            assert gaps.min() >= 0
        ids = [e[3] for e in ev if e[0] == "trade"]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        marks = [e for e in ev if e[0] == "mark"]
        assert len(marks) == 210 and all(np.diff([e[2] for e in marks]) == 1000)
        mk = m.mark_klines(sym, MIN, start_ms=closed[0][0], limit=3)
        for row in mk:
            vals = [e[3] for e in marks if row[0] <= e[2] < row[0] + MIN]
            assert (vals[0], max(vals), min(vals), vals[-1]) == tuple(row[1:5])
        # forming kline updates grow monotonically toward the closed row
        upd = [e[3] for e in ev if e[0] == "kline" and e[3][0] == closed[0][0]]
        assert all(a[5] <= b[5] and a[8] <= b[8] for a, b in zip(upd, upd[1:]))
        lq = m.liquidations(sym, start_ms=NOW + 1, end_ms=NOW + 210_000)
        lev = [e for e in ev if e[0] == "liquidation"]
        assert [e[2] for e in lev] == lq["time"].tolist()
        assert [e[3] for e in lev] == lq["side"].tolist()


def test_advance_is_idempotent_and_the_forming_bar_matches(live):
    m, events = live
    assert m.advance() == []
    for sym in m.symbols:
        rows = m.klines(sym, MIN, limit=2)
        assert rows[-1][0] <= m.now_ms() < rows[-1][6]
        for row in rows:  # the last closed bar and the forming one: exactly the trades sent
            trades = [e for e in events if e[0] == "trade" and e[1] == sym and row[0] <= e[2] <= row[6]]
            assert row[8] == len(trades)
            if trades:
                assert row[4] == trades[-1][4] and row[1] == trades[0][4]


# -- the clock -----------------------------------------------------------------------------------

def test_manual_and_scaled_clock():
    m = Market(symbols=("SOLUSDT",), now_ms=NOW, history_days=0.05, time_scale=600.0, seed=4)
    t0 = m.now_ms()
    time.sleep(0.05)
    t1 = m.now_ms()
    assert t1 - t0 >= 0.05 * 600 * 1000 * 0.9  # at least 27 simulated seconds
    m.set_now(NOW + 3 * MIN)
    assert m.now_ms() == NOW + 3 * MIN
    ev = m.advance()
    assert ev and ev[-1][2] <= NOW + 3 * MIN
    assert m.klines("SOLUSDT", MIN, limit=1)[0][0] == (NOW + 3 * MIN) // MIN * MIN
    m.set_now(None)  # runs again from there
    assert m.now_ms() >= NOW + 3 * MIN
