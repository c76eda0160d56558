"""The Bybit feed: its limiter, then the real clients against the simulated Bybit venue over
real sockets on 127.0.0.1 (no mocks of our own code).

The market's clock runs 300× faster than the wall (a 5-minute step closes every second), so
reconnects, cool-offs and closed steps happen within seconds. Tests wait for conditions with
generous timeouts and never sleep-and-hope.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from liqtui.feeds.bybit import BybitLive, BybitRest, RequestLimiter
from liqtui.feeds.events import Bar, FeedState, Liquidation, MarkPrice, OpenInterest, Trade
from liqtui.feeds.rest import BannedError, UnknownSymbolError
from liqtui.sim import market as sim_market
from liqtui.sim.server import SimExchange
from liqtui.sim.venues import SHAPES

from helpers import (DAY, MIN, SCALE, STEP, Feed, Scripted,
                     a_garbage_socket_goes_stale_and_is_replaced,
                     a_silent_socket_goes_stale_and_is_replaced,
                     assert_equals_an_uninterrupted_run, closed_end,
                     damaged_frames_are_counted_and_survived, fast, retries_5xx_and_times_out,
                     steps_through_an_outage, until)

K, VOL, OI_SHARE = SHAPES["bybit"].k, SHAPES["bybit"].volume_share, SHAPES["bybit"].oi_share


# ============================================================================ unit


async def test_request_limiter_keeps_its_buffer_and_obeys_blocks():
    lim = RequestLimiter(limit=10, window_s=0.3, buffer=2)
    for _ in range(8):
        await lim.acquire(max_wait=0)
    with pytest.raises(BannedError, match="rate limited"):
        await lim.acquire(max_wait=0)           # the 9th would eat into the buffer
    t0 = time.monotonic()
    await lim.acquire()                          # waits for the window to slide
    assert 0.2 <= time.monotonic() - t0 < 2
    until = lim.ban(0.3)
    assert lim.banned and lim.blocked and until > time.time() * 1000
    with pytest.raises(BannedError, match="cool-off") as e:
        await lim.acquire(max_wait=0)
    assert e.value.until >= until - 5


def test_urls_are_checked():
    with pytest.raises(ValueError, match="without a path"):
        BybitLive("wss://stream.bybit.com/v5/public/linear", ["BTCUSDT"])
    with pytest.raises(ValueError, match="Bybit REST URL"):
        BybitRest("api.bybit.com")


# ============================================================================ the simulator


def make_market(symbols=("BTCUSDT", "ETHUSDT"), days=2.0):
    return sim_market.Market(symbols, seed=7, history_days=days, time_scale=SCALE)


@pytest.fixture(scope="module")
def market():
    return make_market()


@pytest.fixture
async def sim(exchange, market):
    return await exchange(market, venues=["bybit"])


def tick(x, t):   # what the venue's rounding to the tick does to a price
    return round(round(x / t) * t, 8)


# ============================================================================ REST


async def test_backfill_of_a_day_equals_the_venues_own_series(sim, market):
    end = closed_end(market)
    start = end - DAY
    spec = market.symbols["BTCUSDT"]
    async with BybitRest(sim.rest_url) as rest:
        bf = await rest.backfill("BTCUSDT", start, end)
    kl = market.klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    mk = market.mark_klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    oi = market.open_interest_hist("BTCUSDT", STEP, start_ms=start + STEP, end_ms=end, limit=500)
    assert len(kl) == len(bf["time"]) == DAY // STEP                # no hole, no duplicate
    assert bf.start == start and bf.end == end and bf.warnings == []
    assert bf["time"].tolist() == [r[0] for r in kl]                 # oldest first
    for j, key in ((1, "open"), (2, "high"), (3, "low"), (4, "close")):
        np.testing.assert_allclose(bf[key], [tick(r[j] * K, spec.tick_size) for r in kl],
                                   rtol=0, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(bf["volume"], [round(r[5] * VOL, 3) for r in kl], atol=1e-9)
    np.testing.assert_allclose(bf["quote_volume"], [r[7] * VOL * K for r in kl], atol=1e-3)
    assert np.isnan(bf["taker_buy_quote_volume"]).all()             # Bybit candles have none
    np.testing.assert_allclose(bf["mark_high"], [tick(r[2] * K, spec.tick_size) for r in mk],
                               atol=1e-6)
    # open interest at each bar's close: the single side, the venue's share
    assert [t + STEP for t in bf["time"].tolist()] == [r[0] for r in oi]
    np.testing.assert_allclose(bf["open_interest"], [round(r[1] * OI_SHARE, 3) for r in oi],
                               atol=1e-9)


async def test_paging_newest_first_lists_across_page_limits(sim, market):
    """1-minute bars over 20 h: klines and mark klines take 2 pages of ≤ 1000 each, open
    interest (240 five-minute rows) 2 pages of ≤ 200 chained by the cursor; exactly 1000
    bars fit one page."""
    end = closed_end(market)
    async with BybitRest(sim.rest_url) as rest:
        bf = await rest.backfill("ETHUSDT", end - 20 * 3_600_000, end, interval_ms=MIN)
        t = bf["time"]
        assert len(t) == 20 * 60 and np.all(np.diff(t) == MIN)
        assert np.isfinite(bf["mark_high"]).all() and np.isfinite(bf["open_interest"]).all()
        assert rest.counters["requests"] == 1 + 1 + 2 + 2 + 2        # instruments, time, pages
        n0 = rest.counters["requests"]
        one = await rest.backfill("ETHUSDT", end - 1000 * MIN, end, interval_ms=MIN)
        assert len(one["time"]) == 1000 and rest.counters["requests"] - n0 == 1 + 1 + 1 + 2
    np.testing.assert_array_equal(bf["close"][-1000:], one["close"])
    np.testing.assert_array_equal(bf["open_interest"][-1000:], one["open_interest"])


async def test_unknown_symbol_is_refused_by_name(sim):
    async with BybitRest(sim.rest_url) as rest:
        with pytest.raises(UnknownSymbolError, match="FOOUSDT"):
            await rest.backfill("FOOUSDT", lookback_ms=DAY)
        with pytest.raises(UnknownSymbolError, match="BTCUSDC"):   # suggests BTCUSDT
            await rest.symbol("BTCUSDC")
        # the venue's own retCode 10001 (HTTP 200) is mapped the same way
        with pytest.raises(UnknownSymbolError, match="DOGEUSDT"):
            await rest.open_interest("DOGEUSDT")
        assert (await rest.symbol("btcusdt")).tick_size == 0.1
        oi = await rest.open_interest("BTCUSDT")
        assert isinstance(oi, OpenInterest) and oi.base > 0


async def test_403_is_banned_until_then_recovers(sim, market):
    end = closed_end(market)
    async with BybitRest(sim.rest_url) as rest:
        ref = await rest.backfill("BTCUSDT", end - DAY // 4, end)
    sim.faults.update(retry_after_s=1, http_418_burst=1)   # Bybit's answer: HTTP 403
    statuses = []
    async with BybitRest(sim.rest_url, on_status=statuses.append) as rest:
        t0 = time.time() * 1000
        bf = await rest.backfill("BTCUSDT", end - DAY // 4, end)
        assert rest.counters["http_403"] == 1
    banned = [s for s in statuses if s.state is FeedState.BANNED]
    assert len(banned) == 1 and t0 + 500 <= banned[0].until <= t0 + 2500
    assert "403" in banned[0].reason and "paused until" in banned[0].reason
    after = statuses[statuses.index(banned[0]) + 1]
    assert after.state is not FeedState.BANNED and "ban over" in after.reason
    for k in ref:
        np.testing.assert_array_equal(bf[k], ref[k])
    # without Retry-After (the venue sends none) the cool-off is 10 minutes; a caller that
    # will not wait that long gets a clear error instead of a hang
    sim.faults.update(retry_after_s=None, http_418_burst=1)
    async with BybitRest(sim.rest_url, settings=fast(max_rest_wait_s=0.5)) as rest:
        with pytest.raises(BannedError, match="cool-off") as e:
            await rest.server_time()
        assert e.value.until > time.time() * 1000 + 590_000


async def test_retcode_10006_backs_off_and_5xx_are_retried(sim, market):
    end = closed_end(market)
    async with BybitRest(sim.rest_url) as rest:
        ref = await rest.backfill("ETHUSDT", end - DAY // 2, end)
    sim.faults.update(http_429_burst=2)                    # Bybit's answer: retCode 10006
    async with BybitRest(sim.rest_url) as rest:
        bf = await rest.backfill("ETHUSDT", end - DAY // 2, end)
        assert rest.counters["rate_limited"] == 2 and rest.limiter.waited_s > 0
    for k in ref:
        np.testing.assert_array_equal(bf[k], ref[k])
    await retries_5xx_and_times_out(sim, BybitRest, fast, ref, end, BybitRest.server_time)


async def test_open_interest_older_than_the_venue_keeps_is_nan_with_a_warning(sim, market,
                                                                             monkeypatch):
    # a venue that keeps only the last day of open interest (the sim's depth, lowered)
    monkeypatch.setattr(sim_market, "OI_HIST_DEPTH_MS", DAY)
    end = closed_end(market)
    async with BybitRest(sim.rest_url) as rest:
        bf = await rest.backfill("BTCUSDT", end - 36 * 3_600_000, end)
    oi = bf["open_interest"]
    known = np.flatnonzero(np.isfinite(oi))
    # ~12 h of the 36 are older than a day (the clock runs on while the test asks): NaN there,
    # known from then on, without holes
    assert len(oi) == 36 * 12 and 12 * 12 - 24 <= known[0] <= 12 * 12 + 24
    assert known.tolist() == list(range(known[0], len(oi)))
    assert any(w.startswith("Bybit has no open-interest history for BTCUSDT before")
               for w in bf.warnings)


# ============================================================================ live


def liquidating(market) -> Scripted:
    """A real Market plus scripted liquidations: at each simulated second, BUY 1.0 and
    SELL 2.0 orders per symbol (a short and a long wiped), limit price 100."""
    return Scripted(market, lambda second: [
        e for sym in market.symbols
        for e in (("liquidation", sym, second + 100, "BUY", 1.0, 100.0, 101.0),
                  ("liquidation", sym, second + 200, "SELL", 2.0, 100.0, 99.0))])


def feed(sx, symbols=("BTCUSDT",), rest=True, ping_s=0.5, **settings) -> Feed:
    """A ``BybitLive`` running in a task, with everything it reported."""
    return Feed(BybitLive, sx, symbols, rest=rest, settings=fast(**settings), ping_s=ping_s)


async def test_live_trades_marks_oi_and_liquidations_long_short_right(market):
    async with SimExchange(liquidating(market), venues=["bybit"]) as sx, \
            feed(sx, ("BTCUSDT", "ETHUSDT")) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        for sym in ("BTCUSDT", "ETHUSDT"):
            await until(lambda: len(f.of(Trade, sym)) >= 20 and len(f.of(MarkPrice, sym)) >= 2
                        and f.of(Bar, sym) and f.of(OpenInterest, sym)
                        and len(f.of(Liquidation, sym)) >= 4, what=f"{sym} events")
        c = dict(f.live.counters)
        proto = sx.protocol("bybit")
        subscribed = set(proto._index)
    assert f.states()[:2] == [FeedState.CONNECTING, FeedState.LIVE]
    assert c["malformed"] == c["unknown"] == c["reconnects"] == c["sub_errors"] == 0
    assert c["replies"] >= 1 and c["duplicates"] == 0
    assert subscribed == {f"{t}.{s}" for s in ("BTCUSDT", "ETHUSDT")
                          for t in ("publicTrade", "kline.1", "tickers", "allLiquidation")}
    ids = [t.trade_id for t in f.of(Trade)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, str) for i in ids)
    # a SELL order closes a long: Bybit says "Buy" (the position side) and we say "long"
    liqs = {(e.side, e.qty) for e in f.of(Liquidation) if e.time % 1000 in (100, 200)}
    assert liqs == {("short", round(1.0 * VOL, 3)), ("long", round(2.0 * VOL, 3))}
    assert all(e.price == pytest.approx(100.0 * K, abs=0.1) for e in f.of(Liquidation)
               if e.time % 1000 in (100, 200))     # the bankruptcy price, kept as reported
    oi = f.of(OpenInterest, "BTCUSDT")[-1]
    base, _ = market.open_interest("BTCUSDT")
    assert oi.base == pytest.approx(base * OI_SHARE, rel=0.05)  # one side, not both
    bar = f.live.bars.forming("BTCUSDT")
    assert bar is not None and bar.low <= bar.close <= bar.high
    # the taker share comes from the trades (candles carry none)
    assert 0 < bar.taker_buy_quote_volume < bar.quote_volume


async def test_dropped_connections_reconnect_resubscribe_and_report_the_gap(sim):
    proto = sim.protocol("bybit")
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and len(f.of(Trade)) > 10, what="LIVE")
        acks = f.live.counters["replies"]
        sim.faults.drop_every_s = 0.2
        await until(lambda: FeedState.RECONNECTING in f.states(), what="RECONNECTING")
        sim.faults.drop_every_s = None
        await until(lambda: f.states()[-1] is FeedState.LIVE and f.gaps, what="LIVE and a gap")
        assert f.live.counters["reconnects"] >= 1 and f.live.counters["replies"] > acks
        assert "publicTrade.BTCUSDT" in proto._index and "tickers.BTCUSDT" in proto._index
        n = len(f.of(Trade))
        await until(lambda: len(f.of(Trade)) > n + 10, what="trades after the reconnect")
        gap = f.gaps[0]
        assert gap.symbols == ("BTCUSDT",) and gap.start_ms < gap.end_ms
    i = f.states().index(FeedState.RECONNECTING)
    assert FeedState.LIVE in f.states()[i:]


async def test_a_silent_socket_is_stale_and_replaced(sim):
    await a_silent_socket_goes_stale_and_is_replaced(sim, feed)   # pongs and acks still flow


async def test_pings_keep_the_socket_and_without_them_the_venue_hangs_up(sim):
    sim.protocol("bybit").idle_cut_s = 1.0
    async with feed(sim, ("BTCUSDT",), ping_s=0.3) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        t0 = time.monotonic()
        await until(lambda: time.monotonic() - t0 > 2.5, what="a while")
        assert f.live.counters["reconnects"] == 0 and sim.protocol("bybit").counters["idle_cuts"] == 0
    async with feed(sim, ("BTCUSDT",), ping_s=60) as f:
        await until(lambda: f.live.counters["reconnects"] >= 1, what="the idle cut")
        await until(lambda: f.states()[-1] is FeedState.LIVE, what="LIVE again")
    assert sim.protocol("bybit").counters["idle_cuts"] >= 1


async def test_a_socket_sending_only_garbage_goes_stale_and_is_replaced(sim):
    await a_garbage_socket_goes_stale_and_is_replaced(sim, feed)


async def test_malformed_truncated_and_extra_fields_are_counted_and_survived(sim):
    for t in await damaged_frames_are_counted_and_survived(sim, feed):
        assert t.price > 0 and t.qty >= 0 and t.symbol == "BTCUSDT"


async def test_a_rest_403_shows_banned_until_and_recovers(sim):
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and f.steps, what="LIVE with steps")
        sim.faults.update(retry_after_s=1, http_418_burst=1)
        await until(lambda: f.state is FeedState.BANNED, what="BANNED")
        banned = f.statuses[-1]
        assert banned.until is not None and banned.until > banned.time
        await until(lambda: f.state is FeedState.LIVE, what="LIVE after the cool-off")
        n = len(f.steps)
        await until(lambda: len(f.steps) > n, what="steps again")
        assert time.time() * 1000 >= banned.until - 100


async def test_a_refused_subscription_is_an_error_naming_the_topic(sim):
    # no REST to check symbols first: the venue itself refuses the unknown one
    async with feed(sim, ("FOOUSDT", "BTCUSDT"), rest=False) as f:
        await until(lambda: f.live.counters["sub_errors"] >= 1, what="the refusal")
        await until(lambda: f.of(Trade, "BTCUSDT"), what="the known symbol's trades")
    err = [s for s in f.statuses if s.state is FeedState.ERROR]
    assert err and "publicTrade.FOOUSDT" in err[0].reason and "handler not found" in err[0].reason


async def test_unknown_symbol_with_rest_is_an_error_naming_it(sim):
    async with feed(sim, ("FOOUSDT", "BTCUSDT")) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE for the known symbol")
    err = [s for s in f.statuses if s.state is FeedState.ERROR]
    assert err and "FOOUSDT" in err[0].reason and f.live.symbols == ["BTCUSDT"]
    assert f.live.counters["sub_errors"] == 0     # never asked the venue for it


async def test_rotation_resubscribes_and_drops_the_overlaps_duplicates(sim):
    async with feed(sim, ("BTCUSDT", "ETHUSDT"), max_connection_age_s=0.8,
                    rotation_overlap_s=0.3) as f:
        await until(lambda: f.live.counters["rotations"] >= 2 and f.live.counters["duplicates"] > 0,
                    what="two rotations with an overlap")
        n = len(f.of(Trade))
        await until(lambda: len(f.of(Trade)) > n + 100, what="trades after the rotations")
    assert FeedState.RECONNECTING not in f.states() and f.gaps == []
    assert f.live.counters["sub_errors"] == 0
    for sym in ("BTCUSDT", "ETHUSDT"):
        ids = [t.trade_id for t in f.of(Trade, sym)]
        assert len(ids) == len(set(ids))          # no trade delivered twice


async def test_after_a_disconnect_the_steps_equal_an_uninterrupted_run(sim, market):
    """Backfill, then closed steps over REST as they close, with connections dropped and
    silent for three steps: the steps received, joined to the initial backfill, equal one
    uninterrupted backfill of the whole span, and so does the model's heatmap."""
    got, f, live_minutes = await steps_through_an_outage(sim, market, BybitRest, feed)
    assert f.gaps[0].end_ms - f.gaps[0].start_ms >= 2 * STEP
    hm = await assert_equals_an_uninterrupted_run(sim, BybitRest, got, live_minutes)
    assert hm.levels(10)                                  # taker share 0.5 (NaN in candles)
