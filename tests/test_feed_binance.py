"""The Binance feed: unit tests of its parts, then the real clients against the simulated
exchange over real sockets on 127.0.0.1 (no mocks of our own code).

The market's clock runs 300× faster than the wall (a 5-minute step closes every second), so
reconnects, bans and closed steps happen within seconds. Tests wait for conditions with
generous timeouts and never sleep-and-hope.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest

from liqtui.feeds.backoff import Backoff
from liqtui.feeds.bars import BarBuilder
from liqtui.feeds.binance import (
    BannedError,
    BinanceLive,
    BinanceRest,
    Gap,
    RestError,
    UnknownSymbolError,
    check_base_url,
    kline_weight,
)
from liqtui.feeds.events import Bar, FeedState, Liquidation, MarkPrice, OpenInterest, Trade
from liqtui.feeds.ratelimit import Blocked, WeightLimiter
from liqtui.feeds.settings import FeedSettings

from helpers import (DAY, MIN, SCALE, STEP, Feed, a_garbage_socket_goes_stale_and_is_replaced,
                     a_silent_socket_goes_stale_and_is_replaced,
                     assert_equals_an_uninterrupted_run, closed_end,
                     damaged_frames_are_counted_and_survived, liquidating_at_the_mark,
                     retries_5xx_and_times_out, Scripted, steps_through_an_outage, until)
from helpers import fast as fast_timers


# ============================================================================ unit: parts


def test_backoff_is_capped_and_jittered_and_resets():
    b = Backoff(1.0, 8.0)
    delays = [b.next() for _ in range(12)]
    for n, d in enumerate(delays):
        nominal = min(8.0, 2.0 ** n)
        assert nominal / 2 <= d <= nominal
    assert max(delays) <= 8.0
    b.reset()
    assert b.next() <= 1.0
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_settings_validate_every_timer():
    s = FeedSettings()
    assert s.max_connection_age_s < 24 * 3600 and s.oi_history_ms < 30 * DAY
    for bad in ({"stale_timeout_s": 0}, {"oi_poll_s": -1}, {"backoff_cap_s": 0.5},
                {"rest_timeout_s": float("nan")}, {"max_streams_per_connection": 2000},
                {"weight_buffer": 5000}, {"backoff_base_s": True}):
        with pytest.raises(ValueError):
            FeedSettings(**bad)


def test_base_urls_are_scheme_host_port():
    assert check_base_url("https://fapi.binance.com/", ("http", "https"), "x") == \
        "https://fapi.binance.com"
    assert check_base_url("ws://127.0.0.1:9000", ("ws", "wss"), "x") == "ws://127.0.0.1:9000"
    for bad in ("fapi.binance.com", "https://fapi.binance.com/fapi/v1", "ftp://x",
                "wss://fstream.binance.com/market", "http://h:99999"):
        with pytest.raises(ValueError, match="expected|port"):
            check_base_url(bad, ("http", "https", "ws", "wss"), "Binance URL")
    with pytest.raises(ValueError, match="without a path"):
        BinanceLive("wss://fstream.binance.com/ws", ["BTCUSDT"])


def test_kline_weights_follow_the_venue_table():
    assert [kline_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == \
        [1, 1, 2, 2, 5, 5, 10, 10]


async def test_limiter_keeps_its_buffer_and_obeys_blocks():
    lim = WeightLimiter(limit=100, buffer=20)
    lim.observe({"X-MBX-USED-WEIGHT-1M": "75"})
    await lim.acquire(5, max_wait=0)            # 80 ≤ 100 − 20: allowed
    with pytest.raises(Blocked):                # 81 would eat into the buffer: wait (next minute)
        await lim.acquire(1, max_wait=0)
    lim.observe({"X-MBX-USED-WEIGHT-1M": "3"})  # the server's count is the truth
    await lim.acquire(10, max_wait=0)
    lim.throttle(0.2)                           # 429
    assert lim.blocked and not lim.banned
    with pytest.raises(Blocked) as e:
        await lim.acquire(1, max_wait=0.05)
    assert not e.value.banned
    t0 = time.monotonic()
    await lim.acquire(1)
    assert time.monotonic() - t0 >= 0.15
    until = lim.ban(0.2)                        # 418
    assert lim.banned and until > time.time() * 1000
    with pytest.raises(Blocked) as e:
        await lim.acquire(1, max_wait=0)
    assert e.value.banned and "418" in str(e.value)


async def test_limiter_counts_open_interest_history_requests():
    lim = WeightLimiter(oi_hist_limit=5, oi_hist_buffer=1)
    for _ in range(4):
        await lim.acquire(0, oi_hist=True, max_wait=0)
    with pytest.raises(Blocked):
        await lim.acquire(0, oi_hist=True, max_wait=1)  # the window is 5 minutes
    await lim.acquire(1, max_wait=0)  # other endpoints are not held back


def test_bar_builder_from_trades_and_closed_klines():
    b = BarBuilder(STEP)
    t0 = 1_700_000_100_000 // STEP * STEP
    b.trade("binance", "X", t0 + 1_000, 100.0, 1.0, True)
    b.trade("binance", "X", t0 + 2_000, 103.0, 2.0, False)
    b.trade("binance", "X", t0 + MIN + 5, 99.0, 1.0, True)
    bar = b.forming("X")
    assert (bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume) == \
        (t0, 100.0, 103.0, 99.0, 99.0, 4.0)
    assert bar.quote_volume == pytest.approx(100 + 206 + 99)
    assert bar.taker_buy_quote_volume == pytest.approx(199)
    # the venue's closed kline replaces the trade-built minute (trades may have been missed)
    b.kline(Bar("binance", "X", t0, MIN, 100.0, 105.0, 98.0, 101.0, 10.0, 1000.0, 400.0, True))
    bar = b.forming("X")
    assert (bar.high, bar.low, bar.close, bar.volume) == (105.0, 98.0, 99.0, 11.0)
    b.trade("binance", "X", t0 + STEP + 1, 120.0, 1.0, True)   # next step: a new bar
    assert b.forming("X").time == t0 + STEP and b.forming("X").open == 120.0
    b.trade("binance", "X", t0 + 3, 1.0, 1.0, True)            # late: ignored, counted
    assert b.late == 1 and b.minute("X").close == 120.0


def test_bar_builder_restarts_on_data_far_behind_only_when_asked():
    """With ``reset_ms`` (the live feed's), data that far behind the current minute starts
    the symbol again (its current minute came from a bad frame); without, it is late."""
    t0 = 1_700_000_100_000 // STEP * STEP
    for reset, want in ((3_600_000, t0), (None, 4_102_444_800_000)):
        b = BarBuilder(STEP, reset_ms=reset)
        b.trade("binance", "X", 4_102_444_800_000, 1.0, 1.0, True)   # 2100-01-01
        b.trade("binance", "X", t0 + 1_000, 100.0, 1.0, True)
        b.trade("binance", "X", t0 + 1_000 - 2 * MIN, 100.0, 1.0, True)  # late, not a restart
        assert b.forming("X").time == want and b.late == (1 if reset else 2)
        assert b.resets == (1 if reset else 0)


def test_bar_builder_keeps_the_trades_taker_share_when_candles_have_none():
    """Bybit and OKX candles carry no taker-buy volume: live, the share comes from trades."""
    b = BarBuilder(STEP)
    t0 = 1_700_000_100_000 // STEP * STEP
    b.trade("bybit", "X", t0 + 1_000, 100.0, 3.0, True)     # 300 bought by takers
    b.trade("bybit", "X", t0 + 2_000, 100.0, 1.0, False)    # 100 sold
    nan = float("nan")
    # the closed candle has more volume than the trades seen, and no taker split
    b.kline(Bar("bybit", "X", t0, MIN, 100.0, 101.0, 99.0, 100.0, 8.0, 800.0, nan, True))
    assert b.forming("X").taker_buy_quote_volume == pytest.approx(600.0)   # 75 % of 800
    # a candle for a minute no trade was seen in: the step's share from the known minutes
    b.kline(Bar("bybit", "X", t0 + MIN, MIN, 100.0, 100.0, 100.0, 100.0, 4.0, 400.0, nan, True))
    bar = b.forming("X")
    assert bar.quote_volume == pytest.approx(1200.0)
    assert bar.taker_buy_quote_volume == pytest.approx(900.0)
    # no trades at all: unknown (the model then takes a 0.5 share)
    b2 = BarBuilder(STEP)
    b2.kline(Bar("okx", "Y", t0, MIN, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, nan, True))
    assert math.isnan(b2.forming("Y").taker_buy_quote_volume)


def test_gap_bar_window():
    g = Gap(("BTCUSDT",), 1_000_000 * STEP + 10, 1_000_002 * STEP + 5)
    assert g.bar_window(STEP) == (1_000_000 * STEP, 1_000_003 * STEP)


# ============================================================================ the simulator

import liqtui.sim.market as sim_market  # noqa: E402
import liqtui.sim.server as sim_server  # noqa: E402


LISTED = 1_569_398_400_000  # BTCUSDT's real onboardDate (2019-09-25)


def make_market(symbols=("BTCUSDT", "ETHUSDT"), days=2.0, specs=None, **kw):
    # every real symbol has an onboardDate; give the catalogue's long-listed ones the real one
    specs = list(specs or ()) + [
        replace(sim_market.CATALOGUE[s], onboard_ms=LISTED) for s in symbols
        if sim_market.CATALOGUE[s].onboard_ms is None
        and sim_market.CATALOGUE[s].listed_days_ago is None
        and s not in {x.symbol for x in specs or ()}]
    return sim_market.Market(symbols, seed=7, history_days=days, time_scale=SCALE,
                             specs=specs, **kw)


@pytest.fixture(scope="module")
def market():
    """One market for the module (building history is the slow part); each test gets its own
    server, so faults and per-IP limits start clean."""
    return make_market()


@pytest.fixture
async def sim(exchange, market):
    return await exchange(market, coinm_share=1.0)


def fast(**kw) -> FeedSettings:
    """The shared fast timers, and open interest polled every 0.25 s (Binance's comes over
    REST, not the stream)."""
    return fast_timers(**({"oi_poll_s": 0.25} | kw))


def _f(x, d):  # what the server's formatting does to a value
    return float(f"{x:.{d}f}")


# ============================================================================ REST


async def test_backfill_equals_the_markets_own_series(sim, market):
    end = closed_end(market)
    start = end - DAY
    spec = market.symbols["BTCUSDT"]
    pp, qp = spec.price_precision, spec.qty_precision
    async with BinanceRest(sim.rest_url) as rest:
        bf = await rest.backfill("BTCUSDT", start, end)
    kl = market.klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    mk = market.mark_klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    oi = market.open_interest_hist("BTCUSDT", STEP, start_ms=start + STEP, end_ms=end, limit=500)
    assert len(kl) == len(bf["time"]) == DAY // STEP
    assert bf.start == start and bf.end == end and bf.warnings == []
    assert bf["time"].tolist() == [r[0] for r in kl]
    for j, key, d in ((1, "open", pp), (2, "high", pp), (3, "low", pp), (4, "close", pp),
                      (5, "volume", qp), (7, "quote_volume", pp + qp),
                      (10, "taker_buy_quote_volume", pp + qp)):
        assert bf[key].tolist() == [_f(r[j], d) for r in kl], key
    assert bf["mark_high"].tolist() == [_f(r[2], 8) for r in mk]
    assert bf["mark_low"].tolist() == [_f(r[3], 8) for r in mk]
    # the row stamped T is the open interest at the close of the bar opening at T − 5m
    assert [t + STEP for t in bf["time"].tolist()] == [r[0] for r in oi]
    assert bf["open_interest"].tolist() == [_f(r[1], 8) for r in oi]


async def test_paging_across_the_page_limits(sim, market):
    """1-minute bars over 46 h: klines and mark klines need 2 pages of ≤ 1500, open interest
    (5-minute rows) 2 pages of ≤ 500; and exactly 1500 bars fit one page."""
    end = closed_end(market)
    async with BinanceRest(sim.rest_url) as rest:
        bf = await rest.backfill("ETHUSDT", end - 46 * 3_600_000, end, interval_ms=MIN)
        t = bf["time"]
        assert len(t) == 46 * 60 and np.all(np.diff(t) == MIN)        # no gap, no duplicate
        assert np.isfinite(bf["mark_high"]).all() and np.isfinite(bf["open_interest"]).all()
        # 1 exchangeInfo + 1 server time + 2 + 2 + 2 pages
        assert rest.counters["requests"] == 8
        n0 = rest.counters["requests"]
        one = await rest.backfill("ETHUSDT", end - 1500 * MIN, end, interval_ms=MIN)
        assert len(one["time"]) == 1500 and rest.counters["requests"] - n0 == 1 + 1 + 1 + 1
        n0 = rest.counters["requests"]
        more = await rest.backfill("ETHUSDT", end - 1501 * MIN, end, interval_ms=MIN)
        assert len(more["time"]) == 1501 and rest.counters["requests"] - n0 == 1 + 2 + 2 + 1
    # the 5-minute series over the same span: open interest at each close, 553 rows = 2 pages
    np.testing.assert_array_equal(more["time"][-1500:], one["time"])
    np.testing.assert_array_equal(more["close"][-1500:], one["close"])


async def test_open_interest_depth_is_clamped_with_a_warning(sim, market):
    async with BinanceRest(sim.rest_url) as rest:
        now = market.now_ms()
        bf = await rest.backfill("BTCUSDT", lookback_ms=31 * DAY)
        assert any("29.9 days" in w for w in bf.warnings)
        assert bf.now - bf.start <= 29.9 * DAY + STEP
        assert np.isfinite(bf["open_interest"]).all()
        # why the clamp matters: the venue refuses an older start outright
        with pytest.raises(RestError) as e:
            await rest._get("/futures/data/openInterestHist", {
                "symbol": "BTCUSDT", "period": "5m", "startTime": now - 31 * DAY, "limit": 10},
                oi_hist=True, weight=0)
        assert e.value.status == 400


async def test_short_history_symbol_backfills_what_exists():
    new = replace(sim_market.CATALOGUE["NEWUSDT"], listed_days_ago=None,
                  onboard_ms=(int(time.time() * 1000) - DAY // 2) // MIN * MIN)
    m = make_market(("NEWUSDT",), days=2.0, specs=[new])
    async with sim_server.SimExchange(m) as sx, BinanceRest(sx.rest_url) as rest:
        bf = await rest.backfill("NEWUSDT", lookback_ms=2 * DAY)
    assert len(bf["time"]) > 0 and bf["time"][0] >= new.onboard_ms // STEP * STEP
    assert bf["time"][0] - new.onboard_ms < STEP
    assert np.all(np.diff(bf["time"]) == STEP)
    assert any("listed" in w for w in bf.warnings)


async def test_unknown_symbol_is_refused_by_name(sim):
    async with BinanceRest(sim.rest_url) as rest:
        with pytest.raises(UnknownSymbolError, match="FOOUSDT") as e:
            await rest.backfill("FOOUSDT", lookback_ms=DAY)
        assert e.value.symbol == "FOOUSDT"
        with pytest.raises(UnknownSymbolError, match="BTCUSD_PERP"):
            await rest.symbol("BTCUSD_PERP")
        # the venue's own -1121 answer is mapped the same way
        with pytest.raises(UnknownSymbolError, match="DOGEUSDT"):
            await rest.open_interest("DOGEUSDT")
        assert (await rest.symbol("btcusdt")).symbol == "BTCUSDT"


async def test_429_waits_retry_after_then_succeeds(sim, market):
    end = closed_end(market)
    async with BinanceRest(sim.rest_url) as rest:
        ref = await rest.backfill("BTCUSDT", end - DAY // 4, end)
    sim.faults.retry_after_s = 1
    sim.faults.http_429_burst = 1
    statuses = []
    async with BinanceRest(sim.rest_url, on_status=statuses.append) as rest:
        t0 = time.monotonic()
        bf = await rest.backfill("BTCUSDT", end - DAY // 4, end)
        assert time.monotonic() - t0 >= 0.95
        assert rest.counters["http_429"] == 1 and rest.counters["http_418"] == 0
    assert all(s.state is not FeedState.BANNED for s in statuses)  # obeyed: no ban followed
    for k in ref:
        np.testing.assert_array_equal(bf[k], ref[k])


async def test_418_reports_banned_until_then_recovers(sim, market):
    end = closed_end(market)
    sim.faults.retry_after_s = 1
    sim.faults.http_418_burst = 1
    statuses = []
    async with BinanceRest(sim.rest_url, on_status=statuses.append) as rest:
        t0 = time.time() * 1000
        bf = await rest.backfill("BTCUSDT", end - DAY // 4, end)
        assert len(bf["time"]) == DAY // 4 // STEP
    banned = [s for s in statuses if s.state is FeedState.BANNED]
    assert len(banned) == 1 and t0 + 500 <= banned[0].until <= t0 + 2500
    assert "banned" in banned[0].reason.lower()
    after = statuses[statuses.index(banned[0]) + 1]
    assert after.state is not FeedState.BANNED and "ban over" in after.reason
    # a caller that will not wait that long gets a clear error instead of a hang
    sim.faults.retry_after_s = 30
    sim.faults.http_418_burst = 1
    async with BinanceRest(sim.rest_url, settings=fast(max_rest_wait_s=0.5)) as rest:
        with pytest.raises(BannedError, match="banned") as e:
            await rest.exchange_info()
        assert e.value.until > time.time() * 1000 + 20_000


async def test_5xx_and_timeouts_are_retried(sim, market):
    end = closed_end(market)
    async with BinanceRest(sim.rest_url) as rest:
        ref = await rest.backfill("ETHUSDT", end - DAY // 2, end)
    await retries_5xx_and_times_out(sim, BinanceRest, fast, ref, end, BinanceRest.exchange_info)


# ============================================================================ live


def feed(sx, symbols=("BTCUSDT",), **settings) -> Feed:
    """A ``BinanceLive`` running in a task, with everything it reported."""
    return Feed(BinanceLive, sx, symbols, settings=fast(**settings))


async def test_live_events_flow_and_the_feed_goes_live(exchange, market):
    sim = await exchange(liquidating_at_the_mark(market), coinm_share=1.0)
    async with feed(sim, ("BTCUSDT", "ETHUSDT")) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        for sym in ("BTCUSDT", "ETHUSDT"):
            await until(lambda: len(f.of(Trade, sym)) >= 20 and len(f.of(MarkPrice, sym)) >= 2
                        and f.of(Bar, sym) and f.of(OpenInterest, sym), what=f"{sym} events")
        await until(lambda: f.of(Liquidation) and f.live.counters["foreign"] > 0,
                    what="a liquidation and a COIN-M one on !forceOrder@arr")
        c = dict(f.live.counters)
    assert f.states()[:2] == [FeedState.CONNECTING, FeedState.LIVE]
    assert c["malformed"] == c["unknown"] == c["reconnects"] == 0 and c["events"] > 0
    trades = f.of(Trade, "BTCUSDT")
    assert all(a.trade_id < b.trade_id for a, b in zip(trades, trades[1:]))
    assert all(e.symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT") for e in f.of(Liquidation))
    assert all(e.side in ("long", "short") and e.notional > 0 for e in f.of(Liquidation))
    bar = f.live.bars.forming("BTCUSDT")
    assert bar is not None and bar.interval_ms == STEP and bar.low <= bar.close <= bar.high
    # one OpenInterest per poll at most, and polls never overlap (one task, sequential)
    assert c["oi_polls"] >= 1 and c["oi_errors"] == 0


async def test_dropped_connections_reconnect_and_report_the_gap(sim):
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and len(f.of(Trade)) > 10, what="LIVE")
        sim.faults.drop_every_s = 0.2
        await until(lambda: FeedState.RECONNECTING in f.states(), what="RECONNECTING")
        sim.faults.drop_every_s = None
        await until(lambda: f.states()[-1] is FeedState.LIVE and f.gaps, what="LIVE and a gap")
        gap = f.gaps[0]
        assert gap.symbols == ("BTCUSDT",) and gap.start_ms < gap.end_ms
        assert f.live.counters["reconnects"] >= 1
        a, b = gap.bar_window(STEP)
        await until(lambda: sim.market.now_ms() >= b + 1000, what="the gap's last bar to close")
        got = await f.live.backfill_gap(gap)
        t = got["BTCUSDT"]["time"]
        assert t[0] == a and t[-1] + STEP == b and np.all(np.diff(t) == STEP)
    i = f.states().index(FeedState.RECONNECTING)
    assert FeedState.LIVE in f.states()[i:]


async def test_a_silent_socket_is_stale_and_replaced(sim):
    await a_silent_socket_goes_stale_and_is_replaced(sim, feed)   # pings and replies still flow


async def test_malformed_truncated_and_extra_fields_are_counted_and_survived(sim):
    for t in await damaged_frames_are_counted_and_survived(sim, feed):
        assert t.price > 0 and t.qty >= 0 and t.symbol == "BTCUSDT"


# ---------------------------------------------------------------- a hostile venue (issue 12)

Y2100 = 4_102_444_800_000  # 2100-01-01 UTC


def injecting(market):
    """``market`` plus the events a test puts in ``inject`` (sent once, at the next second)."""
    inject = []

    def each_second(second):
        out = [(e[0], e[1], second, *e[3:]) if e[2] is None else e for e in inject]
        inject.clear()
        return out

    return Scripted(market, each_second), inject


async def test_one_frame_from_the_year_2100_is_rejected_and_the_feed_moves_on(exchange, market):
    """A trade and a mark stamped 2100-01-01 are counted as implausible and applied nowhere:
    later marks and trades still move the price, and the state stays honestly LIVE."""
    scripted, inject = injecting(market)
    sim = await exchange(scripted, coinm_share=1.0)
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and "BTCUSDT" in f.live.last_mark,
                    what="LIVE with a mark")
        mark = market.mark_price("BTCUSDT")[0]
        inject += [("trade", "BTCUSDT", Y2100, 1, mark, 1.0, True),
                   ("mark", "BTCUSDT", Y2100, mark * 1.5, mark * 1.5)]
        await until(lambda: not inject, what="the 2100 frames sent")
        t0 = market.now_ms()
        n = len(f.of(Trade))
        await until(lambda: t0 + 3000 < f.live.last_mark["BTCUSDT"].time < Y2100
                    and len(f.of(Trade)) > n + 20, what="later marks and trades accepted")
        assert f.live.counters["implausible"] >= 2
        assert all(e.time < Y2100 for e in f.events if hasattr(e, "time"))
        assert f.live.bars.forming("BTCUSDT").time < Y2100
        assert f.states() == [FeedState.CONNECTING, FeedState.LIVE]


async def test_a_trade_id_of_2_to_the_62_is_rejected_and_later_ids_accepted(exchange, market):
    scripted, inject = injecting(market)
    sim = await exchange(scripted, coinm_share=1.0)
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and len(f.of(Trade)) > 5, what="trades")
        inject.append(("trade", "BTCUSDT", None, 2**62, market.mark_price("BTCUSDT")[0], 1.0,
                       True))
        await until(lambda: not inject, what="the 2**62 trade sent")
        n = len(f.of(Trade))
        await until(lambda: len(f.of(Trade)) > n + 20, what="later trades accepted")
        assert f.live.counters["implausible"] >= 1
        ids = [t.trade_id for t in f.of(Trade)]
        assert 2**62 not in ids and ids == sorted(set(ids))
        assert f.states() == [FeedState.CONNECTING, FeedState.LIVE]


async def test_a_socket_sending_only_garbage_goes_stale_and_is_replaced(sim):
    await a_garbage_socket_goes_stale_and_is_replaced(sim, feed)


class RestartingIds(Scripted):
    """The market with every trade id raised by ``shift``; setting it to 0 restarts the ids
    far lower, as a venue that renumbered its trades would."""
    shift = 2 * 10**9

    def advance(self):
        return [(e[0], e[1], e[2], e[3] + self.shift, *e[4:]) if e[0] == "trade" else e
                for e in super().advance()]


async def test_after_a_reconnect_an_id_sequence_restarting_lower_is_accepted(exchange, market):
    """Ids far below the last are implausible on the same socket (marks keep it alive), and a
    new sequence once the socket is replaced: trades flow again."""
    sx = RestartingIds(market, lambda second: [])
    sim = await exchange(sx, coinm_share=1.0)
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and len(f.of(Trade)) > 5, what="trades")
        first = f.of(Trade)[0].trade_id
        sx.shift = 0
        await until(lambda: f.live.counters.get("implausible", 0) > 0
                    or f.live.counters["duplicates"] > 0, what="the lower ids refused")
        sim.faults.drop_every_s = 0.2
        await until(lambda: f.live.counters["reconnects"] >= 1, what="a reconnect")
        sim.faults.drop_every_s = None
        await until(lambda: f.of(Trade)[-1].trade_id < first - 10**9,
                    what="the restarted ids accepted")
        assert f.live.counters["implausible"] > 0


def test_after_a_reconnect_the_id_and_time_windows_start_afresh():
    """On one socket an id far below the last, or a time far behind it, is implausible; on a
    new socket it is a new sequence (the old one was a bad first frame, or the venue
    restarted its ids), accepted; a replay just below the last id stays a duplicate."""
    from liqtui.feeds.live import Conn

    events = []
    live = BinanceLive("ws://127.0.0.1:1", ["BTCUSDT"], on_event=events.append)
    c = Conn(0, (), ("BTCUSDT",), "")

    def trade(tid, t):
        live._on_frame(c, [Trade("binance", "BTCUSDT", t, tid, 100.0, 1.0, True)])

    def mark(t):
        live._on_frame(c, [MarkPrice("binance", "BTCUSDT", t, 100.0)])

    live._fresh_socket(c)
    trade(2**62, Y2100)              # a bad first frame sets the window
    mark(Y2100)
    trade(5, 1_700_000_000_000)      # then real data: implausible on this socket
    mark(1_700_000_000_000)
    assert live.counters["implausible"] == 2 and len(events) == 2
    live._fresh_socket(c)            # the socket went stale and was replaced
    trade(5, 1_700_000_000_000)
    mark(1_700_000_000_000)
    trade(6, 1_700_000_000_100)
    trade(6, 1_700_000_000_100)      # a replay
    trade(4, 1_700_000_000_200)      # an overlap's old id
    assert [e.time for e in events[2:]] == [1_700_000_000_000] * 2 + [1_700_000_000_100]
    assert live.last_mark["BTCUSDT"].time == 1_700_000_000_000
    assert live.counters["duplicates"] == 2 and live.counters["implausible"] == 2
    # the bar builder leaves the bad timeline too (else every later trade would be "late")
    assert live.bars.forming("BTCUSDT").time < Y2100 and live.bars.resets == 1


async def test_proactive_rotation_overlaps_and_drops_duplicates(sim):
    async with feed(sim, ("BTCUSDT", "ETHUSDT"), max_connection_age_s=0.8,
                    rotation_overlap_s=0.3) as f:
        await until(lambda: f.live.counters["rotations"] >= 2 and f.live.counters["duplicates"] > 0,
                    what="two rotations with an overlap")
        await until(lambda: len(f.of(Trade)) > 100, what="trades")
    assert FeedState.RECONNECTING not in f.states() and f.gaps == []
    for sym in ("BTCUSDT", "ETHUSDT"):
        ids = [t.trade_id for t in f.of(Trade, sym)]
        assert ids == sorted(set(ids))  # no trade delivered twice, none out of order


async def test_a_rest_ban_shows_banned_until_and_recovers(sim):
    async with feed(sim, ("BTCUSDT",), oi_poll_s=0.1) as f:
        await until(lambda: f.state is FeedState.LIVE and f.live.counters["oi_polls"] > 0,
                    what="LIVE with polls")
        sim.faults.update(retry_after_s=1, http_418_burst=1)
        await until(lambda: f.state is FeedState.BANNED, what="BANNED")
        banned = f.statuses[-1]
        assert banned.until is not None and banned.until > banned.time
        polls = f.live.counters["oi_polls"]
        await until(lambda: time.time() * 1000 >= banned.until - 100, what="the ban's end")
        assert f.live.counters["oi_polls"] == polls  # polls are skipped while banned
        await until(lambda: f.state is FeedState.LIVE, what="LIVE after the ban")
        await until(lambda: f.live.counters["oi_polls"] > polls, what="polls again")


async def test_unknown_live_symbol_is_an_error_naming_it(sim):
    async with feed(sim, ("FOOUSDT", "BTCUSDT")) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE for the known symbol")
    err = [s for s in f.statuses if s.state is FeedState.ERROR]
    assert err and "FOOUSDT" in err[0].reason and f.live.symbols == ["BTCUSDT"]


async def test_after_a_disconnect_the_bars_and_heatmap_equal_an_uninterrupted_run(sim, market):
    """The app's way: backfill, then closed steps over REST as they close; connections are
    dropped for a while (several steps pass). The steps received, joined to the initial
    backfill, must equal one uninterrupted backfill of the whole span, and so must the
    model's heatmap. Live 1-minute klines must agree with what REST serves for them."""
    got, f, live_minutes = await steps_through_an_outage(sim, market, BinanceRest, feed)
    assert len(f.gaps) == 1 and f.gaps[0].end_ms - f.gaps[0].start_ms >= 2 * STEP  # ≥ 1 whole step
    await assert_equals_an_uninterrupted_run(sim, BinanceRest, got, live_minutes)
