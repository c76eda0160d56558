"""The simulated Bybit v5 linear venue over real sockets on 127.0.0.1 (aiohttp client).

Same market as the Binance server, seen through Bybit's shape (basis, volume and OI shares).
A manual clock makes limit windows exact; a fast clock shows minutes of venue behaviour in
about a second. Tests wait for conditions, never for fixed sleeps.
"""

from __future__ import annotations

import base64
import json

import pytest

from liqtui.feeds.bybit_parse import TickerBook, parse_frame
from liqtui.feeds.events import Bar, Liquidation, MarkPrice, OpenInterest, Trade, new_counters
from liqtui.sim.bybit import COOL_OFF, RATE_LIMIT
from liqtui.units import MINUTE as MIN
from liqtui.sim.venues import SHAPES

from helpers import NOW, SYMS, Scripted, fixed_market, frames, get, on_tick

WS = "/v5/public/linear"


def liquidating(market, k) -> Scripted:
    """A real Market plus k scripted liquidations per symbol per second (all in the first
    400 ms, so each 500 ms window holds k of them): allLiquidation must carry every one."""
    return Scripted(market, lambda second: [
        ("liquidation", sym, second + 100 * j // k, "SELL" if j % 2 else "BUY", j + 1.0, 100.0,
         101.0) for sym in SYMS for j in range(k)])


@pytest.fixture
def serve(exchange, http):
    """serve(market) → the simulated Bybit venue, a client session and the venue's protocol."""

    async def _serve(market=None, **kw):
        sim = await exchange(market if market is not None else fixed_market(), venues=["bybit"],
                             **kw)
        return sim, http, sim.protocol("bybit")

    return _serve


def messages(ws, seconds=2.0, n=None):
    """The text frames received within ``seconds`` (or the first ``n``), unparsed."""
    return frames(ws, n=n, seconds=seconds, parse=False)


# ------------------------------------------------------------------------------------------
# REST


async def test_klines_newest_first_on_tick_with_the_venues_basis(serve):
    m = fixed_market(manual=True)
    sim, s, _ = await serve(m)
    end = NOW // (5 * MIN) * 5 * MIN - 5 * MIN
    st, _, body = await get(s, sim, "/v5/market/kline", category="linear", symbol="BTCUSDT",
                            interval="5", start=str(end - 9 * 5 * MIN), end=str(end), limit="1000")
    assert st == 200 and body["retCode"] == 0 and body["result"]["symbol"] == "BTCUSDT"
    rows = body["result"]["list"]
    times = [int(r[0]) for r in rows]
    assert times == sorted(times, reverse=True) and times[0] == end and len(rows) == 10
    ref = {r[0]: r for r in m.klines("BTCUSDT", 5 * MIN, start_ms=end - 45 * MIN, limit=10)}
    k, v = SHAPES["bybit"].k, SHAPES["bybit"].volume_share
    for r in rows:
        assert all(on_tick(x, 0.1) for x in r[1:5])
        raw = ref[int(r[0])]
        assert abs(float(r[4]) - raw[4] * k) <= 0.05 + 1e-9       # close × (1 + basis)
        assert abs(float(r[5]) - raw[5] * v) <= 0.0005 + 1e-9     # volume × share
    # limit: the newest ones of the range; mark-price klines have five fields
    st, _, body = await get(s, sim, "/v5/market/kline", symbol="BTCUSDT", interval="5",
                            end=str(end), limit="3")
    assert [int(r[0]) for r in body["result"]["list"]] == times[:3]
    st, _, body = await get(s, sim, "/v5/market/mark-price-kline", category="linear",
                            symbol="BTCUSDT", interval="1", limit="2")
    assert len(body["result"]["list"]) == 2 and len(body["result"]["list"][0]) == 5


async def test_errors_are_retcodes_in_http_200(serve):
    sim, s, _ = await serve(fixed_market(manual=True))
    for params, words in (({"symbol": "FOOUSDT", "interval": "5"}, "symbol"),
                          ({"symbol": "BTCUSDT", "interval": "7"}, "period"),
                          ({"symbol": "BTCUSDT", "interval": "5", "limit": "1001"}, "limit")):
        st, _, body = await get(s, sim, "/v5/market/kline", category="linear", **params)
        assert st == 200 and body["retCode"] == 10001 and words in body["retMsg"].lower()
    st, _, body = await get(s, sim, "/v5/market/open-interest", symbol="BTCUSDT",
                            intervalTime="5min")
    assert body["retCode"] == 10001 and "category" in body["retMsg"]


async def test_open_interest_pages_newest_first_with_a_cursor(serve):
    m = fixed_market(manual=True)
    sim, s, _ = await serve(m)
    end = NOW // (5 * MIN) * 5 * MIN
    start = end - 299 * 5 * MIN                 # 300 rows: two pages of ≤ 200
    got, cursor, pages = [], None, 0
    while True:
        q = dict(category="linear", symbol="ETHUSDT", intervalTime="5min", startTime=str(start),
                 endTime=str(end), limit="200")
        if cursor:
            q["cursor"] = cursor
        st, _, body = await get(s, sim, "/v5/market/open-interest", **q)
        res = body["result"]
        got += res["list"]
        pages += 1
        cursor = res["nextPageCursor"]
        if not cursor:
            break
    assert pages == 2 and len(got) == 300
    ts = [int(r["timestamp"]) for r in got]
    assert ts == list(range(end, start - 1, -5 * MIN))           # newest first, no holes
    ref = {t: b for t, b, _ in m.open_interest_hist("ETHUSDT", 5 * MIN, start_ms=start, limit=500)}
    share = SHAPES["bybit"].oi_share
    for r in got:
        single = float(r["singleOpenInterest"])
        assert float(r["openInterest"]) == pytest.approx(2 * single)  # both sides since 2026-06
        assert single == pytest.approx(ref[int(r["timestamp"])] * share, abs=0.001)
    st, _, body = await get(s, sim, "/v5/market/open-interest", category="linear",
                            symbol="ETHUSDT", intervalTime="5min",
                            cursor=base64.urlsafe_b64encode(b"x").decode())
    assert body["retCode"] == 10001


async def test_tickers_and_instruments(serve):
    sim, s, _ = await serve(fixed_market(manual=True))
    st, _, body = await get(s, sim, "/v5/market/tickers", category="linear")
    t = {r["symbol"]: r for r in body["result"]["list"]}
    assert set(t) == set(SYMS)
    btc = t["BTCUSDT"]
    assert float(btc["openInterest"]) == pytest.approx(2 * float(btc["singleOpenInterest"]))
    assert all(on_tick(btc[k], 0.1) for k in ("markPrice", "lastPrice", "indexPrice"))
    st, _, body = await get(s, sim, "/v5/market/instruments-info", category="linear",
                            status="Trading", limit="1000")
    info = {r["symbol"]: r for r in body["result"]["list"]}
    assert info["BTCUSDT"]["priceFilter"]["tickSize"] == "0.10"
    assert info["ETHUSDT"]["lotSizeFilter"]["qtyStep"] == "0.001"
    assert info["BTCUSDT"]["contractType"] == "LinearPerpetual"


async def test_600_requests_per_5s_then_403_for_ten_minutes(serve):
    m = fixed_market(manual=True)
    sim, s, proto = await serve(m)
    for _ in range(RATE_LIMIT):
        st, _, _ = await get(s, sim, "/v5/market/time")
        assert st == 200
    st, _, body = await get(s, sim, "/v5/market/time")
    assert st == 403 and "access too frequent" in body
    m.set_now(NOW + 6000)                        # the window has passed, the cool-off has not
    st, _, _ = await get(s, sim, "/v5/market/time")
    assert st == 403
    m.set_now(NOW + COOL_OFF + 1)
    st, _, body = await get(s, sim, "/v5/market/time")
    assert st == 200 and body["retCode"] == 0
    assert proto.counters["http_403"] == 2


async def test_rest_faults_map_to_bybits_answers(serve):
    sim, s, _ = await serve(fixed_market(manual=True))
    sim.faults.update(http_418_burst=1, http_429_burst=1, retry_after_s=2)
    st, h, _ = await get(s, sim, "/v5/market/time")
    assert st == 403 and h["Retry-After"] == "2"
    st, h, body = await get(s, sim, "/v5/market/time")
    assert st == 200 and body["retCode"] == 10006 and h["X-Bapi-Limit-Status"] == "0"
    sim.faults.update(http_5xx_rate=1.0)
    st, _, _ = await get(s, sim, "/v5/market/time")
    assert st >= 500
    sim.faults.update(http_5xx_rate=0.0, extra_fields=True)
    st, _, body = await get(s, sim, "/v5/market/time")
    assert st == 200 and body["retCode"] == 0 and "simExtra" in body["result"]


# ------------------------------------------------------------------------------------------
# WebSocket


async def subscribe(ws, args, req_id="r1"):
    await ws.send_str(json.dumps({"op": "subscribe", "req_id": req_id, "args": args}))


async def test_acks_per_request_failures_and_pong(serve):
    sim, s, _ = await serve(fixed_market(time_scale=60))
    async with s.ws_connect(sim.ws_url + WS) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT", "kline.1.BTCUSDT"], "a")
        await subscribe(ws, ["liquidation.BTCUSDT", "tickers.FOOUSDT"], "b")
        await subscribe(ws, ["publicTrade.BTCUSDT"], "c")
        await ws.send_str(json.dumps({"op": "ping", "req_id": "p"}))
        got = [json.loads(t) for t in await messages(ws, 3.0)]
    acks = {m["req_id"]: m for m in got if "op" in m}
    assert acks["a"]["success"] is True and acks["a"]["op"] == "subscribe"
    assert acks["b"]["success"] is False
    assert "handler not found,topic:liquidation.BTCUSDT" in acks["b"]["ret_msg"]
    assert "tickers.FOOUSDT" in acks["b"]["ret_msg"]
    assert acks["c"]["success"] is False and "already subscribed" in acks["c"]["ret_msg"]
    assert acks["p"] == {"success": True, "ret_msg": "pong", "conn_id": acks["a"]["conn_id"],
                         "req_id": "p", "op": "ping"}
    assert len([m for m in got if "op" in m]) == 4                  # one ack per request


async def test_live_topics_flow_and_parse(serve):
    m = liquidating(fixed_market(time_scale=120), k=3)
    sim, s, _ = await serve(m)
    async with s.ws_connect(sim.ws_url + WS) as ws:
        await subscribe(ws, [f"{t}.BTCUSDT" for t in ("publicTrade", "kline.1", "tickers",
                                                       "allLiquidation")])
        raw = await messages(ws, 4.0)
    c, book, evs = new_counters(), TickerBook(), []
    for f in raw:
        evs += parse_frame(f, c, book)
    assert c["malformed"] == c["unknown"] == 0
    first_ticker = next(json.loads(f) for f in raw if '"tickers.' in f)
    assert first_ticker["type"] == "snapshot"                       # then deltas
    deltas = [json.loads(f) for f in raw if '"tickers.' in f][1:]
    assert deltas and all(d["type"] == "delta" and "volume24h" not in d["data"] for d in deltas)
    trades = [e for e in evs if isinstance(e, Trade)]
    assert len(trades) > 50 and len({t.trade_id for t in trades}) == len(trades)
    assert all(on_tick(f"{t.price:.2f}", 0.1) for t in trades)
    assert [e for e in evs if isinstance(e, MarkPrice)] and \
        [e for e in evs if isinstance(e, OpenInterest)]
    assert [e for e in evs if isinstance(e, Bar)]
    # all k liquidations of each window in one push; SELL orders (longs wiped) are "Buy"
    pushes = [json.loads(f) for f in raw if '"allLiquidation.' in f]
    scripted = [[d for d in p["data"] if d["T"] % 1000 < 500] for p in pushes]
    assert scripted and all(len(x) in (0, 3) for x in scripted) and any(scripted)
    liqs = [e for e in evs if isinstance(e, Liquidation) and e.time % 1000 < 500]
    v = SHAPES["bybit"].volume_share                     # quantities are the venue's share
    assert {(e.side, e.qty) for e in liqs} == {("short", round(1 * v, 3)),
                                               ("long", round(2 * v, 3)), ("short", round(3 * v, 3))}
    assert all(e.price == pytest.approx(100.0 * SHAPES["bybit"].k, abs=0.1) for e in liqs)


async def test_kline_push_at_the_minute_holds_the_closed_and_the_new_candle(serve):
    sim, s, _ = await serve(fixed_market(time_scale=300))
    async with s.ws_connect(sim.ws_url + WS) as ws:
        await subscribe(ws, ["kline.1.ETHUSDT"])
        raw = [json.loads(f) for f in await messages(ws, 2.5) if '"kline.' in f]
    turns = [r["data"] for r in raw if any(c["confirm"] for c in r["data"])]
    assert turns
    for data in turns:
        closed, new = data[-2], data[-1]
        assert closed["confirm"] and not new["confirm"]
        assert new["start"] == closed["start"] + MIN and new["open"] == closed["close"]


async def test_faults_drop_silent_malformed_and_idle_cut(serve):
    sim, s, proto = await serve(fixed_market(time_scale=60))
    async with s.ws_connect(sim.ws_url + WS) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        assert await messages(ws, 2.0, n=3)
        sim.faults.silent = True
        await messages(ws, 0.3)
        await ws.send_str(json.dumps({"op": "ping", "req_id": "q"}))
        quiet = await messages(ws, 1.0)
        assert [json.loads(t)["op"] for t in quiet] == ["ping"]     # pongs still flow
        sim.faults.update(silent=False, malformed_rate=0.5)
        c = new_counters()
        for f in await messages(ws, 2.0):
            parse_frame(f, c)
        assert c["malformed"] > 0 and c["events"] > 0
        sim.faults.update(malformed_rate=0.0, drop_every_s=0.2)
        await messages(ws, 3.0)
        assert ws.closed and proto.counters["fault_drops"] >= 1
    sim.faults.drop_every_s = None
    proto.idle_cut_s = 0.5
    async with s.ws_connect(sim.ws_url + WS) as ws:
        await subscribe(ws, ["publicTrade.BTCUSDT"])
        await messages(ws, 3.0)
        assert ws.closed and proto.counters["idle_cuts"] == 1


async def test_tickers_subscribed_while_silent_flow_once_data_returns(serve):
    sim, s, _ = await serve(fixed_market(time_scale=60))
    sim.faults.silent = True
    async with s.ws_connect(sim.ws_url + WS) as ws:
        await subscribe(ws, ["tickers.ETHUSDT"])
        got = await messages(ws, 1.0)
        assert [json.loads(t).get("op") for t in got] == ["subscribe"]   # the ack, no data
        sim.faults.silent = False
        book, evs = TickerBook(), []
        for f in await messages(ws, 2.0):
            evs += parse_frame(f, None, book)
    assert [e for e in evs if isinstance(e, MarkPrice)]
