"""OKX v5 (linear perpetual swaps) served from the simulated market, on the exchange's port.

``Protocol(exchange, venue_market)`` is loaded by ``SimExchange`` (see ``venues.py``): REST under
``/api/v5/...`` and WebSockets on ``/ws/v5/public`` and ``/ws/v5/business``, shaped as OKX
shapes them (PROTOCOLS.md §3 and §5):

* sizes are **contracts**: the market's base quantities ÷ ``ctVal``, rounded to ``lotSz``
  (at least one lot); prices are rounded to ``tickSz`` (the venue's basis puts them off tick);
* the envelope ``{"code": "0", "msg": "", "data": [...]}``; errors keep it with a non-"0" code
  (51001 unknown instrument, even with HTTP 200; 51000 bad parameter; 50011 rate limit with
  HTTP 429, also for the exchange's injected 429/418 bursts: OKX has no 418 bans);
* candles newest first, ``/market/candles`` only the latest 1,440 rows (limit ≤ 300),
  ``/market/history-candles`` older ones too (limit ≤ 100); the same for mark-price candles
  (``[ts, o, h, l, c, confirm]``, limit ≤ 100); ``after``/``before`` cursors;
  bars 1m…4H and the UTC-aligned 6Hutc/12Hutc/1Dutc (the UTC+8 ones are not simulated);
* per-instrument open-interest history (rubik, the latest 1,440 periods, newest first,
  ``end``/``begin`` = older/newer than, as the candles' ``after``/``before``);
* per-endpoint limits per IP over a sliding 2-second window (candles 40, history 20, rubik 5);
* WebSocket: ``{"op":"subscribe","args":[…]}`` answered with one ack per arg; a candle
  channel on /public (or a public channel on /business) is error 60018, which does not close
  the socket; the text ``ping`` gets the text ``pong``; a socket with no subscription, or
  with nothing sent for 30 s (wall), is closed with 4004;
* ``liquidation-orders`` by instType: every instrument (an inverse BTC-USD-SWAP one now and
  then, which clients must drop), ``bkPx`` the bankruptcy price (beyond the fill), posSide
  long/short or ``net``, and some pushes held back (late, hence out of order);
* ``notice()`` sends the 64008 service-upgrade notice; ``answer_pings = False`` makes a
  half-dead venue that no longer answers ``ping``; ``/replay/okx?count=N`` streams
  pre-rendered pushes at full speed (ingest benchmarks).

The exchange's ``faults`` apply as on the Binance side (drop, silent, slow, 429/418 bursts,
5xx, malformed, truncated, extra fields). Durations measured by the client's own timers (rate
windows, the 30 s idle close) are wall time; market data times are the simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import zlib
from collections import deque
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from . import replay as _replay
from ..feeds.venues import VENUES
from .faults import DropClock
from .protocol import SimProtocol
from .wire import close, decimals, dumps, fmt, unindex, with_extra_fields, writer

log = logging.getLogger(__name__)

from ..units import MINUTE as MIN, SECOND as SEC  # noqa: E402
# contract value (base per contract) as on OKX; others: 1
CT_VAL = {"BTC": 0.01, "ETH": 0.1, "SOL": 1.0, "BNB": 0.01, "XRP": 100.0, "DOGE": 1000.0,
          "NEW": 10.0}
LOT_SZ = 0.01
INVERSE = "BTC-USD-SWAP"          # listed, and on the liquidation channel, but never ours
INVERSE_CT_USD = 100.0
BARS = {"1m": MIN, "3m": 3 * MIN, "5m": 5 * MIN, "15m": 15 * MIN, "30m": 30 * MIN,
        "1H": 60 * MIN, "2H": 120 * MIN, "4H": 240 * MIN, "6Hutc": 360 * MIN,
        "12Hutc": 720 * MIN, "1Dutc": 1440 * MIN}
OI_PERIODS = {"5m": 5 * MIN, "15m": 15 * MIN, "30m": 30 * MIN, "1H": 60 * MIN,
              "2H": 120 * MIN, "4H": 240 * MIN, "6H": 360 * MIN, "12H": 720 * MIN,
              "1D": 1440 * MIN}
RECENT_ROWS = 1440                # /market/candles and rubik serve the latest 1,440 rows
LIMITS = {                        # path → (requests, per wall seconds) per IP
    "/api/v5/market/candles": (40, 2.0),
    "/api/v5/market/history-candles": (20, 2.0),
    "/api/v5/market/mark-price-candles": (20, 2.0),
    "/api/v5/market/history-mark-price-candles": (20, 2.0),
    "/api/v5/rubik/stat/contracts/open-interest-history": (5, 2.0),
    "/api/v5/public/open-interest": (20, 2.0),
    "/api/v5/public/mark-price": (10, 2.0),
    "/api/v5/public/instruments": (20, 2.0),
    "/api/v5/public/time": (10, 2.0),
}
PUBLIC = {"trades", "open-interest", "mark-price", "liquidation-orders"}
BUSINESS = {"candle1m"}
INST_TYPES = {"SWAP", "FUTURES", "MARGIN", "OPTION"}
IDLE_CLOSE_S = 30.0               # no subscription, or nothing sent: close 4004
OI_PUSH_EVERY = 3 * SEC           # open-interest channel cadence
CANDLE_PUSH_EVERY = 500           # forming candle1m pushes at most every 500 ms
BK_OFFSET = 0.004                 # bankruptcy price this far beyond the fill
LATE_SHARE = 0.25                 # liquidation pushes held back ...
LATE_MS = (5 * SEC, 60 * SEC)     # ... by this much (simulated)
INVERSE_SHARE = 0.3               # BTC liquidations that also bring an inverse one


class _Err(Exception):
    def __init__(self, code: str, msg: str, status: int = 200):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _body(data, code: str = "0", msg: str = "") -> str:
    return dumps({"code": code, "msg": msg, "data": data})


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    path: str                      # "public" | "business"
    opened: float                  # wall
    subs: set = field(default_factory=set)
    out: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_sent: float = field(default_factory=time.monotonic)
    closing: bool = False
    close_code: int = 1000
    close_msg: bytes = b""


class Protocol(SimProtocol):
    def __init__(self, exchange, venue_market):
        self.exchange = exchange
        self.vm = venue_market
        self.idle_close_s = IDLE_CLOSE_S
        self.answer_pings = True      # False: a half-dead connection (tests the pong timeout)
        self.max_queue = 20_000
        seed = getattr(exchange, "seed", 1)
        self._rng = random.Random(seed * 7919 + 5)
        self._seed = seed
        self._inst: dict = {}     # instId → (symbol, ctVal, tick, lot)
        self._by_sym: dict = {}   # symbol → instId
        self._inst_n = -1         # the market's symbol count they were built for
        self.counters = {"frames": 0, "rest_requests": 0, "rate_limited": 0, "fault_drops": 0,
                         "idle_closes": 0, "late_liquidations": 0, "dropped_clients": 0}
        self._conns: set[_Conn] = set()
        self._index: dict[tuple, set[_Conn]] = {}    # (channel, instId|instType) → conns
        self._hits: dict[tuple, deque] = {}          # (ip, path) → wall times
        self._late: list[tuple[int, dict]] = []      # held-back pushes: (due sim ms, payload)
        self._last_oi = -1
        self._last_candle: dict[str, int] = {}
        self._drop_clock = DropClock()
        self._replay: dict[int, list[str]] = {}

    # -- aiohttp ---------------------------------------------------------------------------

    # the market may gain symbols after the server starts (--demo builds them one by one)
    def _sync_inst(self) -> None:
        syms = self.vm.symbols
        if len(syms) != self._inst_n:
            name = VENUES["okx"].venue_symbol       # the registry's mapping: BTC-USDT-SWAP
            self._inst = {name(sym): (sym, CT_VAL.get(spec.base, 1.0), spec.tick_size, LOT_SZ)
                          for sym, spec in syms.items()}
            self._by_sym = {v[0]: k for k, v in self._inst.items()}
            self._inst_n = len(syms)

    @property
    def inst(self) -> dict:
        self._sync_inst()
        return self._inst

    @property
    def by_sym(self) -> dict:
        self._sync_inst()
        return self._by_sym

    def routes(self) -> list:
        r = [web.get(p, self._rest_handler(p, f)) for p, f in (
            ("/api/v5/public/time", self._time),
            ("/api/v5/public/instruments", self._instruments),
            ("/api/v5/market/candles", lambda q: self._candles(q, history=False)),
            ("/api/v5/market/history-candles", lambda q: self._candles(q, history=True)),
            ("/api/v5/market/mark-price-candles",
             lambda q: self._candles(q, history=False, mark=True)),
            ("/api/v5/market/history-mark-price-candles",
             lambda q: self._candles(q, history=True, mark=True)),
            ("/api/v5/public/open-interest", self._open_interest),
            ("/api/v5/rubik/stat/contracts/open-interest-history", self._oi_history),
            ("/api/v5/public/mark-price", self._mark_price),
        )]
        r += [web.get("/ws/v5/public", self._ws("public")),
              web.get("/ws/v5/business", self._ws("business")),
              web.get("/replay/okx", self._replay_ws)]
        return r

    async def stop(self) -> None:
        for conn in list(self._conns):
            self._close(conn, 1001, b"server shutdown")
        for _ in range(100):
            if not self._conns:
                break
            await asyncio.sleep(0.01)

    # -- helpers ---------------------------------------------------------------------------

    def _px(self, inst: str, p: float) -> str:
        tick = self.inst[inst][2]
        return fmt(round(p / tick) * tick, decimals(tick))

    def _contracts(self, inst: str, base: float, at_least_one: bool = True) -> float:
        _, ct, _, lot = self.inst[inst]
        n = round(base / ct / lot) * lot
        return max(lot, n) if at_least_one else n

    def _sz(self, inst: str, contracts: float) -> str:
        return fmt(contracts, decimals(self.inst[inst][3]))

    def _base(self, inst: str, contracts: float) -> str:
        _, ct, _, lot = self.inst[inst]
        return fmt(contracts * ct, decimals(ct * lot))

    def _inst_arg(self, q) -> str:
        inst = q.get("instId", "")
        if not inst:
            raise _Err("50014", "Parameter instId can not be empty.", 400)
        if inst not in self.inst:
            raise _Err("51001", "Instrument ID does not exist.")
        return inst

    @staticmethod
    def _int_arg(q, name: str) -> int | None:
        v = q.get(name)
        if v is None or v == "":
            return None
        if not v.isdigit():
            raise _Err("51000", f"Parameter {name} error", 400)
        return int(v)

    def _limit(self, q, top: int) -> int:
        """``limit``: 100 when absent, else 1..top."""
        limit = self._int_arg(q, "limit")
        if limit is None:
            return 100
        if not 1 <= limit <= top:
            raise _Err("51000", "Parameter limit error", 400)
        return limit

    # -- REST --------------------------------------------------------------------------------

    def _rest_handler(self, path: str, fn):
        async def handler(request: web.Request):
            ex = self.exchange
            f = ex.faults
            self.counters["rest_requests"] += 1
            if f.slow_ms:
                await asyncio.sleep(f.slow_ms / 1000.0)
            if f.http_5xx_rate and self._rng.random() < f.http_5xx_rate:
                if self._rng.random() < 0.3:   # gateways answer in HTML
                    return web.Response(status=502, text="<html><body><h1>502 Bad Gateway"
                                        "</h1></body></html>", content_type="text/html")
                return web.Response(status=503, text=_body(
                    [], "50001", "Service temporarily unavailable. Please try again later."),
                    content_type="application/json")
            if f.http_418_burst > 0 or f.http_429_burst > 0:
                if f.http_418_burst > 0:
                    f.http_418_burst -= 1
                else:
                    f.http_429_burst -= 1
                return self._too_many(f.retry_after_header())
            n, per = LIMITS[path]
            wall = time.monotonic()
            hits = self._hits.setdefault((request.remote or "?", path), deque())
            while hits and wall - hits[0] >= per:
                hits.popleft()
            if len(hits) >= n:
                self.counters["rate_limited"] += 1
                return self._too_many()
            hits.append(wall)
            try:
                data = fn(request.query)
            except _Err as e:
                return web.Response(status=e.status, text=_body([], e.code, e.msg),
                                    content_type="application/json")
            body = {"code": "0", "msg": "", "data": data}
            if f.extra_fields:
                body = with_extra_fields(body)
            return web.Response(text=dumps(body), content_type="application/json")
        return handler

    def _too_many(self, headers=None):
        return web.Response(status=429, text=_body([], "50011", "Too Many Requests"),
                            content_type="application/json", headers=headers)

    def _time(self, q) -> list:
        return [{"ts": str(self.exchange.now())}]

    def _instruments(self, q) -> list:
        if q.get("instType", "") != "SWAP":
            raise _Err("51000", "Parameter instType error", 400)
        want = q.get("instId")
        out = []
        for inst, (sym, ct, tick, lot) in self.inst.items():
            spec = self.vm.symbols[sym]
            base = inst.split("-")[0]
            listed = spec.onboard_ms if spec.onboard_ms is not None else 1611916828000
            out.append({
                "alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear",
                "ctVal": fmt(ct, decimals(ct)), "ctValCcy": base, "expTime": "",
                "instFamily": f"{base}-USDT", "instId": inst, "instType": "SWAP",
                "lever": "100", "listTime": str(listed), "lotSz": fmt(lot, decimals(lot)),
                "maxLmtSz": "100000000", "maxMktSz": "10000", "minSz": fmt(lot, decimals(lot)),
                "optType": "", "quoteCcy": "", "settleCcy": "USDT", "state": "live",
                "stk": "", "tickSz": fmt(tick, decimals(tick)), "uly": f"{base}-USDT"})
        out.append({
            "alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "inverse",
            "ctVal": "100", "ctValCcy": "USD", "expTime": "", "instFamily": "BTC-USD",
            "instId": INVERSE, "instType": "SWAP", "lever": "125",
            "listTime": "1611916828000", "lotSz": "1", "maxLmtSz": "100000000",
            "maxMktSz": "4000", "minSz": "1", "optType": "", "quoteCcy": "",
            "settleCcy": "BTC", "state": "live", "stk": "", "tickSz": "0.1", "uly": "BTC-USD"})
        if want:
            out = [d for d in out if d["instId"] == want]
            if not out:
                raise _Err("51001", "Instrument ID does not exist.")
        return out

    def _candles(self, q, history: bool, mark: bool = False) -> list:
        """Trade candles, or mark-price candles ``[ts, o, h, l, c, confirm]`` (``mark``);
        newest first; without ``history`` only the latest 1,440 rows."""
        inst = self._inst_arg(q)
        bar = q.get("bar", "1m")
        iv = BARS.get(bar)
        if iv is None:
            raise _Err("51000", "Parameter bar error", 400)
        limit = self._limit(q, 100 if history or mark else 300)
        after, before = self._int_arg(q, "after"), self._int_arg(q, "before")
        now = self.exchange.now()
        newest = now // iv * iv
        end = newest if after is None else min(newest, after - 1)
        sym, ct, tick, lot = self.inst[q["instId"]]
        fn = self.vm.mark_klines if mark else self.vm.klines
        rows = fn(sym, iv, end_ms=end, limit=limit) if end >= 0 else []
        oldest = None if history else newest - (RECENT_ROWS - 1) * iv
        out = []
        for r in reversed(rows):   # newest first
            t = int(r[0])
            if (before is not None and t <= before) or (oldest is not None and t < oldest):
                continue
            closed = t + iv <= now
            out.append([str(t), *(self._px(inst, x) for x in r[1:5]), "1" if closed else "0"]
                       if mark else self._candle_row(inst, r, closed))
        return out

    def _candle_row(self, inst: str, r, closed: bool) -> list:
        _, ct, tick, lot = self.inst[inst]
        pd, bd = decimals(tick), decimals(ct * lot)
        base = float(fmt(r[5], bd))
        return [str(int(r[0])), self._px(inst, r[1]), self._px(inst, r[2]),
                self._px(inst, r[3]), self._px(inst, r[4]),
                fmt(base / ct, decimals(lot) + 2), fmt(base, bd), fmt(r[7], pd + bd),
                "1" if closed else "0"]

    def _swaps(self, q) -> list[str]:
        """instType=SWAP (required) and an optional instId: the instruments asked for."""
        if q.get("instType", "") != "SWAP":
            raise _Err("51000", "Parameter instType error", 400)
        return [self._inst_arg(q)] if q.get("instId") else list(self.inst)

    def _open_interest(self, q) -> list:
        out = []
        for inst in self._swaps(q):
            sym = self.inst[inst][0]
            base, t = self.vm.open_interest(sym)
            out.append(self._oi_item(inst, base, t))
        return out

    def _oi_item(self, inst: str, base: float, t: int) -> dict:
        n = self._contracts(inst, base, at_least_one=False)
        mark = self.vm.mark_price(self.inst[inst][0])[0]
        ccy = self._base(inst, n)
        return {"instId": inst, "instType": "SWAP", "oi": self._sz(inst, n), "oiCcy": ccy,
                "oiUsd": fmt(float(ccy) * mark, 2), "ts": str(int(t))}

    def _oi_history(self, q) -> list:
        inst = self._inst_arg(q)
        period = q.get("period", "5m")
        per = OI_PERIODS.get(period)
        if per is None:
            raise _Err("51000", "Parameter period error", 400)
        limit = self._limit(q, 100)
        # as after/before of candles: end = older than ts, begin = newer than ts
        begin, end = self._int_arg(q, "begin"), self._int_arg(q, "end")
        now = self.exchange.now()
        newest = now // per * per
        hi = newest if end is None else min(newest, end - 1)
        oldest = newest - (RECENT_ROWS - 1) * per
        sym = self.inst[inst][0]
        rows = self.vm.open_interest_hist(sym, per, end_ms=hi, limit=limit)
        out = []
        for t, base, usd in reversed(rows):
            if t < oldest or (begin is not None and t <= begin):
                continue
            n = self._contracts(inst, base, at_least_one=False)
            ccy = self._base(inst, n)
            out.append([str(int(t)), self._sz(inst, n), ccy,
                        fmt(usd / base * float(ccy) if base else 0.0, 2)])
        return out

    def _mark_price(self, q) -> list:
        out = []
        for inst in self._swaps(q):
            mark, _, t = self.vm.mark_price(self.inst[inst][0])
            out.append({"instId": inst, "instType": "SWAP", "markPx": self._px(inst, mark),
                        "ts": str(int(t))})
        return out

    # -- WebSocket ---------------------------------------------------------------------------

    def _ws(self, path: str):
        async def handler(request: web.Request):
            ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
            await ws.prepare(request)
            conn = _Conn(ws, request, path, time.monotonic())
            self._conns.add(conn)
            task = asyncio.create_task(writer(conn))  # frames, then close
            try:
                async for msg in ws:
                    if msg.type == WSMsgType.TEXT:
                        self._on_text(conn, msg.data)
                    elif msg.type == WSMsgType.BINARY:
                        self._send(conn, dumps({"event": "error", "code": "60012",
                                                 "msg": "Invalid request"}), control=True)
            finally:
                self._unsubscribe_all(conn)
                conn.closing = True
                conn.wake.set()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2.0)
                if not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.close()
                self._conns.discard(conn)
            return ws
        return handler

    def _on_text(self, conn: _Conn, text: str) -> None:
        if text == "ping":   # keepalive: text, not JSON (answered even when "silent")
            if self.answer_pings:
                self._send(conn, "pong", control=True)
            return
        try:
            req = json.loads(text)
        except ValueError:
            req = None
        if not isinstance(req, dict) or req.get("op") not in ("subscribe", "unsubscribe") \
                or not isinstance(req.get("args"), list) or not req["args"]:
            self._send(conn, dumps({"event": "error", "code": "60012",
                                     "msg": f"Illegal request: {text[:200]}",
                                     "connId": self._conn_id(conn)}), control=True)
            return
        op = req["op"]
        for arg in req["args"]:          # one reply per arg
            key, err = self._check_arg(conn, arg)
            if err is not None:
                reply = {"event": "error", "code": "60018", "msg": err,
                         "connId": self._conn_id(conn)}
            else:
                if op == "subscribe":
                    conn.subs.add(key)
                    self._index.setdefault(key, set()).add(conn)
                else:
                    conn.subs.discard(key)
                    self._index.get(key, set()).discard(conn)
                reply = {"event": op, "arg": arg, "connId": self._conn_id(conn)}
            self._send(conn, dumps(reply), control=True)

    def _check_arg(self, conn: _Conn, arg) -> tuple[tuple | None, str | None]:
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            return None, f"Wrong URL or channel:{arg}, doesn't exist. Please use the correct " \
                         "URL, channel and parameters referring to API document."
        ch = arg["channel"]
        served = PUBLIC if conn.path == "public" else BUSINESS
        by_type = ch == "liquidation-orders"
        name = "instType" if by_type else "instId"
        target = arg.get(name)
        if ch not in served or not isinstance(target, str) or \
                target not in (INST_TYPES if by_type else self.inst):
            return None, (f"Wrong URL or channel:{ch},{name}:{target} doesn't exist. Please "
                          "use the correct URL, channel and parameters referring to API "
                          "document.")
        return (ch, target), None

    @staticmethod
    def _conn_id(conn: _Conn) -> str:
        return f"{id(conn) & 0xffffffff:08x}"

    def _unsubscribe_all(self, conn: _Conn) -> None:
        unindex(self._index, conn, conn.subs)
        conn.subs = set()

    def _send(self, conn: _Conn, text, control: bool = False) -> None:
        if conn.closing:
            return
        if not control and len(conn.out) >= self.max_queue:
            self.counters["dropped_clients"] += 1
            self._close(conn, 4030, b"Client too slow")
            return
        conn.out.append(text)
        conn.last_sent = time.monotonic()
        conn.wake.set()

    def _close(self, conn: _Conn, code: int, msg: bytes = b"", abrupt: bool = False) -> None:
        if not conn.closing:
            self._unsubscribe_all(conn)
        close(conn, code, msg, abrupt)   # after what is queued, or abrupt: no close frame

    def notice(self, code: str = "64008") -> int:
        """Tell every connection a service upgrade will close it (OKX sends this ~30 s
        ahead); returns how many were told."""
        text = dumps({"event": "notice", "code": code, "msg": "The connection will soon be "
                       "closed for a service upgrade. Please reconnect.", "connId": ""})
        conns = [c for c in self._conns if not c.closing]
        for conn in conns:
            self._send(conn, text, control=True)
        return len(conns)

    # -- replay: pre-rendered OKX frames at full speed (ingest benchmarks) -------------------

    async def prepare_replay(self, count: int) -> list[str]:
        """Render (once, cached) the frames ``/replay/okx?count=N`` sends."""
        if count not in self._replay:
            loop = asyncio.get_running_loop()
            frames = await loop.run_in_executor(None, lambda: render_replay(count,
                                                                           seed=self._seed))
            while len(self._replay) >= 2:   # keep the last two renders (warm-up and run)
                del self._replay[next(iter(self._replay))]
            self._replay[count] = frames
        return self._replay[count]

    async def _replay_ws(self, request: web.Request):
        try:
            count = int(request.query.get("count", "100000"))
        except ValueError:
            count = -1
        if not 1 <= count <= _replay.MAX_COUNT:
            return web.json_response({"error": f"count must be 1..{_replay.MAX_COUNT}"},
                                     status=400)
        frames = await self.prepare_replay(count)
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await _replay.push(ws, frames)
            await ws.close(code=1000, message=b"replay done")
        return ws

    # -- the pump ----------------------------------------------------------------------------

    def on_events(self, events, now: int) -> None:
        """Each tick: render the market's new events as OKX pushes, then keep connections."""
        frames: list[tuple[tuple, dict]] = []
        if not self._index:   # nobody subscribed: nothing to render (Binance-only runs)
            events = ()
            self._late.clear()
        for ev in events:
            inst = self.by_sym.get(ev[1])
            if inst is None:
                continue
            ev = self.vm.view_event(ev)
            kind = ev[0]
            if kind == "trade":
                _, sym, ms, tid, price, qty, taker_buy = ev[:7]
                key = ("trades", inst)
                if key in self._index:
                    frames.append((key, {"arg": {"channel": "trades", "instId": inst}, "data": [{
                        "instId": inst, "tradeId": str(tid), "px": self._px(inst, price),
                        "sz": self._sz(inst, self._contracts(inst, qty)),
                        "side": "buy" if taker_buy else "sell", "ts": str(ms),
                        "count": "1", "source": "0"}]}))
            elif kind == "mark":
                key = ("mark-price", inst)
                if key in self._index:
                    frames.append((key, {"arg": {"channel": "mark-price", "instId": inst},
                                         "data": [{"instId": inst, "instType": "SWAP",
                                                   "markPx": self._px(inst, ev[3]),
                                                   "ts": str(ev[2])}]}))
            elif kind == "kline":
                _, sym, ms, row, closed = ev[:5]
                key = ("candle1m", inst)
                last = self._last_candle.get(inst, -CANDLE_PUSH_EVERY)
                if key in self._index and (closed or ms - last >= CANDLE_PUSH_EVERY):
                    self._last_candle[inst] = ms
                    frames.append((key, {"arg": {"channel": "candle1m", "instId": inst},
                                         "data": [self._candle_row(inst, row, closed)]}))
            elif kind == "liquidation":
                self._liquidation(inst, ev, now, frames)
        if now // OI_PUSH_EVERY != self._last_oi:
            self._last_oi = now // OI_PUSH_EVERY
            for inst, (sym, *_) in self.inst.items():
                key = ("open-interest", inst)
                if key in self._index:
                    base, t = self.vm.open_interest(sym)
                    frames.append((key, {"arg": {"channel": "open-interest", "instId": inst},
                                         "data": [self._oi_item(inst, base, t)]}))
        if self._late:   # held-back liquidations that are due (dropped if nobody listens)
            due = [p for t, p in self._late if t <= now]
            if due:
                self._late = [x for x in self._late if x[0] > now]
                frames += [(("liquidation-orders", "SWAP"), p) for p in due]
        self._fan_out(frames)
        self._housekeeping()

    def _liquidation(self, inst: str, ev, now: int, frames: list) -> None:
        _, sym, ms, side, qty, price, avg = ev[:7]
        key = ("liquidation-orders", "SWAP")
        if key not in self._index:
            return
        h = zlib.crc32(f"{self._seed}:{sym}:{ms}:{qty}".encode()) / 2**32
        wiped_long = side == "SELL"
        pos = "net" if h < 0.3 else ("long" if wiped_long else "short")
        bk = avg * (1 - BK_OFFSET) if wiped_long else avg * (1 + BK_OFFSET)
        detail = {"bkLoss": "0", "bkPx": self._px(inst, bk), "ccy": "", "posSide": pos,
                  "side": "sell" if wiped_long else "buy",
                  "sz": self._sz(inst, self._contracts(inst, qty)), "ts": str(int(ms))}
        base = inst.split("-")[0]
        payload = {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [{
            "details": [detail], "instFamily": f"{base}-USDT", "instId": inst,
            "instType": "SWAP", "uly": f"{base}-USDT"}]}
        if h > 1 - LATE_SHARE:   # held back: arrives after newer ones
            self.counters["late_liquidations"] += 1
            delay = LATE_MS[0] + int((LATE_MS[1] - LATE_MS[0]) * (h - (1 - LATE_SHARE))
                                     / LATE_SHARE)
            self._late.append((ms + delay, payload))
        else:
            frames.append((key, payload))
        if base == "BTC" and h < INVERSE_SHARE:
            # coin-margined BTC-USD-SWAP on the same channel: contracts of 100 USD
            n = max(1, round(qty * avg / INVERSE_CT_USD))
            inv = dict(detail, sz=str(n), posSide="long" if wiped_long else "short",
                       ts=str(int(ms) + 1))
            frames.append((key, {"arg": payload["arg"], "data": [{
                "details": [inv], "instFamily": "BTC-USD", "instId": INVERSE,
                "instType": "SWAP", "uly": "BTC-USD"}]}))

    def _fan_out(self, frames) -> None:
        f = self.exchange.faults
        if f.silent or not frames:
            return
        for key, payload in frames:
            subs = self._index.get(key)
            if not subs:
                continue
            if f.extra_fields:
                payload = with_extra_fields(payload)
            text = dumps(payload)
            for conn in list(subs):
                t = self._damage(text) if (f.malformed_rate or f.truncated_rate) else text
                self._send(conn, t)
                self.counters["frames"] += 1

    def _damage(self, text: str) -> str:
        f, rng = self.exchange.faults, self._rng
        if f.truncated_rate and rng.random() < f.truncated_rate:
            return text[: rng.randrange(1, max(2, len(text) - 1))]
        if f.malformed_rate and rng.random() < f.malformed_rate:
            return rng.choice((
                text.replace('"', "'", 3),                                   # not JSON
                '{"arg":null,"data":[1,2,3]}',                               # wrong shape
                '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"px":null}]}',
                "\x00\xff garbage",
                "",
            ))
        return text

    def _housekeeping(self) -> None:
        """The drop fault and OKX's 30 s rule (no subscription, or nothing sent)."""
        f = self.exchange.faults
        wall = time.monotonic()
        drop = self._drop_clock.due(f.drop_every_s, wall)
        for conn in list(self._conns):
            if conn.closing:
                continue
            if drop:
                self.counters["fault_drops"] += 1
                self._close(conn, 1001, b"", abrupt=f.drop_abrupt)
            elif (not conn.subs and wall - conn.opened >= self.idle_close_s) or \
                    wall - conn.last_sent >= self.idle_close_s:
                self.counters["idle_closes"] += 1
                self._close(conn, 4004, b"No data received in 30s.")


def render_replay(count: int, *, seed: int = 1) -> list[str]:
    """The Binance replay's busy market (``replay.render_frames``: 80 % trades, 10 % forming
    1m candles, 10 % mark prices over BTC, ETH and SOL) as OKX pushes: sizes in contracts of
    the venue's ctVal, the same key order and string formats as the live channels."""
    out = []
    for raw in _replay.render_frames(count, seed=seed, combined=False):
        d = json.loads(raw)
        e, sym = d["e"], d["s"]
        base = sym[:-4]
        inst = f"{base}-USDT-SWAP"
        ct = CT_VAL.get(base, 1.0)
        if e == "aggTrade":
            out.append(dumps({"arg": {"channel": "trades", "instId": inst}, "data": [{
                "instId": inst, "tradeId": str(d["a"]), "px": d["p"],
                "sz": fmt(float(d["q"]) / ct, 3), "side": "sell" if d["m"] else "buy",
                "ts": str(d["T"]), "count": "1", "source": "0"}]}))
        elif e == "kline":
            k = d["k"]
            out.append(dumps({"arg": {"channel": "candle1m", "instId": inst}, "data": [[
                str(k["t"]), k["o"], k["h"], k["l"], k["c"], fmt(float(k["v"]) / ct, 3),
                k["v"], k["q"], "1" if k["x"] else "0"]]}))
        else:
            out.append(dumps({"arg": {"channel": "mark-price", "instId": inst}, "data": [{
                "instId": inst, "instType": "SWAP", "markPx": d["p"], "ts": str(d["E"])}]}))
    return out
