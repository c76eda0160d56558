"""The OKX feed: the real ``OkxRest`` and ``OkxLive`` against the simulated exchange speaking
OKX v5, over real sockets on 127.0.0.1 (no mocks of our own code).

The market's clock runs 300× faster than the wall (a 5-minute step closes every second), so
reconnects, rate limits and closed steps happen within seconds. Tests wait for conditions with
generous timeouts and never sleep-and-hope.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from liqtui.feeds.events import Bar, FeedState, Liquidation, MarkPrice, OpenInterest, Trade
from liqtui.feeds.okx import (
    CANDLES,
    HISTORY,
    LIMITS,
    MARK_CANDLES,
    MARK_HISTORY,
    RUBIK_OI,
    EndpointLimiter,
    OkxLive,
    OkxRest,
)
from liqtui.feeds.okx_parse import Instrument, Instruments
from liqtui.feeds.rest import BannedError, RestError, UnknownSymbolError
from liqtui.sim.market import Market
from liqtui.sim.server import SimExchange
from liqtui.sim.wire import fmt
from liqtui.sim.venues import VenueMarket

from helpers import (DAY, MIN, SCALE, STEP, Feed, a_garbage_socket_goes_stale_and_is_replaced,
                     assert_equals_an_uninterrupted_run,
                     closed_end, damaged_frames_are_counted_and_survived, fast,
                     liquidating_at_the_mark, okx_protocol, steps_through_an_outage, until)


@pytest.fixture(scope="module")
def market():
    return Market(("BTCUSDT", "ETHUSDT"), seed=5, history_days=2.0, time_scale=SCALE)


@pytest.fixture
async def sim(exchange, market):
    return await exchange(market, venues=("okx",))


# ============================================================================ REST


async def test_backfill_of_a_day_matches_the_venue(sim, market):
    """Newest-first pages joined oldest first, contracts × ctVal in base units, prices on the
    venue's tick (its basis), open interest at each close; no hole, no duplicate."""
    end = closed_end(market)
    start = end - DAY
    vm, p = VenueMarket(market, "okx"), okx_protocol(sim)
    inst = "BTC-USDT-SWAP"
    async with OkxRest(sim.rest_url) as rest:
        bf = await rest.backfill("BTCUSDT", start, end)
        # instruments + time, then 3 pages of ≤ 100 each of candles, mark candles and rubik
        assert rest.counters["requests"] == 11 and rest.counters["http_429"] == 0
    t = bf["time"]
    assert len(t) == DAY // STEP and t[0] == start and np.all(np.diff(t) == STEP)
    assert bf.start == start and bf.end == end and bf.warnings == [] and bf.symbol == "BTCUSDT"
    kl = vm.klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    assert [r[0] for r in kl] == t.tolist()
    for j, key in ((1, "open"), (2, "high"), (3, "low"), (4, "close")):
        assert bf[key].tolist() == [float(p._px(inst, r[j])) for r in kl], key
    assert bf["volume"].tolist() == [float(fmt(r[5], 4)) for r in kl]   # BTC: 0.0001
    np.testing.assert_allclose(bf["quote_volume"], [r[7] for r in kl], rtol=1e-9)
    # the venue's volume share of the market (45 %), in base units, not contracts
    raw = market.klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    np.testing.assert_allclose(bf["volume"], [r[5] * 0.45 for r in raw], atol=1e-4)
    assert np.isnan(bf["taker_buy_quote_volume"]).all()     # 0.5 share in the model
    mk = vm.mark_klines("BTCUSDT", STEP, start_ms=start, end_ms=end - 1, limit=1500)
    assert bf["mark_high"].tolist() == [float(p._px(inst, r[2])) for r in mk]
    assert bf["mark_low"].tolist() == [float(p._px(inst, r[3])) for r in mk]
    oi = vm.open_interest_hist("BTCUSDT", STEP, start_ms=start + STEP, end_ms=end, limit=500)
    assert [r[0] for r in oi] == (t + STEP).tolist()
    assert bf["open_interest"].tolist() == [
        float(p._base(inst, p._contracts(inst, r[1], at_least_one=False))) for r in oi]


async def test_paging_reaches_history_candles_beyond_1440_rows(sim, market):
    """1-minute bars over 30 h: the newest 1,440 from /market/candles, older ones from
    /market/history-candles, 100 a page, joined without a hole or a duplicate."""
    end = closed_end(market)
    async with OkxRest(sim.rest_url) as rest:
        bf = await rest.backfill("ETHUSDT", end - 30 * 3_600_000, end, interval_ms=MIN)
        ref = await rest.backfill("ETHUSDT", end - 5 * 3_600_000, end, interval_ms=MIN)
        paths = dict(rest.by_path)
    t = bf["time"]
    assert len(t) == 30 * 60 and np.all(np.diff(t) == MIN)
    assert np.isfinite(bf["open_interest"]).all() and np.isfinite(bf["close"]).all()
    np.testing.assert_array_equal(bf["close"][-300:], ref["close"])
    # 18 + 3 pages of 1-minute candles, the oldest 360 rows only on history-candles; the
    # same for mark-price candles
    assert paths[CANDLES] + paths[HISTORY] == 21 and paths[HISTORY] >= 3
    assert paths[MARK_CANDLES] + paths[MARK_HISTORY] == 21 and paths[MARK_HISTORY] >= 3
    assert np.isfinite(bf["mark_high"]).all() and (bf["mark_low"] <= bf["mark_high"]).all()
    # 4 + 1 rubik pages: its 5 / 2 s window (4 kept) made the fifth wait, the venue saw no 429
    assert paths[RUBIK_OI] == 5 and rest.limiter.waited_s > 0
    assert okx_protocol(sim).counters["rate_limited"] == 0


async def test_open_interest_depth_is_clamped_with_a_warning():
    m = Market(("BTCUSDT",), seed=3, history_days=6.0, time_scale=SCALE)
    async with SimExchange(m, venues=("okx",)) as sx, OkxRest(sx.rest_url) as rest:
        bf = await rest.backfill("BTCUSDT", lookback_ms=6 * DAY)
    assert any("1440 open-interest periods of 5m (5 days)" in w for w in bf.warnings)
    assert 4.7 * DAY < bf.now - bf.start <= 5 * DAY
    assert np.isfinite(bf["open_interest"]).all()


async def test_unknown_symbols_are_refused_by_name(sim):
    async with OkxRest(sim.rest_url) as rest:
        with pytest.raises(UnknownSymbolError, match="'FOOUSDT'.*FOO-USDT-SWAP"):
            await rest.backfill("FOOUSDT", lookback_ms=DAY)
        with pytest.raises(UnknownSymbolError, match="inverse"):
            await rest.symbol("BTCUSD")
        with pytest.raises(UnknownSymbolError, match="did you mean BTCUSDT"):
            await rest.symbol("BTCUSDC")
        # the venue's code 51001 comes with HTTP 200: still an error, naming the instrument
        with pytest.raises(UnknownSymbolError, match="FOO-USDT-SWAP"):
            await rest._get(CANDLES, {"instId": "FOO-USDT-SWAP", "bar": "5m"})
        with pytest.raises(RestError, match="51000"):
            await rest._get(CANDLES, {"instId": "BTC-USDT-SWAP", "bar": "7m"})
        ins = await rest.load_instruments()
        assert not ins.get("BTC-USD-SWAP").ours and "BTCUSD" not in await rest.exchange_info()


async def test_429_bursts_are_waited_out_and_5xx_retried(sim, market):
    # the venue's windows, shortened so the doubling waits stay short in a test
    short = EndpointLimiter({k: (n, 0.25) for k, (n, _) in LIMITS.items()})
    async with OkxRest(sim.rest_url, settings=fast(), limiter=short) as rest:
        await rest.load_instruments()
        sim.faults.update(http_429_burst=3)
        bf = await rest.backfill("BTCUSDT", lookback_ms=2 * 3_600_000)
        assert len(bf["time"]) >= 23 and rest.counters["http_429"] == 3
        assert rest.limiter.waited_s >= 3 * 0.125     # no Retry-After: the window, doubling
        sim.faults.update(http_5xx_rate=0.5)
        for _ in range(20):
            bf2 = await rest.backfill("BTCUSDT", lookback_ms=2 * 3_600_000)
            if rest.counters["http_5xx"]:
                break
        sim.faults.update(http_5xx_rate=0.0)
        assert rest.counters["http_5xx"] > 0 and rest.counters["retries"] > 0
        assert np.isfinite(bf2["close"]).all()
        # a caller that must not wait (max_wait=0) gets BannedError while REST is paused
        rest.limiter.throttle(5.0)
        with pytest.raises(BannedError, match="rate limited"):
            await rest.open_interest("BTCUSDT", max_wait=0)


async def test_endpoint_windows_keep_under_the_venue_limits():
    lim = EndpointLimiter({RUBIK_OI: (5, 0.5), HISTORY: (20, 0.5)})
    assert lim.limits[RUBIK_OI] == (4, 0.5)           # a little below the venue's number
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(8):
        await lim.acquire(RUBIK_OI)
    assert loop.time() - t0 >= 0.45 and lim.waited_s > 0
    for _ in range(4):
        await lim.acquire(HISTORY, max_wait=0)        # another endpoint: its own window
    with pytest.raises(BannedError):
        for _ in range(20):
            await lim.acquire(HISTORY, max_wait=0)


# ============================================================================ live


def feed(sx, symbols=("BTCUSDT",), *, instruments=None, ping_after_s=20.0, **settings) -> Feed:
    """An ``OkxLive`` running in a task, with everything it reported; given ``instruments``,
    it asks no REST."""
    return Feed(OkxLive, sx, symbols, rest=instruments is None, instruments=instruments,
                settings=fast(**settings), ping_after_s=ping_after_s)


N_ARGS = 1 + 3 + 1   # liquidation-orders, trades/mark-price/open-interest, candle1m (1 symbol)


def _out_of_order(liqs) -> bool:
    return any(b.time < a.time for a, b in zip(liqs, liqs[1:]))


async def test_live_events_flow_on_both_sockets(exchange, market):
    sim = await exchange(liquidating_at_the_mark(market), venues=("okx",))
    async with feed(sim, ("BTCUSDT", "ETHUSDT")) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        for sym in ("BTCUSDT", "ETHUSDT"):
            await until(lambda: len(f.of(Trade, sym)) >= 20 and len(f.of(MarkPrice, sym)) >= 2
                        and f.of(Bar, sym) and f.of(OpenInterest, sym), what=f"{sym} events")
        await until(lambda: len(f.of(Liquidation)) >= 10 and _out_of_order(f.of(Liquidation))
                    and f.live.counters["foreign"] > 0,
                    what="liquidations, a late one and a foreign (inverse) one")
        c = dict(f.live.counters)
        assert f.live.unacked() == set() and c["acks"] == 1 + 2 * 3 + 2
    assert f.states()[:2] == [FeedState.CONNECTING, FeedState.LIVE]
    assert c["malformed"] == c["unknown"] == c["reconnects"] == c["ws_errors"] == 0
    for sym, ct in (("BTCUSDT", 0.01), ("ETHUSDT", 0.1)):
        trades = f.of(Trade, sym)
        assert all(a.trade_id < b.trade_id for a, b in zip(trades, trades[1:]))
        # sizes arrive in contracts of 0.01 lots: base = contracts × ctVal
        lot = 0.01 * ct
        assert all(math.isclose(round(t.qty / lot) * lot, t.qty, abs_tol=1e-9) for t in trades)
    liqs = f.of(Liquidation)
    assert all(e.symbol in ("BTCUSDT", "ETHUSDT") and e.side in ("long", "short")
               and e.notional > 0 for e in liqs)
    # bkPx is the bankruptcy price: beyond the market for the side wiped (a long's below)
    for e in liqs[:20]:
        trades = [t for t in f.of(Trade, e.symbol) if abs(t.time - e.time) < 60_000]
        if trades:
            near = trades[len(trades) // 2].price
            assert (e.price < near * 1.002) if e.side == "long" else (e.price > near * 0.998)
    assert len({(e.symbol, e.time, e.side, e.price, e.qty) for e in liqs}) == len(liqs)
    oi = f.of(OpenInterest, "BTCUSDT")[-1]
    assert f.live.last_oi["BTCUSDT"] == oi and oi.base > 0
    bars = f.of(Bar, "BTCUSDT")
    assert all(math.isnan(b.taker_buy_quote_volume) for b in bars)
    bar = f.live.bars.forming("BTCUSDT")
    assert bar is not None and bar.interval_ms == STEP and bar.low <= bar.close <= bar.high
    # candles carry no taker-buy volume: the live share comes from the trades
    assert 0 < bar.taker_buy_quote_volume < bar.quote_volume


async def test_dropped_sockets_reconnect_and_resubscribe_both(sim):
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE and len(f.of(Trade)) > 10
                    and f.live.counters["acks"] == N_ARGS, what="LIVE")
        sim.faults.drop_every_s = 0.3
        await until(lambda: FeedState.RECONNECTING in f.states(), what="RECONNECTING")
        sim.faults.drop_every_s = None
        await until(lambda: f.states()[-1] is FeedState.LIVE and f.gaps
                    and f.live.unacked() == set(), what="LIVE and a gap")
        n = len(f.of(Bar))
        await until(lambda: len(f.of(Bar)) > n + 3, what="candles again on /business")
        c = f.live.counters
        # both sockets came back, subscribed again, and every arg was acknowledged again
        assert c["reconnects"] >= 2 and len(f.live.subscribes) == 2
        assert min(f.live.subscribes.values()) >= 2 and c["acks"] >= 2 * N_ARGS
        gap = f.gaps[0]
        assert gap.symbols == ("BTCUSDT",) and gap.start_ms < gap.end_ms
    i = f.states().index(FeedState.RECONNECTING)
    assert FeedState.LIVE in f.states()[i:]


async def test_a_silent_socket_is_stale_and_replaced_while_pings_are_answered(sim):
    async with feed(sim, ("BTCUSDT",), stale_timeout_s=0.8, ping_after_s=0.2) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        sim.faults.silent = True  # pongs and acks still flow; data does not
        await until(lambda: FeedState.STALE in f.states(), what="STALE")
        await until(lambda: f.live.counters["pongs"] > 0, what="a pong to a text ping")
        sim.faults.silent = False
        await until(lambda: f.states()[-1] is FeedState.LIVE, what="LIVE again")
        s = f.states()
        i = s.index(FeedState.STALE)
        assert FeedState.RECONNECTING in s[i:] and "no data for 0.8 s" in f.statuses[i].reason
        assert f.live.counters["pings"] >= f.live.counters["pongs"] > 0


async def test_text_pings_keep_a_quiet_socket_open(sim):
    """OKX cuts a socket that got nothing for 30 s (4004): our pings answer that."""
    okx_protocol(sim).idle_close_s = 1.5
    async with feed(sim, ("BTCUSDT",), stale_timeout_s=30.0, ping_after_s=0.25) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        sim.faults.silent = True
        await until(lambda: f.live.counters["pongs"] >= 8, what="pings answered for ~3 s")
        sim.faults.silent = False
        assert okx_protocol(sim).counters["idle_closes"] == 0 and f.live.counters["reconnects"] == 0


async def test_proactive_rotation_subscribes_the_new_socket_before_the_switch(sim):
    async with feed(sim, ("BTCUSDT", "ETHUSDT"), max_connection_age_s=0.8,
                    rotation_overlap_s=0.3) as f:
        await until(lambda: f.live.counters["rotations"] >= 4
                    and f.live.counters["duplicates"] > 0, what="rotations with an overlap")
        await until(lambda: len(f.of(Trade)) > 100 and f.live.unacked() == set(),
                    what="trades, every arg acknowledged")
    assert FeedState.RECONNECTING not in f.states() and f.gaps == []
    assert f.live.counters["ws_errors"] == 0
    for sym in ("BTCUSDT", "ETHUSDT"):
        ids = [t.trade_id for t in f.of(Trade, sym)]
        assert ids == sorted(set(ids))  # no trade delivered twice, none out of order


async def test_a_service_upgrade_notice_moves_to_new_sockets_without_a_gap(sim):
    async with feed(sim, ("BTCUSDT",), rotation_overlap_s=0.2) as f:
        await until(lambda: f.state is FeedState.LIVE and f.live.unacked() == set(),
                    what="LIVE")
        assert okx_protocol(sim).notice() == 2
        await until(lambda: f.live.counters["rotations"] >= 2, what="both sockets rotated")
        n = len(f.of(Trade))
        await until(lambda: len(f.of(Trade)) > n + 20 and f.live.unacked() == set(),
                    what="trades on the new sockets")
    assert f.live.counters["notices"] == 2 and "64008" in f.live.notice
    assert FeedState.RECONNECTING not in f.states() and f.gaps == []
    assert min(f.live.subscribes.values()) >= 2


async def test_a_missing_pong_replaces_the_socket(sim):
    async with feed(sim, ("BTCUSDT",), stale_timeout_s=30.0, ping_after_s=0.2) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        okx_protocol(sim).answer_pings = False
        sim.faults.silent = True
        await until(lambda: f.live.counters["pong_timeouts"] >= 1, what="a pong timeout")
        await until(lambda: FeedState.RECONNECTING in f.states(), what="RECONNECTING")
        okx_protocol(sim).answer_pings = True
        sim.faults.silent = False
        await until(lambda: f.states()[-1] is FeedState.LIVE, what="LIVE again")
    i = f.states().index(FeedState.RECONNECTING)
    assert "no pong within 0.2 s" in f.statuses[i].reason
    assert FeedState.STALE not in f.states()          # the data watchdog did not fire first


async def test_a_socket_sending_only_garbage_goes_stale_and_is_replaced(sim):
    await a_garbage_socket_goes_stale_and_is_replaced(sim, feed)


async def test_malformed_and_truncated_frames_are_counted_and_survived(sim):
    for t in await damaged_frames_are_counted_and_survived(sim, feed):
        assert t.price > 0 and t.qty > 0 and t.symbol == "BTCUSDT"


async def test_a_refused_subscription_is_an_error_naming_it(sim):
    """An instrument the venue does not have: OKX answers that arg with error 60018 and keeps
    the socket; the other args are acknowledged and stream."""
    async with OkxRest(sim.rest_url) as rest:
        ins = await rest.load_instruments()
    fake = Instrument("FOO-USDT-SWAP", "FOOUSDT", 1.0, "FOO", "linear", 0.1, 1.0, "live")
    with_foo = Instruments([*ins.by_id.values(), fake])
    async with feed(sim, ("BTCUSDT", "FOOUSDT"), instruments=with_foo) as f:
        await until(lambda: len(f.live.refused) == 4 and len(f.of(Trade)) > 5,
                    what="FOO's four args refused, BTC streaming")
    assert set(f.live.refused) == {("trades", "FOO-USDT-SWAP"), ("mark-price", "FOO-USDT-SWAP"),
                                   ("open-interest", "FOO-USDT-SWAP"),
                                   ("candle1m", "FOO-USDT-SWAP")}
    assert all("60018" not in m and "FOO-USDT-SWAP" in m for m in f.live.refused.values())
    err = [s for s in f.statuses if s.state is FeedState.ERROR]
    assert err and "60018" in err[0].reason and f.live.counters["ws_errors"] == 4
    assert f.live.counters["acks"] >= 1 + 3 + 1 and f.live.counters["reconnects"] == 0


async def test_ingest_of_the_replay_counts_every_message(sim):
    """The benchmark's path: ``ingest`` of ``/replay/okx`` through the live parser, dedupe
    and bar builder (instruments given, no REST)."""
    async with OkxRest(sim.rest_url) as rest:
        ins = await rest.load_instruments()
    live = OkxLive(sim.ws_url, ("BTCUSDT", "ETHUSDT"), instruments=ins)
    await live.ingest(f"{sim.ws_url}/replay/okx?count=3000")
    c = live.counters
    assert c["frames"] == 3000 and c["malformed"] == c["unknown"] == c["duplicates"] == 0
    # the replay also has SOL, which this feed does not track
    assert c["events"] + c["foreign"] == 3000 and c["events"] > 1500 and c["foreign"] > 0
    assert live.bars.forming("BTCUSDT") is not None and live.last_mark["ETHUSDT"].price > 0


def test_a_late_liquidation_is_accepted_once():
    """OKX pushes liquidations late and out of order: an older one after a newer one is
    accepted; the same order pushed again (a reconnect's overlap) is not."""
    from liqtui.feeds.live import Conn

    ins = Instruments([Instrument("BTC-USDT-SWAP", "BTCUSDT", 0.01, "BTC", "linear", 0.1,
                                  0.01, "live")])
    events = []
    live = OkxLive("ws://127.0.0.1:1", ["BTCUSDT"], instruments=ins, on_event=events.append)
    c = Conn(0, (), ("BTCUSDT",), "")

    def push(ts, sz="2", inst="BTC-USDT-SWAP"):
        frame = ('{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":'
                 '[{"bkLoss":"0","bkPx":"90000.1","ccy":"","posSide":"net","side":"buy","sz":"'
                 + sz + '","ts":"' + str(ts) + '"}],"instId":"' + inst + '","instType":"SWAP"}]}')
        live._on_frame(c, live._parse(frame))

    push(1_700_000_600_000)
    push(1_700_000_100_000)            # 8 minutes late
    push(1_700_000_100_000)            # the same order again
    push(1_700_000_100_000, sz="3")    # another order at the same instant
    push(1_700_000_200_000, inst="ETH-USDT-SWAP")   # not tracked
    assert [(e.time, e.qty, e.side) for e in events] == [
        (1_700_000_600_000, 0.02, "short"), (1_700_000_100_000, 0.02, "short"),
        (1_700_000_100_000, 0.03, "short")]
    assert live.counters["duplicates"] == 1 and live.counters["foreign"] == 1
    push(1_700_000_600_000 - 2 * 3_600_000)   # two hours late: outside the plausible window
    assert len(events) == 3 and live.counters["implausible"] == 1


def test_bad_symbols_and_urls_are_refused_clearly():
    ins = Instruments()
    with pytest.raises(ValueError, match="inverse"):
        OkxLive("ws://127.0.0.1:1", ["BTCUSD"], instruments=ins)
    with pytest.raises(ValueError, match="without a path"):
        OkxLive("wss://ws.okx.com:8443/ws/v5/public", ["BTCUSDT"], instruments=ins)
    with pytest.raises(ValueError, match="contract sizes"):
        OkxLive("ws://127.0.0.1:1", ["BTCUSDT"])
    with pytest.raises(ValueError, match="OKX REST URL"):
        OkxRest("www.okx.com")


async def test_only_the_tracked_instruments_liquidations_pass(exchange, market):
    """liquidation-orders cannot be filtered by instId: ETH's (and the inverse BTC-USD-SWAP's)
    arrive while only BTC is tracked, and are dropped; an unknown symbol is an error naming
    it, the known one streams."""
    sim = await exchange(liquidating_at_the_mark(market), venues=("okx",))
    async with feed(sim, ("FOOUSDT", "BTCUSDT")) as f:
        await until(lambda: f.state is FeedState.LIVE and f.of(Liquidation)
                    and f.live.counters["foreign"] >= 5,
                    what="a BTC liquidation and foreign ones")
    assert {e.symbol for e in f.of(Liquidation)} == {"BTCUSDT"}
    assert f.live.symbols == ["BTCUSDT"] and f.live.market_symbols == {"BTCUSDT"}
    err = [s for s in f.statuses if s.state is FeedState.ERROR]
    assert err and "FOOUSDT" in err[0].reason


def test_the_venue_table_names_these_clients():
    from liqtui.feeds.venues import VENUES

    okx = VENUES["okx"]
    assert okx.rest_class() is OkxRest and okx.live_class() is OkxLive
    assert OkxLive.VENUE == "okx" and not okx.taker_in_candles


async def test_after_a_disconnect_the_steps_equal_an_uninterrupted_run(sim, market):
    """Backfill, then closed steps over REST as they close; both sockets dropped and silent
    for three steps. The steps received, joined to the initial backfill, equal one
    uninterrupted backfill of the whole span, and so does the model's heatmap."""
    got, f, live_minutes = await steps_through_an_outage(sim, market, OkxRest, feed)
    assert f.gaps[0].end_ms - f.gaps[0].start_ms >= 2 * STEP
    await assert_equals_an_uninterrupted_run(sim, OkxRest, got, live_minutes)
