"""The simulated Binance USDⓈ-M exchange over real sockets on 127.0.0.1 (aiohttp client).

Each test starts its own ``SimExchange`` on a free port. Tests wait for conditions with a
deadline instead of asserting tight timings, so they hold on a loaded machine. A manual market
clock (``set_now``) makes limit windows exact; a fast clock (``time_scale``) shows minutes of
venue behaviour (pings, Retry-After) in about a second.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from liqtui.sim.faults import Faults
from liqtui.sim.server import SimExchange
from liqtui.units import DAY, MINUTE as MIN

from helpers import NOW, SYMS, fixed_market, frames, get, until
from helpers import Scripted as Base

# Real recorded Binance messages, copied verbatim from ../shared/fixtures/real/binance/
# (cryptofeed_usdm_ws_combined_2021-07-22.jsonl, forceOrder_frames_real.jsonl (the 2026-10-09
# /market frame), rest_examples_captured_in_docs.json, and the key order of a symbol in
# cryptofeed_rest_exchangeInfo_2021-07-22_trimmed.json), so this file runs on any checkout.
REAL = {k: json.loads(v) for k, v in {
    "aggTrade": '{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT","p":"1.01100",'
                '"q":"10","f":23961322,"l":23961322,"T":1626992741421,"m":false}',
    "kline": '{"e":"kline","E":1626992760203,"s":"SUSHIUSDT","k":{"t":1626992700000,'
             '"T":1626992759999,"s":"SUSHIUSDT","i":"1m","f":126902874,"L":126902986,'
             '"o":"7.6080","c":"7.6170","h":"7.6180","l":"7.6070","v":"3005","n":113,"x":true,'
             '"q":"22875.8590","V":"1900","Q":"14464.6960","B":"0"}}',
    "forceOrder": '{"e":"forceOrder","E":1791565603055,"o":{"s":"BTCUSDT","S":"SELL",'
                  '"o":"LIMIT","f":"IOC","q":"0.190","p":"82338.30","ap":"82651.90",'
                  '"X":"FILLED","l":"0.155","z":"0.190","T":1791565602120,"ps":"BTCUSDT",'
                  '"st":1}}',
    "kline_row": '[1616338800000,"57212.69","57315.00","57196.19","57300.00","496.263",'
                 '1616339099999,"28425514.78940",7160,"273.108","15642623.69718","0"]',
}.items()}
REAL_SYMBOL_KEYS = [
    "symbol", "pair", "contractType", "deliveryDate", "onboardDate", "status",
    "maintMarginPercent", "requiredMarginPercent", "baseAsset", "quoteAsset", "marginAsset",
    "pricePrecision", "quantityPrecision", "baseAssetPrecision", "quotePrecision",
    "underlyingType", "underlyingSubType", "settlePlan", "triggerProtect", "liquidationFee",
    "marketTakeBound", "filters", "orderTypes", "timeInForce"]


class Scripted(Base):
    """A real Market plus scripted live events: liquidation bursts (k per symbol per second,
    quantities 1.001 … k.001, the last one at +900 ms) and trade floods."""

    def __init__(self, market, liq_per_s=0, flood_per_s=0):
        super().__init__(market, self._burst)
        self.liq_per_s, self.flood_per_s = liq_per_s, flood_per_s
        self._agg = 10**12
        self.jump = 0       # ms added to the clock the server sees, without a market to make

    def now_ms(self):
        return self.market.now_ms() + self.jump

    def _burst(self, second):
        k = self.liq_per_s
        return [("liquidation", sym, second + (900 * j) // max(k - 1, 1),
                 "SELL" if j % 2 else "BUY", j + 1.001, 100.0, 101.0)
                for sym in SYMS for j in range(k)]

    def advance(self):
        last = self._last
        events = super().advance()
        flood = []
        for i in range(self.flood_per_s * (self._last - last) // 1000):  # spread evenly
            ms = last + 1 + i * 1000 // self.flood_per_s
            for sym in SYMS:
                self._agg += 1
                flood.append(("trade", sym, ms, self._agg, 100.0, 0.001, True))
        return sorted(events + flood, key=lambda e: e[2])


@pytest.fixture
def serve(exchange, http):
    """serve(market, faults, **kw) → a started SimExchange and a client session."""

    async def _serve(market=None, faults=None, **kw):
        return await exchange(market if market is not None else fixed_market(), faults, **kw), http

    return _serve


def same_shape(ours, real):
    """Same keys (ours may add the venue's newer ones) and the same JSON types per key."""
    for key, value in real.items():
        assert key in ours, key
        if isinstance(value, dict):
            same_shape(ours[key], value)
        else:
            assert type(ours[key]) is type(value), (key, ours[key], value)


# ------------------------------------------------------------------------------------------
# REST


async def test_exchange_info_lists_usdm_perpetuals(serve):
    sim, s = await serve()
    status, headers, body = await get(s, sim, "/fapi/v1/exchangeInfo")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
            "limit": 2400} in body["rateLimits"]
    assert [x["symbol"] for x in body["symbols"]] == list(SYMS)
    for sym in body["symbols"]:
        assert sym["contractType"] == "PERPETUAL" and sym["status"] == "TRADING"
        assert [k for k in sym if k in REAL_SYMBOL_KEYS] == REAL_SYMBOL_KEYS
        filters = {f["filterType"]: f for f in sym["filters"]}
        assert {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL"} <= set(filters)
        assert isinstance(filters["PRICE_FILTER"]["tickSize"], str)
        assert float(filters["PRICE_FILTER"]["tickSize"]) > 0


async def test_klines_shape_order_paging_and_weights(serve):
    sim, s = await serve(fixed_market(manual=True))
    real_row = REAL["kline_row"]

    status, headers, rows = await get(s, sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m")
    assert status == 200 and len(rows) == 500                 # default limit
    assert headers["X-MBX-USED-WEIGHT-1M"] == "5"
    for row in rows[:3]:
        assert [type(x) for x in row] == [type(x) for x in real_row]
        assert row[6] == row[0] + MIN - 1 and row[11] == "0"
    opens = [r[0] for r in rows]
    assert opens == sorted(opens) and len(set(opens)) == len(opens)
    assert opens[-1] == NOW - NOW % MIN                       # the forming bar is last

    used = 5
    for limit, weight in ((99, 1), (100, 2), (1000, 5), (1500, 10)):
        status, headers, rows = await get(s, sim, "/fapi/v1/klines", symbol="ETHUSDT",
                                          interval="1m", limit=str(limit))
        used += weight
        assert status == 200 and len(rows) == limit
        assert headers["X-MBX-USED-WEIGHT-1M"] == str(used)

    # paging forward from startTime, as a backfill does
    start = NOW - 6 * 3_600_000
    start -= start % 300_000
    _, _, page = await get(s, sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m",
                           startTime=str(start), limit="10")
    assert page[0][0] == start and [r[0] for r in page] == [start + 300_000 * i for i in range(10)]
    _, _, nxt = await get(s, sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m",
                          startTime=str(page[-1][6] + 1), limit="10")
    assert nxt[0][0] == page[-1][0] + 300_000

    _, _, marks = await get(s, sim, "/fapi/v1/markPriceKlines", symbol="BTCUSDT",
                            interval="5m", limit="3")
    assert len(marks) == 3 and all(isinstance(r[1], str) and r[5] == "0" for r in marks)

    status, _, body = await get(s, sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m",
                                limit="1501")
    assert status == 400 and body == {"code": -1130,
                                      "msg": "Data sent for parameter 'limit' is not valid."}


async def test_rest_errors_have_the_venue_bodies(serve):
    sim, s = await serve(fixed_market(manual=True))
    cases = [
        ("/fapi/v1/klines", {"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ("/fapi/v1/klines", {"symbol": "btcusdt", "interval": "1m"}, -1121),
        ("/fapi/v1/openInterest", {"symbol": "BTCUSD_PERP"}, -1121),   # COIN-M: not here
        ("/fapi/v1/klines", {"interval": "1m"}, -1102),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT"}, -1102),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "x1"}, -1100),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "5",
                             "endTime": "4"}, -1023),
        ("/fapi/v1/openInterest", {"symbol": "BTCUSDT", "foo": "1"}, -1104),
    ]
    for path, params, code in cases:
        status, headers, body = await get(s, sim, path, **params)
        assert status == 400 and body["code"] == code, (path, params, body)
        assert set(body) == {"code", "msg"} and "X-MBX-USED-WEIGHT-1M" in headers
    assert (await get(s, sim, "/fapi/v1/klines", symbol="NOPE", interval="1m"))[2] == {
        "code": -1121, "msg": "Invalid symbol."}


async def test_open_interest_and_its_30_day_history(serve):
    sim, s = await serve(fixed_market(manual=True))
    status, headers, oi = await get(s, sim, "/fapi/v1/openInterest", symbol="BTCUSDT")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert set(oi) == {"symbol", "openInterest", "time"} and isinstance(oi["openInterest"], str)
    assert float(oi["openInterest"]) > 0 and isinstance(oi["time"], int)

    status, headers, rows = await get(s, sim, "/futures/data/openInterestHist",
                                      symbol="BTCUSDT", period="5m")
    assert status == 200 and len(rows) == 30                  # default limit
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"              # weight 0: unchanged
    assert list(rows[0]) == ["symbol", "sumOpenInterest", "sumOpenInterestValue",
                             "CMCCirculatingSupply", "timestamp"]
    assert all(isinstance(r["timestamp"], int) and isinstance(r["sumOpenInterest"], str)
               for r in rows)
    ts = [r["timestamp"] for r in rows]
    assert ts == sorted(ts) and all(b - a == 300_000 for a, b in zip(ts, ts[1:]))

    _, _, rows = await get(s, sim, "/futures/data/openInterestHist", symbol="BTCUSDT",
                           period="5m", limit="500", startTime=str(NOW - DAY))
    assert 287 <= len(rows) <= 289 and 0 <= rows[0]["timestamp"] - (NOW - DAY) < 300_000

    for params in ({"limit": "501"}, {"startTime": str(NOW - 30 * DAY - 1)},
                   {"startTime": str(NOW - 31 * DAY)}, {"period": "3m"}):
        status, _, body = await get(s, sim, "/futures/data/openInterestHist",
                                    **{"symbol": "BTCUSDT", "period": "5m", **params})
        assert status == 400 and body["code"] in (-1130, -1102), (params, body)


async def test_open_interest_history_has_its_own_limit(serve):
    sim, s = await serve(fixed_market(manual=True))
    statuses = []
    for _ in range(1001):
        status, headers, _ = await get(s, sim, "/futures/data/openInterestHist",
                                       symbol="ETHUSDT", period="1h", limit="1")
        statuses.append(status)
    assert statuses[:1000] == [200] * 1000 and statuses[1000] == 429
    assert int(headers["Retry-After"]) >= 1
    # the request-weight budget is untouched by it
    assert (await get(s, sim, "/fapi/v1/openInterest", symbol="ETHUSDT"))[0] == 200


async def test_premium_index_and_ticker_weights(serve):
    sim, s = await serve(fixed_market(manual=True))
    _, h, one = await get(s, sim, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
    assert h["X-MBX-USED-WEIGHT-1M"] == "1"
    assert list(one) == ["symbol", "markPrice", "indexPrice", "estimatedSettlePrice",
                         "lastFundingRate", "interestRate", "nextFundingTime", "time"]
    assert isinstance(one["markPrice"], str) and one["nextFundingTime"] % (8 * 3_600_000) == 0
    _, h, every = await get(s, sim, "/fapi/v1/premiumIndex")
    assert h["X-MBX-USED-WEIGHT-1M"] == "11" and [x["symbol"] for x in every] == list(SYMS)
    _, h, t = await get(s, sim, "/fapi/v1/ticker/24hr", symbol="ETHUSDT")
    assert h["X-MBX-USED-WEIGHT-1M"] == "12" and t["symbol"] == "ETHUSDT"
    assert isinstance(t["lastPrice"], str) and isinstance(t["count"], int)
    _, h, all_t = await get(s, sim, "/fapi/v1/ticker/24hr")
    assert h["X-MBX-USED-WEIGHT-1M"] == "52" and len(all_t) == len(SYMS)


async def test_weight_limit_429_then_418_ban(serve):
    sim, s = await serve(fixed_market(time_scale=60.0, manual=True))
    window = dict(symbol="BTCUSDT", interval="1m", limit="1001",      # weight 10, one row
                  startTime=str(NOW - 10 * MIN), endTime=str(NOW - 10 * MIN))
    for i in range(240):
        status, headers, _ = await get(s, sim, "/fapi/v1/klines", **window)
        assert status == 200, i
    assert headers["X-MBX-USED-WEIGHT-1M"] == "2400"
    status, headers, body = await get(s, sim, "/fapi/v1/klines", **window)
    assert status == 429 and body["code"] == -1003
    assert 1 <= int(headers["Retry-After"]) <= 1                     # ≤ 60 sim s at 60×
    # continuing while limited: banned, with the venue's message and the unban time
    status, headers, body = await get(s, sim, "/fapi/v1/ping")
    assert status == 418 and body["code"] == -1003
    assert body["msg"].startswith("Way too much request weight used; IP banned until ")
    assert body["msg"].endswith(". Please use the websocket for live updates to avoid bans.")
    until = int(body["msg"].split("until ")[1].split(".")[0])
    assert until == NOW + 2 * MIN and int(headers["Retry-After"]) == 2   # 120 sim s at 60×
    assert (await get(s, sim, "/fapi/v1/time"))[0] == 418           # everything, until then
    sim.market.set_now(until)
    status, _, body = await get(s, sim, "/fapi/v1/time")
    assert status == 200 and body == {"serverTime": until}


async def test_obeying_retry_after_avoids_the_ban(serve):
    sim, s = await serve(fixed_market(time_scale=60.0, manual=True))   # 60 sim s a wall second
    for _ in range(60):
        assert (await get(s, sim, "/fapi/v1/ticker/24hr"))[0] == 200     # weight 40 each
    status, headers, _ = await get(s, sim, "/fapi/v1/ticker/24hr")
    assert status == 429
    sim.market.set_now(None)                  # the clock runs again, from 30 s into the minute
    await asyncio.sleep(int(headers["Retry-After"]))
    status, headers, _ = await get(s, sim, "/fapi/v1/ticker/24hr")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "40"     # a new minute


# ------------------------------------------------------------------------------------------
# WebSocket


async def test_combined_and_raw_frames_match_the_real_ones(serve):
    sim, s = await serve(Scripted(fixed_market(time_scale=5.0), liq_per_s=2))
    real = REAL
    streams = ["btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@markPrice@1s",
               "btcusdt@forceOrder"]
    async with s.ws_connect(sim.ws_url + "/market/stream?streams=" + "/".join(streams)) as ws:
        got = {}

        async def collect():
            for f in await frames(ws, seconds=0.3):
                assert set(f) == {"stream", "data"}
                got.setdefault(f["stream"], f["data"])
            return len(got) == len(streams)
        await until(collect, timeout=20)
    same_shape(got["btcusdt@aggTrade"], real["aggTrade"])
    same_shape(got["btcusdt@kline_1m"], real["kline"])
    same_shape(got["btcusdt@forceOrder"], real["forceOrder"])
    mark = got["btcusdt@markPrice@1s"]
    assert list(mark) == ["e", "E", "s", "p", "i", "P", "r", "T"]
    assert all(isinstance(mark[k], str) for k in "piPr") and mark["s"] == "BTCUSDT"
    assert list(got["btcusdt@aggTrade"])[:4] == ["e", "E", "a", "s"]   # the venue's key order

    async with s.ws_connect(sim.ws_url + "/market/ws/ethusdt@aggTrade/ethusdt@kline_1m") as ws:
        raw = []

        async def collect_raw():
            raw.extend(await frames(ws, seconds=0.3))
            return {f["e"] for f in raw} == {"aggTrade", "kline"}
        await until(collect_raw, timeout=20)
    assert all("stream" not in f and f["s"] == "ETHUSDT" for f in raw)
    aggs = [f["a"] for f in raw if f["e"] == "aggTrade"]
    assert aggs == sorted(aggs) and len(set(aggs)) == len(aggs)


async def test_subscription_methods_and_error_replies(serve):
    sim, s = await serve(fixed_market(time_scale=5.0))
    async with s.ws_connect(sim.ws_url + "/market/stream") as ws:
        await ws.send_str(json.dumps({"method": "SUBSCRIBE",
                                      "params": ["btcusdt@aggTrade", "!forceOrder@arr"], "id": 1}))
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        await ws.send_str(json.dumps({"method": "UNSUBSCRIBE", "params": ["!forceOrder@arr"],
                                      "id": 4}))
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}))
        await ws.send_str(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 6}))
        await ws.send_str("{not json")
        await ws.send_str(json.dumps({"method": "SUBSCRIBES", "params": [], "id": 7}))
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["x"], "id": -1}))
        replies = []

        async def collect():
            replies.extend(f for f in await frames(ws, seconds=0.2) if "stream" not in f)
            return len(replies) >= 8
        await until(collect, timeout=10.0)
    assert replies[0] == {"result": None, "id": 1}
    assert replies[1] == {"result": ["btcusdt@aggTrade", "!forceOrder@arr"], "id": 3}
    assert replies[2] == {"result": None, "id": 4}
    assert replies[3] == {"result": ["btcusdt@aggTrade"], "id": 5}
    assert replies[4] == {"result": True, "id": 6}
    assert replies[5]["code"] == 3 and replies[5]["msg"].startswith("Invalid JSON")
    assert replies[6]["code"] == 2 and replies[6]["id"] == 7 and "SUBSCRIBES" in replies[6]["msg"]
    assert replies[7]["code"] == 2 and "unsigned integer" in replies[7]["msg"]


async def test_more_than_10_messages_a_second_disconnects(serve):
    sim, s = await serve(fixed_market(time_scale=5.0))
    async with s.ws_connect(sim.ws_url + "/market/stream") as ws:
        for i in range(12):
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        await frames(ws, seconds=5)            # until the server closes it
        assert ws.closed and ws.close_code == 1008
    assert sim.counters["rate_disconnects"] == 1


async def test_legacy_paths_ack_but_stay_silent(serve):
    sim, s = await serve(fixed_market(time_scale=5.0))
    sub = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@markPrice@1s"], "id": 9}
    async with s.ws_connect(sim.ws_url + "/ws/btcusdt@aggTrade") as legacy_raw, \
            s.ws_connect(sim.ws_url + "/stream?streams=btcusdt@aggTrade") as legacy, \
            s.ws_connect(sim.ws_url + "/public/stream?streams=btcusdt@aggTrade") as public, \
            s.ws_connect(sim.ws_url + "/market/stream?streams=btcusdt@aggTrade") as market:
        for ws in (legacy_raw, legacy):
            await ws.send_str(json.dumps(sub))
        await until(lambda: sim.counters["frames"] >= 20, timeout=20)
        live = await frames(market, seconds=0.5)
        quiet = await frames(legacy, seconds=0.5) + await frames(legacy_raw, seconds=0.5)
        quiet += await frames(public, seconds=0.2)     # /public carries book data only
    assert live and all(f["stream"] == "btcusdt@aggTrade" for f in live)
    assert quiet == [{"result": None, "id": 9}, {"result": None, "id": 9}]


async def test_at_most_1024_streams_per_connection(serve):
    sim, s = await serve(fixed_market(manual=True))
    names = [f"s{i}usdt@aggTrade" for i in range(1025)]
    async with s.ws_connect(sim.ws_url + "/market/stream") as ws:
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": names[:1024], "id": 1}))
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": names[1024:], "id": 2}))
        replies = await frames(ws, n=2, seconds=10)
    assert replies[0] == {"result": None, "id": 1}
    assert replies[1]["code"] == 2 and replies[1]["id"] == 2 and "1024" in replies[1]["msg"]


async def test_force_order_is_one_latest_snapshot_per_symbol_per_second(serve):
    sim, s = await serve(Scripted(fixed_market(time_scale=4.0), liq_per_s=5), coinm_share=0.5)
    async with s.ws_connect(sim.ws_url + "/market/stream?streams=!forceOrder@arr/"
                            "btcusdt@forceOrder") as ws:
        got = []

        async def collect():
            got.extend(await frames(ws, seconds=0.3))
            return sum(f["stream"] == "btcusdt@forceOrder" for f in got) >= 6
        await until(collect, timeout=20)
    per_window: dict[tuple, int] = {}
    for f in got:
        o = f["data"]["o"]
        assert f["data"]["e"] == "forceOrder" and isinstance(o, dict)   # one object, not a list
        key = (f["stream"], o["s"], o["T"] // 1000)
        per_window[key] = per_window.get(key, 0) + 1
        if o["s"] in SYMS:
            assert o["q"] not in ("1.001", "2.001", "3.001", "4.001")   # only the latest
            assert float(o["l"]) <= float(o["z"]) and o["ps"] == o["s"] and o["st"] == 1
    assert max(per_window.values()) == 1
    symbols_on_arr = {o for (stream, o, _) in per_window if stream == "!forceOrder@arr"}
    assert {"BTCUSDT", "ETHUSDT"} <= symbols_on_arr
    assert {"BTCUSD_PERP", "ETHUSD_PERP"} & symbols_on_arr                 # COIN-M on the arr
    assert {o for (stream, o, _) in per_window if stream == "btcusdt@forceOrder"} == {"BTCUSDT"}


async def test_server_pings_and_the_24h_cut(serve):
    market = Scripted(fixed_market(time_scale=360.0, manual=True))   # a ping every 0.5 s
    sim, s = await serve(market)
    async with s.ws_connect(sim.ws_url + "/market/ws/btcusdt@aggTrade", autoping=False) as ws:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.PING
        await ws.pong(msg.data)
        market.jump = DAY                                   # a simulated day later
        while msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            msg = await ws.receive(timeout=10)
        assert ws.close_code == 1001
    assert sim.counters["lifetime_cuts"] == 1


async def test_slow_client_is_dropped_without_holding_back_others(serve):
    # 10,000 frames a second; a client that never reads fills its socket buffers, then its
    # queue, and is cut off, while a client that reads keeps getting everything
    sim, s = await serve(Scripted(fixed_market(time_scale=2.0), flood_per_s=5000),
                         max_queue=2000)
    url = sim.ws_url + "/market/stream?streams=btcusdt@aggTrade"
    async with s.ws_connect(url) as stuck, s.ws_connect(url) as healthy:
        received = 0

        async def read_healthy():
            nonlocal received
            async for msg in healthy:
                received += 1

        reader = asyncio.create_task(read_healthy())
        await until(lambda: sim.counters["dropped_clients"] >= 1, timeout=30)
        before = received
        await until(lambda: received > before + 100, timeout=10.0)      # still flowing
        assert not healthy.closed and not reader.done()
        reader.cancel()
        assert await frames(stuck, seconds=5) is not None      # drains, then sees the close
        assert stuck.closed


# ------------------------------------------------------------------------------------------
# Faults


async def test_fault_drop_connections(serve):
    sim, s = await serve(fixed_market(time_scale=5.0), Faults(drop_every_s=0.3))
    for abrupt in (True, False):
        sim.faults.drop_abrupt = abrupt
        async with s.ws_connect(sim.ws_url + "/market/stream?streams=btcusdt@aggTrade") as ws:
            await frames(ws, seconds=10)                    # ends when the socket is dropped
            assert ws.closed
            if not abrupt:
                assert ws.close_code == 1001
    assert sim.counters["fault_drops"] >= 2


async def test_fault_silent_still_answers_pings_and_requests(serve):
    sim, s = await serve(fixed_market(time_scale=5.0), Faults(silent=True))
    async with s.ws_connect(sim.ws_url + "/market/stream?streams=btcusdt@aggTrade",
                            autoping=False) as ws:
        await ws.ping(b"hi")
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        seen = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                msg = await ws.receive(timeout=deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            seen.append((msg.type, msg.data))
        assert (aiohttp.WSMsgType.PONG, b"hi") in seen
        texts = [json.loads(d) for t, d in seen if t == aiohttp.WSMsgType.TEXT]
        assert texts == [{"result": ["btcusdt@aggTrade"], "id": 1}]     # no data frames
        sim.faults.silent = False                                       # flows again
        assert await frames(ws, n=1, seconds=10)


async def test_fault_slow_rest_5xx_and_bursts(serve):
    sim, s = await serve(fixed_market(manual=True), Faults(slow_ms=300))
    t0 = time.monotonic()
    assert (await get(s, sim, "/fapi/v1/ping"))[0] == 200
    assert time.monotonic() - t0 >= 0.3
    sim.faults.slow_ms = 0

    sim.faults.http_429_burst, sim.faults.retry_after_s = 2, 3
    for _ in range(2):
        status, headers, body = await get(s, sim, "/fapi/v1/openInterest", symbol="BTCUSDT")
        assert status == 429 and headers["Retry-After"] == "3" and body["code"] == -1003
    sim.faults.http_418_burst, sim.faults.retry_after_s = 1, None
    status, headers, body = await get(s, sim, "/fapi/v1/openInterest", symbol="BTCUSDT")
    assert status == 418 and int(headers["Retry-After"]) >= 1 and "banned until" in body["msg"]
    assert (await get(s, sim, "/fapi/v1/openInterest", symbol="BTCUSDT"))[0] == 200

    sim.faults.http_5xx_rate = 1.0
    for _ in range(8):
        assert 500 <= (await get(s, sim, "/fapi/v1/ping"))[0] <= 504
    sim.faults.http_5xx_rate = 0.0
    assert (await get(s, sim, "/fapi/v1/ping"))[0] == 200


async def test_fault_malformed_truncated_and_extra_fields(serve):
    sim, s = await serve(fixed_market(time_scale=5.0))
    url = sim.ws_url + "/market/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"

    def parses(text):
        try:
            d = json.loads(text)
        except ValueError:
            return False
        return isinstance(d, dict) and isinstance(d.get("data"), dict) and \
            isinstance(d["data"].get("p"), str)

    async with s.ws_connect(url) as ws:
        for fault in ("truncated_rate", "malformed_rate"):
            setattr(sim.faults, fault, 1.0)
            await frames(ws, seconds=0.2, parse=False)       # drain frames sent before
            bad = await frames(ws, n=20, seconds=10, parse=False)
            assert len(bad) == 20 and not any(parses(t) for t in bad), fault
            setattr(sim.faults, fault, 0.0)
        sim.faults.extra_fields = True
        await frames(ws, seconds=0.2, parse=False)
        extra = await frames(ws, n=5, seconds=10)
        assert all(parses(json.dumps(f)) and "simExtra" in f["data"] and "sim_extra" in f
                   for f in extra)
    _, _, oi = await get(s, sim, "/fapi/v1/openInterest", symbol="BTCUSDT")
    assert "simExtra" in oi and isinstance(oi["openInterest"], str)


async def test_faults_can_be_set_over_http(serve):
    sim, s = await serve(fixed_market(manual=True))
    async with s.post(sim.rest_url + "/sim/faults", json={"silent": True, "slow_ms": 5}) as r:
        assert r.status == 200 and (await r.json())["silent"] is True
    assert sim.faults.silent and sim.faults.slow_ms == 5
    async with s.post(sim.rest_url + "/sim/faults", json={"nope": 1}) as r:
        assert r.status == 400


@pytest.mark.parametrize("body,kind,status,named", [
    # a web page may POST text/plain or a form cross-site without a preflight: refused unread
    ('{"silent": true}', "text/plain", 415, "'text/plain'"),
    ("silent=true", "application/x-www-form-urlencoded", 415, "x-www-form-urlencoded"),
    # bad values are a 400 naming the value (they were stored, and the pump failed with 500s)
    ('{"slow_ms": "abc"}', "application/json", 400, "slow_ms='abc'"),
    ('{"malformed_rate": 7}', "application/json", 400, "malformed_rate=7"),
    ('{"http_429_burst": -1}', "application/json", 400, "http_429_burst=-1"),
    ('{"silent": 1}', "application/json", 400, "silent=1"),
    ('{"drop_every_s": 1e400}', "application/json", 400, "drop_every_s=inf"),
    ('[1, 2]', "application/json", 400, "[1, 2]"),
    ("{not json", "application/json", 400, "not JSON"),
])
async def test_fault_control_takes_json_only_and_names_bad_values(serve, body, kind, status,
                                                                 named):
    sim, s = await serve(fixed_market(manual=True))
    before = sim.faults.as_dict()
    async with s.post(sim.rest_url + "/sim/faults", data=body,
                      headers={"Content-Type": kind}) as r:
        assert r.status == status
        assert named in (await r.json())["error"]
    assert sim.faults.as_dict() == before  # nothing half-applied
    # and the market still answers
    async with s.get(sim.rest_url + "/fapi/v1/time") as r:
        assert r.status == 200


# ------------------------------------------------------------------------------------------
# Ground truth, replay, shutdown


async def test_truth_endpoint_returns_the_market_map(serve):
    sim, s = await serve(fixed_market(manual=True))
    status, _, truth = await get(s, sim, "/sim/truth", symbol="BTCUSDT")
    assert status == 200
    assert {"prices", "long_usd", "short_usd", "bin_width", "price"} <= set(truth)
    assert len(truth["prices"]) == len(truth["long_usd"]) == len(truth["short_usd"])
    assert (await get(s, sim, "/sim/truth", symbol="NOPE"))[0] == 400


async def test_replay_streams_exactly_count_frames(serve):
    sim, s = await serve(fixed_market(manual=True))
    async with s.ws_connect(sim.ws_url + "/replay/stream?count=5000") as ws:
        got = [json.loads(m.data) async for m in ws]
    assert len(got) == 5000 and ws.close_code == 1000
    kinds = [f["stream"].split("@", 1)[1] for f in got]
    assert 0.7 < kinds.count("aggTrade") / 5000 < 0.9
    assert {"aggTrade", "kline_1m", "markPrice@1s"} == set(kinds)
    aggs = [(f["data"]["s"], f["data"]["a"]) for f in got if f["data"]["e"] == "aggTrade"]
    assert len(set(aggs)) == len(aggs)                        # nothing a dedupe would drop
    real = REAL
    same_shape(next(f["data"] for f in got if f["data"]["e"] == "aggTrade"), real["aggTrade"])
    same_shape(next(f["data"] for f in got if f["data"]["e"] == "kline"), real["kline"])
    async with s.ws_connect(sim.ws_url + "/replay/ws?count=10") as ws:
        raw = [json.loads(m.data) async for m in ws]
    assert len(raw) == 10 and all("e" in f for f in raw)


async def test_stop_is_clean(serve):
    market = fixed_market(time_scale=5.0)
    sim = SimExchange(market)
    before = asyncio.all_tasks()
    await sim.start()
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(sim.ws_url + "/market/stream?streams=btcusdt@aggTrade")
        assert await frames(ws, n=1, seconds=10)
        reader = asyncio.create_task(frames(ws, seconds=10))   # the client keeps reading
        await sim.stop()
        await reader
        assert ws.closed and ws.close_code == 1001
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
