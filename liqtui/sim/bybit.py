"""Bybit v5 linear over the simulated exchange's port: REST ``/v5/market/*`` and the public
WebSocket ``/v5/public/linear``, from the same simulated market as Binance, shaped for Bybit
(``VenueMarket``: its basis, volume and open-interest shares).

Wire reference: ``../shared/design/PROTOCOLS.md`` §2 and §5. What a client meets here as on
the venue:

* REST answers are ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``; errors are
  HTTP 200 with a non-zero ``retCode`` (10001 bad parameter or symbol, 10006 "Too many
  visits!"). Kline and open-interest lists are newest first; open interest pages with
  ``nextPageCursor``; ``openInterest`` counts both sides (2 × ``singleOpenInterest``, as since
  2026-06-11). Prices are rounded to the symbol's tick (the basis puts them off it).
* 600 requests per 5 s per IP (simulated time): then HTTP 403 "access too frequent" to every
  request for a 10-minute cool-off (simulated time).
* WebSocket: ``{"op": "subscribe", "args": [...], "req_id": ...}`` gets one ack per request
  with ``req_id`` echoed; a topic we do not serve (the deprecated ``liquidation.X``) or an
  unknown symbol makes it ``success: false`` naming the topic; the server keeps no
  subscriptions across connections. ``{"op": "ping"}`` → pong. A connection with no message
  from the client for ``idle_cut_s`` (wall: the client's ping timer is wall time) is closed.
  ``publicTrade`` (arrays of ≤ 1024), ``kline.1`` (the closed candle and the new one together
  at the minute), ``tickers`` (a snapshot on subscribe, then deltas of the changed fields at
  most every 100 ms) and ``allLiquidation`` (every 500 ms, *all* liquidations of the window;
  ``S`` is the position side, ``p`` the bankruptcy price: the liquidation order's limit).

Faults (``exchange.faults``) as for Binance: drop, silent, slow, 5xx, malformed, truncated and
extra fields; ``http_429_burst`` answers retCode 10006 (Bybit's rate-limit answer) and
``http_418_burst`` HTTP 403 (Bybit's ban). ``retry_after_s``, a test hook, adds a
``Retry-After`` header to those (the venue sends none).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web

from .faults import DropClock
from .protocol import SimProtocol
from .wire import Conn, decimals, dumps, fmt, unindex, wind_down, with_extra_fields, writer

from ..units import DAY, MINUTE as MIN, SECOND as SEC

KLINE_INTERVALS = {"1": MIN, "3": 3 * MIN, "5": 5 * MIN, "15": 15 * MIN, "30": 30 * MIN,
                   "60": 60 * MIN, "120": 120 * MIN, "240": 240 * MIN, "360": 360 * MIN,
                   "720": 720 * MIN, "D": DAY}
OI_INTERVALS = {"5min": 5 * MIN, "15min": 15 * MIN, "30min": 30 * MIN, "1h": 60 * MIN,
                "4h": 240 * MIN, "1d": DAY}
RATE_LIMIT = 600                  # requests per IP ...
RATE_WINDOW = 5 * SEC             # ... per 5 s
COOL_OFF = 10 * MIN               # HTTP 403 to everything for this long
TRADES_PER_MSG = 1024
TICKER_EVERY = 100                # tickers deltas at most every 100 ms
KLINE_EVERY = SEC                 # forming kline pushes at most every second
LIQ_WINDOW = 500                  # allLiquidation: everything of each 500 ms
IDLE_CUT_S = 600.0                # no ping (or request) for 10 min: the server hangs up
MAX_ARGS_CHARS = 21_000           # subscription args per connection
TOPICS = ("publicTrade", "kline.1", "tickers", "allLiquidation")


class _Err(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code, self.msg = code, msg


class Protocol(SimProtocol):
    """Bybit's protocol server for ``SimExchange`` (see ``liqtui.sim.venues``)."""

    def __init__(self, exchange, market):
        self.x = exchange
        self.m = market                       # a VenueMarket shaped for Bybit
        self.idle_cut_s = IDLE_CUT_S
        self.counters = {"frames": 0, "rest_requests": 0, "http_403": 0, "idle_cuts": 0,
                         "fault_drops": 0}
        self._conns: set[Conn] = set()
        self._index: dict[str, set[Conn]] = {}   # topic → subscribers
        self._ids: dict[Conn, str] = {}
        self._hits: dict[str, deque] = {}         # ip → request times (sim) in the window
        self._cool_off: dict[str, int] = {}       # ip → end of its 403 cool-off (sim)
        self._ticker: dict[str, dict] = {}        # sym → the published tickers state
        self._ticker_at: dict[str, int] = {}
        self._last_trade: dict[str, float] = {}   # sym → last trade price (venue's)
        self._mark: dict[str, tuple] = {}         # sym → (mark, index) latest
        self._kline_at: dict[str, int] = {}
        self._forming: dict[str, list] = {}       # sym → newest forming 1m row not yet pushed
        self._liqs: dict[str, list] = {}          # sym → liquidations of the open window
        self._liq_window: dict[str, int] = {}
        self._cs = 1
        self._drop_clock = DropClock()

    # -- plumbing ----------------------------------------------------------------------

    def routes(self) -> list:
        return [
            web.get("/v5/market/time", self._time),
            web.get("/v5/market/kline", self._kline),
            web.get("/v5/market/mark-price-kline", self._mark_kline),
            web.get("/v5/market/open-interest", self._open_interest),
            web.get("/v5/market/tickers", self._tickers),
            web.get("/v5/market/instruments-info", self._instruments),
            web.get("/v5/public/linear", self._ws),
        ]

    async def stop(self) -> None:
        for conn in list(self._conns):
            self._close(conn, WSCloseCode.GOING_AWAY, b"server shutdown")
        for _ in range(100):
            if not self._conns:
                return
            await asyncio.sleep(0.01)

    def _spec(self, sym):
        return self.m.symbols[sym]

    def _px(self, sym: str, x: float) -> str:
        """A price on the symbol's tick (the basis moves prices off it)."""
        spec = self._spec(sym)
        return fmt(round(x / spec.tick_size) * spec.tick_size, spec.price_precision)

    def _qty(self, sym: str, x: float) -> str:
        return fmt(x, self._spec(sym).qty_precision)

    # -- REST ----------------------------------------------------------------------------

    async def _rest(self, request, body):
        """Faults, the per-IP limit, then ``{"retCode": 0, ..., "result": body(request)}``."""
        x, f = self.x, self.x.faults
        x.counters["rest_requests"] += 1
        self.counters["rest_requests"] += 1
        if f.slow_ms:
            await asyncio.sleep(f.slow_ms / 1000.0)
        now = x.now()
        if f.http_5xx_rate and x.rng.random() < f.http_5xx_rate:
            return x.http_5xx(0)
        hint = f.retry_after_header()
        if f.http_418_burst > 0:
            f.http_418_burst -= 1
            return self._forbidden(hint)
        if f.http_429_burst > 0:
            f.http_429_burst -= 1
            # the limit resets in 1 s (simulated), stamped on the wall clock the client has
            reset = int(time.time() * 1000 + SEC / self.x.time_scale)
            return self._answer(now, 10006, "Too many visits!", None, {
                "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset), **hint})
        ip = request.remote or "?"
        if now < self._cool_off.get(ip, 0):
            return self._forbidden()
        hits = self._hits.setdefault(ip, deque())
        while hits and hits[0] <= now - RATE_WINDOW:
            hits.popleft()
        if len(hits) >= RATE_LIMIT:
            self._cool_off[ip] = now + COOL_OFF
            hits.clear()
            return self._forbidden()
        hits.append(now)
        try:
            res = body(request.query)
        except _Err as e:
            return self._answer(now, e.code, e.msg, None)
        except (ValueError, KeyError):
            return self._answer(now, 10001, "params error", None)
        return self._answer(now, 0, "OK", res)

    def _answer(self, now: int, code: int, msg: str, res, headers=None):
        data = {"retCode": code, "retMsg": msg, "result": res if res is not None else {},
                "retExtInfo": {}, "time": now}
        if self.x.faults.extra_fields:
            data = with_extra_fields(data)
        return web.Response(text=dumps(data), content_type="application/json",
                            headers=headers or {})

    def _forbidden(self, headers=None):
        self.counters["http_403"] += 1
        return web.Response(status=403, text="access too frequent", content_type="text/plain",
                            headers=headers or {})

    # -- parameters

    def _symbol(self, q) -> str:
        sym = q.get("symbol", "")
        if sym not in self.m.symbols:
            raise _Err(10001, "params error: symbol invalid" if sym else
                       "params error: symbol is required")
        return sym

    @staticmethod
    def _category(q, required=True) -> None:
        cat = q.get("category")
        if cat is None and not required:
            return
        if cat != "linear":
            raise _Err(10001, f"params error: category {cat!r} is not supported here "
                       "(linear only)")

    @staticmethod
    def _int(q, name) -> int | None:
        v = q.get(name)
        if v is None or v == "":
            return None
        if not v.isdigit():
            raise _Err(10001, f"params error: {name} invalid")
        return int(v)

    def _limit(self, q, default: int, maximum: int) -> int:
        n = self._int(q, "limit")
        if n is None:
            return default
        if not 1 <= n <= maximum:
            raise _Err(10001, f"params error: limit must be in [1, {maximum}]")
        return n

    # -- endpoints

    async def _time(self, request):
        def body(q):
            now = self.x.now()
            return {"timeSecond": str(now // SEC), "timeNano": str(now * 1_000_000)}
        return await self._rest(request, body)

    def _rows(self, q, mark: bool):
        """Klines with open times in [start, end] (the newest ``limit``), newest first."""
        self._category(q, required=False)
        sym = self._symbol(q)
        iv = KLINE_INTERVALS.get(q.get("interval", ""))
        if iv is None:
            raise _Err(10001, "Invalid period!")
        limit = self._limit(q, 200, 1000)
        start, end = self._int(q, "start"), self._int(q, "end")
        if start is not None and end is not None and start > end:
            raise _Err(10001, "params error: start must be before end")
        fn = self.m.mark_klines if mark else self.m.klines
        rows = [r for r in fn(sym, iv, start_ms=None, end_ms=end, limit=limit)
                if start is None or r[0] >= start]
        return sym, rows[::-1]

    async def _kline(self, request):
        def body(q):
            sym, rows = self._rows(q, mark=False)
            px = self._px
            return {"symbol": sym, "category": "linear", "list": [
                [str(int(r[0])), px(sym, r[1]), px(sym, r[2]), px(sym, r[3]), px(sym, r[4]),
                 self._qty(sym, r[5]), fmt(r[7], 4)] for r in rows]}
        return await self._rest(request, body)

    async def _mark_kline(self, request):
        def body(q):
            sym, rows = self._rows(q, mark=True)
            px = self._px
            return {"symbol": sym, "category": "linear", "list": [
                [str(int(r[0])), px(sym, r[1]), px(sym, r[2]), px(sym, r[3]), px(sym, r[4])]
                for r in rows]}
        return await self._rest(request, body)

    async def _open_interest(self, request):
        def body(q):
            self._category(q)
            sym = self._symbol(q)
            per = OI_INTERVALS.get(q.get("intervalTime", ""))
            if per is None:
                raise _Err(10001, "params error: intervalTime invalid")
            limit = self._limit(q, 50, 200)
            start, end = self._int(q, "startTime"), self._int(q, "endTime")
            cursor = q.get("cursor")
            if cursor:
                try:  # our cursor: the end of the next (older) page
                    end = int(base64.urlsafe_b64decode(cursor.encode()).decode())
                except ValueError:
                    raise _Err(10001, "params error: cursor invalid") from None
            rows = [r for r in self.m.open_interest_hist(sym, per, start_ms=None, end_ms=end,
                                                         limit=limit)
                    if start is None or r[0] >= start]
            more = len(rows) == limit and (start is None or rows[0][0] - per >= start)
            nxt = (base64.urlsafe_b64encode(str(rows[0][0] - per).encode()).decode()
                   if more and rows else "")
            out = []
            for t, base, _usd in reversed(rows):
                single = self._qty(sym, base)
                out.append({"openInterest": self._qty(sym, 2 * float(single)),
                            "singleOpenInterest": single, "timestamp": str(int(t))})
            return {"symbol": sym, "category": "linear", "list": out, "nextPageCursor": nxt}
        return await self._rest(request, body)

    async def _tickers(self, request):
        def body(q):
            self._category(q)
            syms = [self._symbol(q)] if q.get("symbol") else list(self.m.symbols)
            return {"category": "linear", "list": [self._snapshot(s, self.x.now())
                                                   for s in syms]}
        return await self._rest(request, body)

    async def _instruments(self, request):
        def body(q):
            self._category(q)
            syms = [self._symbol(q)] if q.get("symbol") else list(self.m.symbols)
            status = q.get("status")
            out = []
            for s in syms:
                spec = self._spec(s)
                tick = fmt(spec.tick_size, spec.price_precision)
                step = fmt(spec.step_size, decimals(spec.step_size))
                launch = spec.onboard_ms if spec.onboard_ms is not None else 1584230400000
                if status not in (None, "", "Trading"):
                    continue
                out.append({
                    "symbol": s, "contractType": "LinearPerpetual", "status": "Trading",
                    "baseCoin": spec.base, "quoteCoin": "USDT", "launchTime": str(launch),
                    "deliveryTime": "0", "deliveryFeeRate": "",
                    "priceScale": str(spec.price_precision),
                    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                                       "leverageStep": "0.01"},
                    "priceFilter": {"minPrice": tick, "maxPrice": fmt(spec.tick_size * 2e7,
                                                                        spec.price_precision),
                                    "tickSize": tick},
                    "lotSizeFilter": {"maxOrderQty": "1500", "minOrderQty": step,
                                      "qtyStep": step, "postOnlyMaxOrderQty": "1500",
                                      "maxMktOrderQty": "150", "minNotionalValue": "5"},
                    "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT",
                    "copyTrading": "both", "upperFundingRate": "0.005",
                    "lowerFundingRate": "-0.005", "isPreListing": False,
                    "preListingInfo": None})
            return {"category": "linear", "list": out, "nextPageCursor": ""}
        return await self._rest(request, body)

    # -- tickers state -------------------------------------------------------------------

    def _live_fields(self, sym: str) -> dict:
        """The fields a tickers delta may carry, as strings, now."""
        mark, index = self._mark.get(sym) or self.m.mark_price(sym)[:2]
        last = self._last_trade.get(sym, mark)
        spec = self._spec(sym)
        oi, _ = self.m.open_interest(sym)
        single = self._qty(sym, oi)
        both = self._qty(sym, 2 * float(single))
        px = self._px
        return {"symbol": sym, "lastPrice": px(sym, last), "markPrice": px(sym, mark),
                "indexPrice": px(sym, index), "openInterest": both,
                "openInterestValue": fmt(2 * float(single) * mark, 2),
                "singleOpenInterest": single,
                "singleOpenInterestValue": fmt(float(single) * mark, 2),
                "bid1Price": px(sym, last - spec.tick_size), "ask1Price": px(sym, last)}

    def _snapshot(self, sym: str, now: int) -> dict:
        state = self._ticker.get(sym) or self._live_fields(sym)
        d = self.m.ticker_24h(sym)
        return {**state, "tickDirection": "ZeroPlusTick",
                "price24hPcnt": fmt(d["priceChangePercent"] / 100, 6),
                "prevPrice24h": self._px(sym, d["openPrice"]),
                "highPrice24h": self._px(sym, d["highPrice"]),
                "lowPrice24h": self._px(sym, d["lowPrice"]),
                "turnover24h": fmt(d["quoteVolume"], 4),
                "volume24h": self._qty(sym, d["volume"]), "fundingIntervalHour": "8",
                "fundingCap": "0.005", "nextFundingTime": str((now // (8 * 3600 * SEC) + 1)
                                                              * 8 * 3600 * SEC),
                "fundingRate": "0.0001", "bid1Size": "1.000", "ask1Size": "1.000",
                "preOpenPrice": "", "preQty": "", "curPreListingPhase": ""}

    # -- WebSocket -----------------------------------------------------------------------

    async def _ws(self, request: web.Request):
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws=ws, request=request, kind="bybit", combined=False,
                     opened_sim=self.x.now())
        self._ids[conn] = f"sim{id(conn):x}-bybit"
        self._conns.add(conn)
        conn.writer = asyncio.create_task(writer(conn))
        try:
            await self._reader(conn)
        finally:
            self._unsubscribe(conn, list(conn.subs))
            await wind_down(conn)
            self._conns.discard(conn)
            self._ids.pop(conn, None)
        return ws

    async def _reader(self, conn: Conn) -> None:
        while True:
            msg = await conn.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return
            conn.last_ping = time.monotonic()   # any client message keeps the socket open
            if msg.type == WSMsgType.TEXT:
                for text in self._request(conn, msg.data):
                    self.x.enqueue(conn, text, control=True)

    def _ack(self, conn, op, req_id, ok, ret_msg) -> str:
        return dumps({"success": ok, "ret_msg": ret_msg, "conn_id": self._ids.get(conn, ""),
                       "req_id": req_id, "op": op})

    def _request(self, conn: Conn, text: str) -> list[str]:
        try:
            req = json.loads(text)
        except ValueError:
            return [self._ack(conn, "", "", False, "error:request not json")]
        if not isinstance(req, dict):
            return [self._ack(conn, "", "", False, "error:request not json")]
        op, rid = req.get("op"), req.get("req_id", "")
        rid = rid if isinstance(rid, str) else str(rid)
        if op == "ping":
            return [self._ack(conn, "ping", rid, True, "pong")]
        if op not in ("subscribe", "unsubscribe"):
            return [self._ack(conn, str(op), rid, False, f"error:unknown op {op!r}")]
        args = req.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return [self._ack(conn, op, rid, False, "error:args must be a list of topics")]
        if op == "unsubscribe":
            self._unsubscribe(conn, args)
            return [self._ack(conn, op, rid, True, "")]
        bad, fresh = [], []
        for topic in args:
            head, _, sym = topic.rpartition(".")
            if head not in TOPICS or sym not in self.m.symbols:
                bad.append(f"handler not found,topic:{topic}")
            elif topic in conn.subs:
                bad.append(f"error:already subscribed,topic:{topic}")
            else:
                fresh.append(topic)
        if sum(len(t) for t in conn.subs + fresh) > MAX_ARGS_CHARS:
            return [self._ack(conn, op, rid, False, "error:args too long for one connection")]
        for topic in fresh:
            conn.subs.append(topic)
            self._index.setdefault(topic, set()).add(conn)
        out = [self._ack(conn, op, rid, not bad, ";".join(bad))]
        now = self.x.now()
        for topic in fresh:
            if topic.startswith("tickers."):  # deltas flow from here on, even after silence
                sym = topic[8:]
                self._ticker.setdefault(sym, self._live_fields(sym))
                if self.x.faults.silent:
                    continue
                out.append(self._frame({"topic": topic, "type": "snapshot",
                                        "data": self._snapshot(sym, now), "cs": self._cs,
                                        "ts": now}))
        return out

    def _unsubscribe(self, conn: Conn, topics) -> None:
        for t in topics:
            if t in conn.subs:
                conn.subs.remove(t)
        for t in unindex(self._index, conn, topics):
            if t.startswith("tickers."):  # the next subscriber starts afresh
                self._ticker.pop(t[8:], None)

    def _close(self, conn: Conn, code: int, msg: bytes = b"", abrupt: bool = False) -> None:
        self._unsubscribe(conn, list(conn.subs))
        self.x.close(conn, code, msg, abrupt=abrupt)

    def _frame(self, payload: dict) -> str:
        f = self.x.faults
        if f.extra_fields:
            payload = with_extra_fields(payload)
        text = dumps(payload)
        if f.malformed_rate or f.truncated_rate:
            text = self.x.damage(text)
        return text

    def _send(self, topic: str, payload: dict) -> None:
        subs = self._index.get(topic)
        if not subs:
            return
        text = self._frame(payload)
        for conn in list(subs):
            self.x.enqueue(conn, text)
            self.counters["frames"] += 1

    # -- the pump ------------------------------------------------------------------------

    def on_events(self, events, now: int) -> None:
        if not self._index:  # nobody listens: skip the shaping (the Binance-only case)
            self._liqs.clear()
            self._liq_window.clear()
            self._forming.clear()
            self._housekeeping()
            return
        view = self.m.view_event
        trades: dict[str, list] = {}
        klines: dict[str, list] = {}
        for ev in events:
            kind, sym = ev[0], ev[1]
            if kind == "trade":
                _, _, ms, agg, price, qty, taker_buy = view(ev)[:7]
                self._last_trade[sym] = price
                trades.setdefault(sym, []).append((ms, agg, price, qty, taker_buy))
            elif kind == "mark":
                _, _, _ms, mark, index = view(ev)[:5]
                self._mark[sym] = (mark, index)
            elif kind == "kline":
                _, _, ms, row, closed = view(ev)[:5]
                if closed:
                    klines.setdefault(sym, []).append((row, True))
                    self._forming.pop(sym, None)
                else:
                    self._forming[sym] = row
            elif kind == "liquidation":
                _, _, ms, side, qty, limit_px, _avg = view(ev)[:7]
                w = ms // LIQ_WINDOW
                if self._liq_window.get(sym, w) != w:
                    self._flush_liqs(sym)
                self._liq_window[sym] = w
                self._liqs.setdefault(sym, []).append((ms, side, qty, limit_px))
        silent = self.x.faults.silent
        if not silent:
            for sym, rows in trades.items():
                self._push_trades(sym, rows, now)
            self._push_klines(klines, now)
            self._push_tickers(now)
        for sym, w in list(self._liq_window.items()):
            if now >= (w + 1) * LIQ_WINDOW:
                self._flush_liqs(sym, silent)
        self._housekeeping()

    def _push_trades(self, sym: str, rows: list, now: int) -> None:
        topic = "publicTrade." + sym
        if topic not in self._index:
            return
        data = []
        for ms, agg, price, qty, taker_buy in rows:
            data.append({"T": ms, "s": sym, "S": "Buy" if taker_buy else "Sell",
                         "v": self._qty(sym, qty), "p": self._px(sym, price), "L": "ZeroPlusTick",
                         "i": f"00000000-0000-5000-8000-{agg:012x}", "BT": False, "RPI": False,
                         "seq": agg})
        for i in range(0, len(data), TRADES_PER_MSG):
            chunk = data[i:i + TRADES_PER_MSG]
            self._send(topic, {"topic": topic, "type": "snapshot", "ts": chunk[-1]["T"] + 1,
                               "data": chunk})

    def _candle(self, sym: str, row, closed: bool, ts: int) -> dict:
        px = self._px
        t = int(row[0])
        return {"start": t, "end": t + MIN - 1, "interval": "1", "open": px(sym, row[1]),
                "close": px(sym, row[4]), "high": px(sym, row[2]), "low": px(sym, row[3]),
                "volume": self._qty(sym, row[5]), "turnover": fmt(row[7], 4),
                "confirm": closed, "timestamp": ts}

    def _push_klines(self, closed: dict, now: int) -> None:
        for sym in set(closed) | set(self._forming):
            topic = "kline.1." + sym
            if topic not in self._index:
                self._forming.pop(sym, None)
                continue
            data = [self._candle(sym, row, True, now) for row, _ in closed.get(sym, ())]
            row = self._forming.get(sym)
            if data and (row is None or row[0] <= closed[sym][-1][0][0]):
                # the minute turned with no trade yet: the new candle opens at the close
                last = closed[sym][-1][0]
                c = last[4]
                row = [last[0] + MIN, c, c, c, c, 0.0, last[0] + 2 * MIN - 1, 0.0, 0, 0.0, 0.0]
            if row is None or (not data and now - self._kline_at.get(sym, -KLINE_EVERY)
                               < KLINE_EVERY):
                continue
            data.append(self._candle(sym, row, False, now))
            self._forming.pop(sym, None)
            self._kline_at[sym] = now
            self._send(topic, {"topic": topic, "data": data, "ts": now, "type": "snapshot"})

    def _push_tickers(self, now: int) -> None:
        for sym, old in list(self._ticker.items()):
            if now - self._ticker_at.get(sym, -TICKER_EVERY) < TICKER_EVERY:
                continue
            new = self._live_fields(sym)
            delta = {k: v for k, v in new.items() if old.get(k) != v}
            if not delta:
                continue
            old.update(delta)
            self._ticker_at[sym] = now
            self._cs += 1
            topic = "tickers." + sym
            self._send(topic, {"topic": topic, "type": "delta", "data": {"symbol": sym, **delta},
                               "cs": self._cs, "ts": now})

    def _flush_liqs(self, sym: str, silent: bool = False) -> None:
        w = self._liq_window.pop(sym, None)
        rows = self._liqs.pop(sym, [])
        topic = "allLiquidation." + sym
        if silent or not rows or topic not in self._index:
            return
        data = [{"T": ms, "s": sym, "S": "Buy" if side == "SELL" else "Sell",  # position side
                 "v": self._qty(sym, qty), "p": self._px(sym, price)}
                for ms, side, qty, price in rows]
        self._send(topic, {"topic": topic, "type": "snapshot", "ts": (w + 1) * LIQ_WINDOW,
                           "data": data})

    def _housekeeping(self) -> None:
        f = self.x.faults
        wall = time.monotonic()
        drop = self._drop_clock.due(f.drop_every_s, wall)
        for conn in list(self._conns):
            if conn.closing:
                continue
            if drop:
                self.counters["fault_drops"] += 1
                self._close(conn, WSCloseCode.GOING_AWAY, b"", abrupt=f.drop_abrupt)
            elif wall - conn.last_ping >= self.idle_cut_s:
                self.counters["idle_cuts"] += 1
                self._close(conn, WSCloseCode.GOING_AWAY, b"no ping")

