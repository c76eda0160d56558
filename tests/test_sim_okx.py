"""The simulated exchange speaking OKX v5, over real sockets on 127.0.0.1 (aiohttp clients,
no mocks): REST envelope, contracts × ctVal, tick rounding, newest-first candles and their
1,440-row window, cursors, limits, WebSocket acks, text ping/pong, channel routing between
/public and /business, the 30 s idle close, bankruptcy prices and late liquidation pushes."""

from __future__ import annotations

import asyncio
import json
import math

import aiohttp
import pytest

from liqtui.sim.market import Market
from liqtui.sim.okx import INVERSE

from helpers import MIN, STEP, liquidating_at_the_mark, okx_protocol, on_tick


@pytest.fixture(scope="module")
def market():
    return Market(("BTCUSDT", "ETHUSDT"), seed=11, history_days=2.0, time_scale=300.0)


@pytest.fixture
async def sim(exchange, market):
    return await exchange(market, venues=("okx",))


async def get(http, sx, path, **params):
    async with http.get(sx.rest_url + path, params=params) as r:
        return r.status, await r.json()


# ---------------------------------------------------------------------------- REST


async def test_time_and_instruments(sim, http):
    st, body = await get(http, sim, "/api/v5/public/time")
    assert st == 200 and body["code"] == "0" and abs(int(body["data"][0]["ts"]) -
                                                     sim.market.now_ms()) < 60_000
    st, body = await get(http, sim, "/api/v5/public/instruments", instType="SWAP")
    by = {d["instId"]: d for d in body["data"]}
    assert set(by) == {"BTC-USDT-SWAP", "ETH-USDT-SWAP", INVERSE}
    assert (by["BTC-USDT-SWAP"]["ctVal"], by["BTC-USDT-SWAP"]["ctValCcy"],
            by["BTC-USDT-SWAP"]["ctType"], by["BTC-USDT-SWAP"]["tickSz"]) == \
        ("0.01", "BTC", "linear", "0.1")
    assert by["ETH-USDT-SWAP"]["ctVal"] == "0.1" and by[INVERSE]["ctType"] == "inverse"
    st, body = await get(http, sim, "/api/v5/public/instruments", instType="FUTURES")
    assert st == 400 and body["code"] == "51000"


async def test_candles_newest_first_in_contracts_andon_tick(sim, http, market):
    st, body = await get(http, sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP",
                         bar="5m", limit="300")
    rows = body["data"]
    assert st == 200 and len(rows) == 300
    ts = [int(r[0]) for r in rows]
    assert ts == sorted(ts, reverse=True) and all(a - b == STEP for a, b in zip(ts, ts[1:]))
    assert rows[0][8] == "0" and all(r[8] == "1" for r in rows[1:])  # only the newest forms
    for r in rows[:50]:
        assert all(on_tick(x, 0.1) for x in r[1:5])
        assert math.isclose(float(r[5]) * 0.01, float(r[6]), rel_tol=1e-9)  # vol × ctVal = volCcy
        assert float(r[3]) <= min(float(r[1]), float(r[4])) <= float(r[2])
    # the venue's shape: OKX's basis (−0.03 %) on the market's price, 45 % of its volume
    ref = {r[0]: r for r in market.klines("BTCUSDT", STEP, start_ms=ts[-1], limit=300)}
    r = rows[5]
    assert math.isclose(float(r[4]), ref[int(r[0])][4] * (1 - 0.0003), abs_tol=0.05)
    assert math.isclose(float(r[6]), ref[int(r[0])][5] * 0.45, abs_tol=1e-4)
    # limit bounds: ≤ 300 here, ≤ 100 on history-candles
    st, body = await get(http, sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP",
                         bar="5m", limit="301")
    assert st == 400 and body["code"] == "51000"
    st, body = await get(http, sim, "/api/v5/market/history-candles", instId="BTC-USDT-SWAP",
                         bar="5m", limit="101")
    assert body["code"] == "51000"


async def test_cursors_and_the_1440_row_window(sim, http):
    st, body = await get(http, sim, "/api/v5/market/candles", instId="ETH-USDT-SWAP", bar="1m",
                         limit="3")
    newest = int(body["data"][0][0])
    # after: older than ts; before: newer than ts; both: the window between
    _, b = await get(http, sim, "/api/v5/market/candles", instId="ETH-USDT-SWAP", bar="1m",
                     after=str(newest - 10 * MIN), before=str(newest - 14 * MIN), limit="100")
    assert [int(r[0]) for r in b["data"]] == [newest - k * MIN for k in (11, 12, 13)]
    # 1m rows older than the latest 1,440: only history-candles has them
    old = newest - 1500 * MIN
    _, b = await get(http, sim, "/api/v5/market/candles", instId="ETH-USDT-SWAP", bar="1m",
                     after=str(old), limit="5")
    assert b["data"] == []
    _, b = await get(http, sim, "/api/v5/market/history-candles", instId="ETH-USDT-SWAP",
                     bar="1m", after=str(old), limit="5")
    assert [int(r[0]) for r in b["data"]] == [old - k * MIN for k in range(1, 6)]


async def test_mark_price_candles(sim, http, market):
    _, body = await get(http, sim, "/api/v5/market/mark-price-candles", instId="BTC-USDT-SWAP",
                        bar="5m", limit="100")
    rows = body["data"]
    ts = [int(r[0]) for r in rows]
    assert len(rows) == 100 and all(len(r) == 6 for r in rows) and ts == sorted(ts, reverse=True)
    ref = {r[0]: r for r in market.mark_klines("BTCUSDT", STEP, start_ms=ts[-1], limit=100)}
    for r in rows[1:20]:
        assert all(on_tick(x, 0.1) for x in r[1:5]) and r[5] == "1"
        assert math.isclose(float(r[2]), ref[int(r[0])][2] * (1 - 0.0003), abs_tol=0.05)
    _, body = await get(http, sim, "/api/v5/market/mark-price-candles", instId="BTC-USDT-SWAP",
                        bar="5m", limit="101")
    assert body["code"] == "51000"   # ≤ 100 here


async def test_unknown_instrument_is_an_error_with_http_200(sim, http):
    st, body = await get(http, sim, "/api/v5/market/candles", instId="FOO-USDT-SWAP", bar="5m")
    assert st == 200 and body["code"] == "51001" and body["data"] == []
    st, body = await get(http, sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP", bar="6H")
    assert body["code"] == "51000"


async def test_open_interest_now_and_history(sim, http, market):
    _, body = await get(http, sim, "/api/v5/public/open-interest", instType="SWAP",
                        instId="BTC-USDT-SWAP")
    d = body["data"][0]
    assert math.isclose(float(d["oi"]) * 0.01, float(d["oiCcy"]), rel_tol=1e-12)
    base, _ = market.open_interest("BTCUSDT")
    assert math.isclose(float(d["oiCcy"]), base * 0.35, rel_tol=0.01)
    _, body = await get(http, sim, "/api/v5/rubik/stat/contracts/open-interest-history",
                        instId="BTC-USDT-SWAP", period="5m", limit="100")
    rows = body["data"]
    ts = [int(r[0]) for r in rows]
    assert len(rows) == 100 and ts == sorted(ts, reverse=True) and ts[0] % STEP == 0
    hist = dict((t, b) for t, b, _ in market.open_interest_hist("BTCUSDT", STEP,
                                                                  start_ms=ts[-1], limit=100))
    for r in rows[:10]:
        assert math.isclose(float(r[2]), hist[int(r[0])] * 0.35, abs_tol=0.0001)
    # end = older than, begin = newer than (both exclusive)
    _, body = await get(http, sim, "/api/v5/rubik/stat/contracts/open-interest-history",
                        instId="BTC-USDT-SWAP", period="5m", end=str(ts[1]), begin=str(ts[5]))
    assert [int(r[0]) for r in body["data"]] == ts[2:5]
    # only the latest 1,440 periods exist
    _, body = await get(http, sim, "/api/v5/rubik/stat/contracts/open-interest-history",
                        instId="BTC-USDT-SWAP", period="5m", end=str(ts[0] - 1439 * STEP))
    assert body["data"] == []


async def test_per_endpoint_rate_limits_and_fault_bursts(sim, http):
    codes = []
    for _ in range(7):
        st, body = await get(http, sim, "/api/v5/rubik/stat/contracts/open-interest-history",
                             instId="BTC-USDT-SWAP", period="5m", limit="1")
        codes.append((st, body["code"]))
    assert codes[:5] == [(200, "0")] * 5 and codes[5:] == [(429, "50011")] * 2
    st, body = await get(http, sim, "/api/v5/public/time")    # other endpoints are not hit
    assert st == 200
    sim.faults.update(http_429_burst=1, http_418_burst=1)
    got = [(await get(http, sim, "/api/v5/public/time"))[1]["code"] for _ in range(3)]
    assert got == ["50011", "50011", "0"]  # OKX has no 418 bans: both are 429/50011
    sim.faults.update(http_5xx_rate=1.0)
    async with http.get(sim.rest_url + "/api/v5/public/time") as r:
        assert r.status >= 500
    sim.faults.update(http_5xx_rate=0.0, extra_fields=True)
    st, body = await get(http, sim, "/api/v5/market/candles", instId="BTC-USDT-SWAP",
                         bar="5m", limit="2")
    assert body["code"] == "0" and len(body["data"][0]) == 10 and body["simExtra"] == "x"


# ---------------------------------------------------------------------------- WebSocket


async def recv_json(ws, pred, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, end - loop.time()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        if msg.data != "pong":
            d = json.loads(msg.data)
            if pred(d):
                return d


async def test_acks_per_arg_ping_and_channel_routing(sim, http):
    ws = await http.ws_connect(sim.ws_url + "/ws/v5/public")
    args = [{"channel": "trades", "instId": "BTC-USDT-SWAP"},
            {"channel": "candle1m", "instId": "BTC-USDT-SWAP"},
            {"channel": "trades", "instId": "FOO-USDT-SWAP"},
            {"channel": "trades", "instId": ["BTC-USDT-SWAP"]},
            {"channel": "mark-price", "instId": "ETH-USDT-SWAP"}]
    await ws.send_str(json.dumps({"op": "subscribe", "args": args}))
    replies = [json.loads((await ws.receive(timeout=5)).data) for _ in args]
    assert [r["event"] for r in replies] == ["subscribe", "error", "error", "error",
                                             "subscribe"]
    assert replies[0]["arg"] == args[0] and replies[4]["arg"] == args[4]
    assert replies[1]["code"] == "60018" and "candle1m" in replies[1]["msg"]
    await ws.send_str("ping")
    texts = [(await ws.receive(timeout=5)).data for _ in range(200)]
    assert "pong" in texts
    trades = [json.loads(t)["data"][0] for t in texts if t != "pong" and '"trades"' in t[:30]]
    assert trades and all(on_tick(t["px"], 0.1) and t["side"] in ("buy", "sell")
                          and float(t["sz"]) >= 0.01 for t in trades)
    ids = [int(t["tradeId"]) for t in trades]
    assert ids == sorted(ids)
    await ws.close()
    wb = await http.ws_connect(sim.ws_url + "/ws/v5/business")
    await wb.send_str(json.dumps({"op": "subscribe", "args": [
        {"channel": "candle1m", "instId": "BTC-USDT-SWAP"},
        {"channel": "trades", "instId": "BTC-USDT-SWAP"}]}))
    assert [json.loads((await wb.receive(timeout=5)).data)["event"] for _ in range(2)] == \
        ["subscribe", "error"]
    c = await recv_json(wb, lambda d: d.get("arg", {}).get("channel") == "candle1m")
    assert len(c["data"][0]) == 9 and c["data"][0][8] in ("0", "1")
    await wb.close()


async def test_idle_sockets_are_closed_with_4004(sim, http):
    okx_protocol(sim).idle_close_s = 1.0
    ws = await http.ws_connect(sim.ws_url + "/ws/v5/public")
    msg = await ws.receive(timeout=5)   # never subscribed
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4004
    # subscribed to a quiet channel: kept alive by text pings only
    ws = await http.ws_connect(sim.ws_url + "/ws/v5/public")
    await ws.send_str(json.dumps({"op": "subscribe", "args": [
        {"channel": "liquidation-orders", "instType": "OPTION"}]}))
    assert json.loads((await ws.receive(timeout=5)).data)["event"] == "subscribe"
    for _ in range(6):
        await asyncio.sleep(0.2)
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "pong"
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4004
    assert okx_protocol(sim).counters["idle_closes"] >= 2


async def test_liquidations_bankruptcy_prices_late_and_foreign(exchange, market, http):
    sim = await exchange(liquidating_at_the_mark(market), venues=("okx",))
    ws = await http.ws_connect(sim.ws_url + "/ws/v5/public")
    await ws.send_str(json.dumps({"op": "subscribe", "args": [
        {"channel": "liquidation-orders", "instType": "SWAP"},
        {"channel": "trades", "instId": "ETH-USDT-SWAP"}]}))   # keeps the socket busy
    items = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 45
    while loop.time() < end and not (
            len(items) >= 25 and any(i["instId"] == INVERSE for i in items)
            and any(int(b["details"][0]["ts"]) < int(a["details"][0]["ts"])
                    for a, b in zip(items, items[1:]))):
        msg = await ws.receive(timeout=10)
        d = json.loads(msg.data)
        if "data" in d and d["arg"]["channel"] == "liquidation-orders":
            items += d["data"]
    await ws.close()
    assert len(items) >= 25, "too few liquidations"
    assert {i["instId"] for i in items} >= {"BTC-USDT-SWAP", INVERSE}
    ts = [int(i["details"][0]["ts"]) for i in items]
    assert any(b < a for a, b in zip(ts, ts[1:])), "no push came late"
    assert okx_protocol(sim).counters["late_liquidations"] > 0
    for i in items:
        x = i["details"][0]
        assert (x["posSide"], x["side"]) in {("long", "sell"), ("short", "buy"),
                                             ("net", "sell"), ("net", "buy")}
        if i["instId"] != INVERSE:
            assert float(x["sz"]) >= 0.01 and on_tick(x["bkPx"], 0.1 if "BTC" in
                                                       i["instId"] else 0.01)


async def test_drop_silent_and_damaged_frames(sim, http):
    ws = await http.ws_connect(sim.ws_url + "/ws/v5/public")
    await ws.send_str(json.dumps({"op": "subscribe", "args": [
        {"channel": "trades", "instId": "BTC-USDT-SWAP"}]}))
    await ws.receive(timeout=5)
    sim.faults.update(silent=True)
    await asyncio.sleep(0.3)
    while True:  # drain what was queued before the fault
        try:
            m = await ws.receive(timeout=0.3)
        except asyncio.TimeoutError:
            break
    await ws.send_str("ping")   # replies still flow while silent
    assert (await ws.receive(timeout=5)).data == "pong"
    sim.faults.update(silent=False, malformed_rate=0.5, truncated_rate=0.2)
    bad = 0
    for _ in range(100):
        m = await ws.receive(timeout=5)
        try:
            d = json.loads(m.data)
            bad += not (isinstance(d, dict) and isinstance(d.get("arg"), dict)
                        and isinstance(d["data"][0], dict) and "px" in d["data"][0]
                        and d["data"][0]["px"] is not None)
        except (ValueError, KeyError, IndexError, TypeError):
            bad += 1
    assert 20 <= bad <= 95
    sim.faults.update(malformed_rate=0.0, truncated_rate=0.0, drop_every_s=0.2)
    m = await ws.receive(timeout=5)
    while m.type == aiohttp.WSMsgType.TEXT:
        m = await ws.receive(timeout=5)
    assert m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                      aiohttp.WSMsgType.ERROR)
    assert okx_protocol(sim).counters["fault_drops"] >= 1


async def test_a_symbol_added_after_the_start_is_served(http, exchange):
    """--demo builds its market one symbol at a time while the server already runs: OKX must
    list and serve a symbol that joined later (it once froze its instruments at start)."""
    m = Market(("SOLUSDT",), seed=3, history_days=0.2)
    sx = await exchange(m, venues=("okx",))
    _, body = await get(http, sx, "/api/v5/public/instruments", instType="SWAP")
    assert "BNB-USDT-SWAP" not in {d["instId"] for d in body["data"]}
    m.add(m.prepare(["BNBUSDT"]))
    _, body = await get(http, sx, "/api/v5/public/instruments", instType="SWAP")
    assert "BNB-USDT-SWAP" in {d["instId"] for d in body["data"]}
    st, body = await get(http, sx, "/api/v5/market/candles", instId="BNB-USDT-SWAP",
                         bar="5m", limit=3)
    assert st == 200 and body["code"] == "0" and len(body["data"]) == 3
