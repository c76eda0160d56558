"""Binance USDⓈ-M (REST and WebSocket) on the simulated exchange's port.

The ``Protocol`` serves a ``liqtui.sim.market.Market`` the way fapi.binance.com
and fstream.binance.com serve the real market, for what liqtui uses: the same paths, parameters,
limits, error bodies, headers, payload shapes (strings vs numbers, key order), stream throttles
and connection rules, so a client that passes against the sim does not fail against the venue.
Wire reference: ``../shared/design/PROTOCOLS.md`` §1 and §5; contract: ``docs/sim-and-feeds.md``.

Clocks: everything the venue measures in time (request-weight minutes, the 5-minute
openInterestHist window, bans, the 24 h connection life, server pings) runs on the market's
*simulated* clock, so a fast ``time_scale`` shows minutes of venue behaviour in seconds. Values
sent to clients as durations (``Retry-After``) are converted to wall seconds (at least 1), so a
client that obeys them waits briefly in tests. Rates a client controls with its own timers (10
incoming WS messages a second) and transport timeouts are in wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from ..units import DAY, HOUR, MINUTE as MIN, SECOND as SEC
from . import replay as _replay
from .faults import DropClock
from .protocol import SimProtocol
from .wire import (
    PING,
    Conn,
    decimals,
    dumps,
    fmt,
    http_5xx,
    unindex,
    wall_seconds,
    wind_down,
    with_extra_fields,
    writer,
)

# The kline interval enum of /fapi/v1/klines. "1s" and "1M" (calendar month) are in the venue's
# enum too, but the simulated market serves fixed multiples of a minute only (see the report).
KLINE_INTERVALS = {
    "1m": MIN, "3m": 3 * MIN, "5m": 5 * MIN, "15m": 15 * MIN, "30m": 30 * MIN,
    "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR, "6h": 6 * HOUR, "8h": 8 * HOUR,
    "12h": 12 * HOUR, "1d": DAY, "3d": 3 * DAY, "1w": 7 * DAY,
}
OI_PERIODS = {
    "5m": 5 * MIN, "15m": 15 * MIN, "30m": 30 * MIN, "1h": HOUR, "2h": 2 * HOUR,
    "4h": 4 * HOUR, "6h": 6 * HOUR, "12h": 12 * HOUR, "1d": DAY,
}

WEIGHT_LIMIT_1M = 2400            # REQUEST_WEIGHT per IP per minute
OI_HIST_LIMIT = 1000              # openInterestHist requests per IP ...
OI_HIST_WINDOW = 5 * MIN          # ... per 5 minutes
OI_HIST_DEPTH = 30 * DAY          # startTime older than this: HTTP 400
BAN_FIRST = 2 * MIN               # 418 bans grow from 2 min ...
BAN_MAX = 3 * DAY                 # ... to 3 days for repeat offenders

WS_MAX_STREAMS = 1024             # streams per connection
WS_MAX_MSGS_PER_S = 10            # incoming messages per connection per second
WS_LIFETIME = DAY                 # the server drops a connection at 24 h
WS_PING_EVERY = 3 * MIN           # server ping frames ...
WS_PONG_TIMEOUT = 10 * MIN        # ... and how long it waits for a pong
KLINE_THROTTLE = 250              # <sym>@kline_<i> pushes at most every ~250 ms
FORCE_WINDOW = SEC                # forceOrder: the latest liquidation per symbol per second

# Real error bodies (code, message) of fapi.binance.com.
E_TOO_MANY = -1003
E_ILLEGAL = -1100
E_MANDATORY = -1102
E_NOT_READ = -1104
E_BAD_INTERVAL = -1120
E_BAD_SYMBOL = -1121
E_BAD_PARAM = -1130
E_START_AFTER_END = -1023
E_INTERNAL = -1001

# Funding: premium plus clamp(interest − premium, ±0.05 %), every 8 h, as the venue computes it.
INTEREST_RATE = 0.0001
FUNDING_EVERY = 8 * HOUR

# COIN-M symbols appear on the USDⓈ-M all-market liquidation stream since the 2026-06-30 CM-UM
# integration (quantities in contracts, not base). Contract sizes in USD per contract.
COINM_CONTRACT_USD = {"BTC": 100.0}
COINM_CONTRACT_USD_DEFAULT = 10.0

LONG_LISTED_ONBOARD = 1569398400000   # BTCUSDT's real onboardDate, for symbols listed long ago
_TRADE_ID_OFFSET = 1_000_000_000  # trade ids (f, l, kline f/L) differ from aggregate ids (a)


class ApiError(Exception):
    """A REST error with the venue's body ``{"code": …, "msg": …}``."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


# ------------------------------------------------------------------------------------------
# Rate limits (per IP, on the simulated clock)


@dataclass
class _IpState:
    minute: int = -1
    used: int = 0                 # weight used in the current minute
    limited_until: int = 0        # after a 429: any weighted request before this → ban
    oih_window: int = -1
    oih_count: int = 0
    oih_limited_until: int = 0
    banned_until: int = 0
    bans: int = 0


class _Limits:
    def __init__(self):
        self.ips: dict[str, _IpState] = {}

    def state(self, ip: str, now: int) -> _IpState:
        st = self.ips.setdefault(ip, _IpState())
        if now // MIN != st.minute:      # fixed calendar minutes, like the venue
            st.minute, st.used = now // MIN, 0
        if now // OI_HIST_WINDOW != st.oih_window:
            st.oih_window, st.oih_count = now // OI_HIST_WINDOW, 0
        return st

    def admit(self, ip: str, weight: int, now: int, oi_hist: bool) -> tuple[int, str, int] | None:
        """None if admitted (and charged); else (status, msg, retry_after_sim_ms)."""
        st = self.state(ip, now)
        if now < st.banned_until:
            return 418, _ban_msg(st.banned_until), st.banned_until - now
        limited = st.oih_limited_until if oi_hist else st.limited_until
        if now < limited and (oi_hist or weight > 0):
            # continuing after a 429 before Retry-After passed: the venue bans the IP
            st.bans += 1
            st.banned_until = now + min(BAN_FIRST * 2 ** (st.bans - 1), BAN_MAX)
            return 418, _ban_msg(st.banned_until), st.banned_until - now
        if oi_hist:
            if st.oih_count + 1 > OI_HIST_LIMIT:
                st.oih_limited_until = (st.oih_window + 1) * OI_HIST_WINDOW
                msg = (f"Too many requests; current limit of IP({ip}) is {OI_HIST_LIMIT} requests "
                       "per 5 minutes. Please use the websocket for live updates to avoid polling "
                       "the API.")
                return 429, msg, st.oih_limited_until - now
            st.oih_count += 1
        if st.used + weight > WEIGHT_LIMIT_1M:
            st.limited_until = (st.minute + 1) * MIN
            msg = (f"Too many requests; current limit of IP({ip}) is {WEIGHT_LIMIT_1M} requests "
                   "per minute. Please use the websocket for live updates to avoid polling the API.")
            return 429, msg, st.limited_until - now
        st.used += weight
        return None


def _ban_msg(until_ms: int) -> str:
    return (f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use the websocket for live updates to avoid bans.")


def _kline_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class Protocol(SimProtocol):
    """Binance USDⓈ-M's protocol server for ``SimExchange`` (``liqtui.sim.protocol``).

    Binance's shape is the identity, so ``market`` is the bare ``Market``. The exchange's
    ``coinm_share``: share of USDⓈ-M liquidation snapshots that also bring a COIN-M one on
    ``!forceOrder@arr`` (the venue does this since mid-2026; 0 turns it off).
    """

    def __init__(self, exchange, market):
        self.x = exchange
        self.market = market
        self.counters = exchange.counters      # Binance's counters are the exchange's
        self._limits = _Limits()
        self._conns: set[Conn] = set()
        self._index: dict[str, set[Conn]] = {}     # stream → live subscribers
        self._replay_cache: dict[tuple[int, bool], list[str]] = {}
        self._replay_tasks: set[asyncio.Task] = set()
        # per-symbol stream state
        self._kline_ids: dict[str, list[int]] = {}    # sym → [bar_open, first_id, last_id]
        self._kline_last_push: dict[str, int] = {}
        self._kline_pending: dict[str, tuple] = {}    # throttled forming bar, sent later
        self._force_pending: dict[str, tuple] = {}    # sym → (window, latest liquidation)
        self._drop_clock = DropClock()

    def routes(self) -> list:
        out = [
            web.get("/fapi/v1/ping", self._ping),
            web.get("/fapi/v1/time", self._time),
            web.get("/fapi/v1/exchangeInfo", self._exchange_info),
            web.get("/fapi/v1/klines", self._klines),
            web.get("/fapi/v1/markPriceKlines", self._mark_klines),
            web.get("/fapi/v1/openInterest", self._open_interest),
            web.get("/futures/data/openInterestHist", self._open_interest_hist),
            web.get("/fapi/v1/premiumIndex", self._premium_index),
            web.get("/fapi/v1/ticker/24hr", self._ticker_24h),
            web.get("/replay/stream", self._replay_ws),
            web.get("/replay/ws", self._replay_ws),
        ]
        for prefix, kind in (("/market", "market"), ("/public", "public"), ("", "legacy")):
            out += [web.get(prefix + "/stream", self._ws_handler(kind, combined=True)),
                    web.get(prefix + "/ws", self._ws_handler(kind, combined=False)),
                    web.get(prefix + "/ws/{streams:.+}", self._ws_handler(kind, combined=False))]
        return out

    def on_events(self, events, now: int) -> None:
        self._fan_out(self._render(events, now))
        self._housekeeping(now)

    async def stop(self) -> None:
        for task in list(self._replay_tasks):
            task.cancel()
        for conn in list(self._conns):
            self.x.close(conn, WSCloseCode.GOING_AWAY, b"server shutdown")
        # let handlers see their sockets close before the runner tears the server down
        for _ in range(100):
            if not self._conns and not self._replay_tasks:
                break
            await asyncio.sleep(0.01)

    # -- REST plumbing ---------------------------------------------------------------------

    async def _rest(self, request: web.Request, weight, body, *, oi_hist: bool = False):
        """Faults, then the per-IP limits, then ``body()``; every answer carries the weight header.

        ``weight`` may be a callable (klines: it depends on ``limit``) evaluated before the body,
        so a request the venue would reject for its parameters is still charged, as there.
        """
        self.counters["rest_requests"] += 1
        f = self.x.faults
        if f.slow_ms:
            await asyncio.sleep(f.slow_ms / 1000.0)
        ip = request.remote or "?"
        now = self.x.now()
        st = self._limits.state(ip, now)
        if f.http_5xx_rate and self.x.rng.random() < f.http_5xx_rate:
            return http_5xx(self.x.rng, st.used)
        if f.http_418_burst > 0:
            f.http_418_burst -= 1
            ban = BAN_FIRST
            retry = f.retry_after_header(wall_seconds(ban, self.x.time_scale))
            return self._error(418, E_TOO_MANY, _ban_msg(now + ban), st.used, retry)
        if f.http_429_burst > 0:
            f.http_429_burst -= 1
            retry = f.retry_after_header(wall_seconds(MIN - now % MIN, self.x.time_scale))
            msg = (f"Too many requests; current limit of IP({ip}) is {WEIGHT_LIMIT_1M} requests "
                   "per minute. Please use the websocket for live updates to avoid polling the API.")
            return self._error(429, E_TOO_MANY, msg, st.used, retry)
        try:
            w = weight(request) if callable(weight) else weight
        except ApiError:
            w = 1
        refused = self._limits.admit(ip, w, now, oi_hist)
        if refused is not None:
            status, msg, wait_ms = refused
            return self._error(status, E_TOO_MANY, msg, st.used,
                               wall_seconds(wait_ms, self.x.time_scale))
        try:
            data = body(request)
        except ApiError as e:
            return self._error(e.status, e.code, e.msg, st.used)
        if f.extra_fields:
            data = with_extra_fields(data)
        return web.Response(text=dumps(data), content_type="application/json",
                            headers={"X-MBX-USED-WEIGHT-1M": str(st.used)})

    @staticmethod
    def _error(status: int, code: int, msg: str, used: int, retry_after=None):
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if isinstance(retry_after, dict):  # an injected fault's header, as faults give it
            headers.update(retry_after)
        elif retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        return web.Response(status=status, text=dumps({"code": code, "msg": msg}),
                            content_type="application/json", headers=headers)

    # -- parameters ------------------------------------------------------------------------

    @staticmethod
    def _check_params(request, allowed: set[str]) -> None:
        extra = [k for k in request.query if k not in allowed]
        if extra:
            n_read = len([k for k in request.query if k in allowed])
            raise ApiError(E_NOT_READ, f"Not all sent parameters were read; read '{n_read}' "
                           f"parameter(s) but was sent '{len(request.query)}'.")

    @staticmethod
    def _mandatory(request, name: str) -> str:
        v = request.query.get(name, "")
        if not v:
            raise ApiError(E_MANDATORY, f"Mandatory parameter '{name}' was not sent, was "
                           "empty/null, or malformed.")
        return v

    @staticmethod
    def _int(request, name: str) -> int | None:
        v = request.query.get(name)
        if v is None or v == "":
            return None
        if not v.isdigit() or len(v) > 20:
            raise ApiError(E_ILLEGAL, f"Illegal characters found in parameter '{name}'; legal "
                           "range is '^[0-9]{1,20}$'.")
        return int(v)

    def _symbol(self, request, required: bool = True) -> str | None:
        sym = request.query.get("symbol")
        if not sym:
            if required:
                self._mandatory(request, "symbol")
            return None
        if sym not in self.market.symbols:   # exact, upper case, USDⓈ-M only
            raise ApiError(E_BAD_SYMBOL, "Invalid symbol.")
        return sym

    def _limit(self, request, default: int, maximum: int) -> int:
        limit = self._int(request, "limit")
        if limit is None:
            return default
        if not 1 <= limit <= maximum:
            raise ApiError(E_BAD_PARAM, "Data sent for parameter 'limit' is not valid.")
        return limit

    def _span(self, request) -> tuple[int | None, int | None]:
        start, end = self._int(request, "startTime"), self._int(request, "endTime")
        if start is not None and end is not None and start > end:
            raise ApiError(E_START_AFTER_END, "Start time is greater than end time.")
        return start, end

    def _spec(self, sym: str):
        return self.market.symbols[sym]

    def _pp(self, sym: str) -> int:
        return int(self._spec(sym).price_precision)

    def _qp(self, sym: str) -> int:
        return int(self._spec(sym).qty_precision)

    # -- REST endpoints --------------------------------------------------------------------

    async def _ping(self, request):
        return await self._rest(request, 1, lambda r: {})

    async def _time(self, request):
        return await self._rest(request, 1, lambda r: {"serverTime": self.x.now()})

    async def _exchange_info(self, request):
        return await self._rest(request, 1, self._exchange_info_body)

    def _exchange_info_body(self, request) -> dict:
        self._check_params(request, set())
        symbols = []
        for sym, spec in self.market.symbols.items():
            pp, qp = int(spec.price_precision), int(spec.qty_precision)
            tick = fmt(spec.tick_size, decimals(spec.tick_size))
            step = fmt(spec.step_size, decimals(spec.step_size))
            symbols.append({
                "symbol": sym, "pair": sym, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": int(spec.onboard_ms if spec.onboard_ms is not None
                                   else LONG_LISTED_ONBOARD),
                "status": "TRADING", "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000", "baseAsset": spec.base, "quoteAsset": "USDT",
                "marginAsset": "USDT", "pricePrecision": pp, "quantityPrecision": qp,
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {"minPrice": tick, "maxPrice": fmt(spec.tick_size * 1e7, decimals(spec.tick_size)),
                     "filterType": "PRICE_FILTER", "tickSize": tick},
                    {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": "1000000",
                     "minQty": step},
                    {"stepSize": step, "filterType": "MARKET_LOT_SIZE", "maxQty": "100000",
                     "minQty": step},
                    {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
                    {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
                    {"notional": "100", "filterType": "MIN_NOTIONAL"},
                    {"multiplierDown": "0.9500", "multiplierUp": "1.0500",
                     "multiplierDecimal": "4", "filterType": "PERCENT_PRICE"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                               "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                "permissionSet": ["GRID", "COPY"],
            })
        return {
            "timezone": "UTC", "serverTime": self.x.now(), "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": WEIGHT_LIMIT_1M},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        }

    def _kline_request_weight(self, request) -> int:
        return _kline_weight(self._limit(request, 500, 1500))

    async def _klines(self, request):
        return await self._rest(request, self._kline_request_weight,
                                lambda r: self._klines_body(r, mark=False))

    async def _mark_klines(self, request):
        return await self._rest(request, self._kline_request_weight,
                                lambda r: self._klines_body(r, mark=True))

    def _klines_body(self, request, mark: bool) -> list:
        self._check_params(request, {"symbol", "interval", "startTime", "endTime", "limit"})
        sym = self._symbol(request)
        interval = self._mandatory(request, "interval")
        if interval not in KLINE_INTERVALS:
            raise ApiError(E_BAD_INTERVAL, "Invalid interval.")
        limit = self._limit(request, 500, 1500)
        start, end = self._span(request)
        fn = self.market.mark_klines if mark else self.market.klines
        rows = fn(sym, KLINE_INTERVALS[interval], start_ms=start, end_ms=end, limit=limit)
        pp, qp = self._pp(sym), self._qp(sym)
        if mark:
            # the venue's markPriceKlines: prices to 8 decimals, volumes "0", the count field
            # holds the number of mark updates (seconds) in the bar
            return [[int(r[0]), fmt(r[1], 8), fmt(r[2], 8), fmt(r[3], 8), fmt(r[4], 8), "0",
                     int(r[6]), "0", int(r[8]), "0", "0", "0"] for r in rows[-limit:]]
        qq = pp + qp   # quote volume decimals: price decimals + quantity decimals, as the venue
        return [[int(r[0]), fmt(r[1], pp), fmt(r[2], pp), fmt(r[3], pp), fmt(r[4], pp),
                 fmt(r[5], qp), int(r[6]), fmt(r[7], qq), int(r[8]), fmt(r[9], qp),
                 fmt(r[10], qq), "0"] for r in rows[-limit:]]

    async def _open_interest(self, request):
        def body(r):
            self._check_params(r, {"symbol"})
            sym = self._symbol(r)
            oi, t = self.market.open_interest(sym)
            return {"symbol": sym, "openInterest": fmt(oi, self._qp(sym)), "time": int(t)}
        return await self._rest(request, 1, body)

    async def _open_interest_hist(self, request):
        return await self._rest(request, 0, self._oi_hist_body, oi_hist=True)

    def _oi_hist_body(self, request) -> list:
        self._check_params(request, {"symbol", "period", "startTime", "endTime", "limit"})
        sym = self._symbol(request)
        period = self._mandatory(request, "period")
        if period not in OI_PERIODS:
            raise ApiError(E_BAD_PARAM, "Data sent for parameter 'period' is not valid.")
        limit = self._limit(request, 30, 500)
        start, end = self._span(request)
        now = self.x.now()
        if start is not None and start < now - OI_HIST_DEPTH:
            # only the latest ~30 days exist; the venue answers an older startTime with a 400
            raise ApiError(E_BAD_PARAM, "Data sent for parameter 'startTime' is not valid.")
        rows = self.market.open_interest_hist(sym, OI_PERIODS[period], start_ms=start,
                                              end_ms=end, limit=limit)
        oldest = now - OI_HIST_DEPTH
        supply = _circulating_supply(self._spec(sym).base)
        return [{"symbol": sym, "sumOpenInterest": fmt(base, 8),
                 "sumOpenInterestValue": fmt(usd, 8), "CMCCirculatingSupply": supply,
                 "timestamp": int(t)}          # a JSON number, as live captures show
                for t, base, usd in rows[-limit:] if t >= oldest]

    async def _premium_index(self, request):
        one = bool(request.query.get("symbol"))

        def body(r):
            self._check_params(r, {"symbol"})
            sym = self._symbol(r, required=False)
            if sym is not None:
                return self._premium(sym)
            return [self._premium(s) for s in self.market.symbols]
        return await self._rest(request, 1 if one else 10, body)

    def _premium(self, sym: str) -> dict:
        mark, index, t = self.market.mark_price(sym)
        return {"symbol": sym, "markPrice": fmt(mark, 8), "indexPrice": fmt(index, 8),
                "estimatedSettlePrice": fmt(index, 8),
                "lastFundingRate": fmt(_funding_rate(mark, index), 8),
                "interestRate": fmt(INTEREST_RATE, 8),
                "nextFundingTime": (int(t) // FUNDING_EVERY + 1) * FUNDING_EVERY, "time": int(t)}

    async def _ticker_24h(self, request):
        one = bool(request.query.get("symbol"))

        def body(r):
            self._check_params(r, {"symbol"})
            sym = self._symbol(r, required=False)
            if sym is not None:
                return self._ticker(sym)
            return [self._ticker(s) for s in self.market.symbols]
        return await self._rest(request, 1 if one else 40, body)

    def _ticker(self, sym: str) -> dict:
        t = self.market.ticker_24h(sym)
        pp, qp = self._pp(sym), self._qp(sym)
        price_keys = ("priceChange", "weightedAvgPrice", "lastPrice", "openPrice", "highPrice",
                      "lowPrice")
        out = {"symbol": sym}
        for key in ("priceChange", "priceChangePercent", "weightedAvgPrice", "lastPrice",
                    "lastQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
                    "openTime", "closeTime", "firstId", "lastId", "count"):
            v = t.get(key, 0)
            if key in price_keys:
                out[key] = fmt(float(v), pp)
            elif key == "priceChangePercent":
                out[key] = fmt(float(v), 3)
            elif key in ("lastQty", "volume"):
                out[key] = fmt(float(v), qp)
            elif key == "quoteVolume":
                out[key] = fmt(float(v), 2)
            else:
                out[key] = int(v)
        return out

    # -- WebSocket: connections and subscription methods -----------------------------------

    def _ws_handler(self, kind: str, combined: bool):
        async def handler(request: web.Request):
            if combined:
                raw = request.query.get("streams", "")
            else:
                raw = request.match_info.get("streams", "")
            streams = [s for s in raw.split("/") if s]
            if len(streams) > WS_MAX_STREAMS:
                return web.json_response({"code": E_BAD_PARAM, "msg": f"Too many streams: at "
                                          f"most {WS_MAX_STREAMS} per connection."}, status=400)
            # autoping off: we answer client pings ourselves, so they count toward the
            # 10-messages-a-second rule as on the venue, and pong timeouts run on our clock
            ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
            await ws.prepare(request)
            conn = Conn(ws=ws, request=request, kind=kind, combined=combined,
                        opened_sim=self.x.now(), release=self._release)
            self._conns.add(conn)
            self._subscribe(conn, streams)
            conn.writer = asyncio.create_task(writer(conn))
            try:
                await self._reader(conn)
            finally:
                self._unsubscribe(conn, list(conn.subs))
                await wind_down(conn)        # finishes a close handshake
                self._conns.discard(conn)    # last: stop() waits for this
            return ws
        return handler

    async def _reader(self, conn: Conn) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return
            if msg.type == WSMsgType.PONG:
                conn.ping_pending_since = None
                continue
            # every other incoming message (requests, client pings) counts toward the limit
            wall = time.monotonic()
            conn.msg_times.append(wall)
            while conn.msg_times and wall - conn.msg_times[0] > 1.0:
                conn.msg_times.popleft()
            if len(conn.msg_times) > WS_MAX_MSGS_PER_S:
                self.counters["rate_disconnects"] += 1
                self.x.close(conn, WSCloseCode.POLICY_VIOLATION, b"Too many messages")
                return
            if msg.type == WSMsgType.PING:
                with contextlib.suppress(Exception):
                    await ws.pong(msg.data)   # answered even when the socket is "silent"
            elif msg.type == WSMsgType.TEXT:
                reply = self._handle_request(conn, msg.data)
                if reply is not None:
                    self.x.enqueue(conn, dumps(reply), control=True)
            elif msg.type == WSMsgType.BINARY:
                self.x.enqueue(conn, dumps({"code": 3, "msg": "Invalid JSON: expected value at "
                                            "line 1 column 1"}), control=True)

    def _handle_request(self, conn: Conn, text: str) -> dict | None:
        """One incoming JSON request → its reply, as the venue words them."""
        try:
            req = json.loads(text)
        except ValueError as e:
            line, col = getattr(e, "lineno", 1), getattr(e, "colno", 1)
            return {"code": 3, "msg": f"Invalid JSON: expected value at line {line} column {col}"}
        if not isinstance(req, dict):
            return {"code": 2, "msg": "Invalid request: expected an object"}
        rid = req.get("id")
        if not (isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0):
            return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
        method = req.get("method")
        if method is None:
            return {"code": 2, "msg": "Invalid request: missing field `method`", "id": rid}
        params = req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return {"code": 2, "msg": "Invalid request: params must be an array of stream "
                        "names", "id": rid}
            if method == "SUBSCRIBE":
                new = [p for p in params if p not in conn.subs]
                if len(conn.subs) + len(set(new)) > WS_MAX_STREAMS:
                    return {"code": 2, "msg": f"Invalid request: too many streams (at most "
                            f"{WS_MAX_STREAMS} per connection)", "id": rid}
                self._subscribe(conn, new)
            else:
                self._unsubscribe(conn, params)
            return {"result": None, "id": rid}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(conn.subs), "id": rid}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or not isinstance(params[0], str):
                return {"code": 2, "msg": "Invalid request: property name must be a string",
                        "id": rid}
            if params[0] != "combined":
                return {"code": 0, "msg": "Unknown property", "id": rid}
            if method == "GET_PROPERTY":
                return {"result": conn.combined, "id": rid}
            if len(params) != 2 or not isinstance(params[1], bool):
                return {"code": 1, "msg": "Invalid value type: expected Boolean", "id": rid}
            conn.combined = params[1]
            return {"result": None, "id": rid}
        return {"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected one of "
                "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                "`GET_PROPERTY`", "id": rid}

    def _subscribe(self, conn: Conn, streams) -> None:
        for s in streams:
            if s in conn.subs:
                continue
            conn.subs.append(s)
            # Any name is acknowledged, as on the venue; unknown names simply never carry data.
            # Only /market sockets are indexed: legacy /ws, /stream and /public stay silent for
            # these streams, as fstream.binance.com has since 2026-04-23.
            if conn.kind == "market":
                self._index.setdefault(s, set()).add(conn)

    def _release(self, conn: Conn) -> None:
        """A connection the server closes: off the index first, so it gets no more frames."""
        self._unsubscribe(conn, list(conn.subs))

    def _unsubscribe(self, conn: Conn, streams) -> None:
        for s in streams:
            if s in conn.subs:
                conn.subs.remove(s)
        unindex(self._index, conn, streams)

    def _render(self, events, now: int) -> list[tuple[str, dict]]:
        """Live events → (stream, payload) in time order, applying the venue's throttles."""
        out: list[tuple[str, dict]] = []
        wanted = self._index
        for ev in events:
            kind, sym = ev[0], ev[1]
            s = sym.lower()
            if kind == "trade":
                _, _, ms, agg, price, qty, taker_buy = ev[:7]
                tid = agg + _TRADE_ID_OFFSET
                ids = self._kline_ids.get(sym)
                bar = ms - ms % MIN
                if ids is None or ids[0] != bar:
                    self._kline_ids[sym] = [bar, tid, tid]
                else:
                    ids[2] = tid
                stream = s + "@aggTrade"
                if stream in wanted:
                    q = fmt(qty, self._qp(sym))
                    out.append((stream, {"e": "aggTrade", "E": ms + 5, "a": agg, "s": sym,
                                         "p": fmt(price, self._pp(sym)), "q": q, "nq": q,
                                         "f": tid, "l": tid, "T": ms, "m": not taker_buy}))
            elif kind == "mark":
                _, _, ms, mark, index = ev[:5]
                one, three = s + "@markPrice@1s", s + "@markPrice"
                every3 = (ms // SEC) % 3 == 0
                if one in wanted or (every3 and three in wanted):
                    payload = {"e": "markPriceUpdate", "E": ms, "s": sym, "p": fmt(mark, 8),
                               "i": fmt(index, 8), "P": fmt(index, 8),
                               "r": fmt(_funding_rate(mark, index), 8),
                               "T": (ms // FUNDING_EVERY + 1) * FUNDING_EVERY}
                    if one in wanted:
                        out.append((one, payload))
                    if every3 and three in wanted:
                        out.append((three, payload))
            elif kind == "kline":
                _, _, ms, row, closed = ev[:5]
                last = self._kline_last_push.get(sym, -KLINE_THROTTLE)
                if closed or ms - last >= KLINE_THROTTLE:
                    self._kline_last_push[sym] = ms
                    self._kline_pending.pop(sym, None)
                    stream = s + "@kline_1m"
                    if stream in wanted:
                        out.append((stream, self._kline_payload(sym, ms, row, closed)))
                else:
                    self._kline_pending[sym] = (ms, row)   # newest forming state, sent later
            elif kind == "liquidation":
                _, _, ms, side, qty, price, avg = ev[:7]
                window = ms // FORCE_WINDOW
                prev = self._force_pending.get(sym)
                if prev is not None and prev[0] != window:
                    out.extend(self._force_frames(sym, prev))
                self._force_pending[sym] = (window, ms, side, qty, price, avg)
        # forming klines that the throttle held back, once their 250 ms have passed
        for sym, (ms, row) in list(self._kline_pending.items()):
            if now - self._kline_last_push.get(sym, 0) >= KLINE_THROTTLE:
                del self._kline_pending[sym]
                self._kline_last_push[sym] = now
                stream = sym.lower() + "@kline_1m"
                if stream in wanted:
                    out.append((stream, self._kline_payload(sym, now, row, False)))
        # liquidation windows that have ended: push the latest of each, one per symbol
        for sym, pending in list(self._force_pending.items()):
            if now >= (pending[0] + 1) * FORCE_WINDOW:
                del self._force_pending[sym]
                out.extend(self._force_frames(sym, pending))
        return out

    def _kline_payload(self, sym: str, ms: int, row, closed: bool) -> dict:
        pp, qp = self._pp(sym), self._qp(sym)
        t = int(row[0])
        ids = self._kline_ids.get(sym)
        first, last = (ids[1], ids[2]) if ids is not None and ids[0] == t else (-1, -1)
        return {"e": "kline", "E": int(ms), "s": sym, "k": {
            "t": t, "T": t + MIN - 1, "s": sym, "i": "1m", "f": first, "L": last,
            "o": fmt(row[1], pp), "c": fmt(row[4], pp), "h": fmt(row[2], pp),
            "l": fmt(row[3], pp), "v": fmt(row[5], qp), "n": int(row[8]), "x": bool(closed),
            "q": fmt(row[7], pp + qp), "V": fmt(row[9], qp), "Q": fmt(row[10], pp + qp),
            "B": "0"}}

    def _force_frames(self, sym: str, pending: tuple) -> list[tuple[str, dict]]:
        """The snapshot of a symbol's latest liquidation in one 1-second window."""
        window, ms, side, qty, price, avg = pending
        pp, qp = self._pp(sym), self._qp(sym)
        step = 10.0 ** -qp
        # the IOC order fills in a few pieces: l (last fill) ≤ z (filled); clients must use z
        last_fill = max(step, round(qty * (0.4 + (ms % 60) / 100.0) / step) * step)
        last_fill = min(last_fill, qty)
        emit = (window + 1) * FORCE_WINDOW + 55          # pushed just after the window ends
        payload = {"e": "forceOrder", "E": emit, "o": {
            "s": sym, "S": side, "o": "LIMIT", "f": "IOC", "q": fmt(qty, qp),
            "p": fmt(price, pp), "ap": fmt(avg, pp), "X": "FILLED", "l": fmt(last_fill, qp),
            "z": fmt(qty, qp), "T": int(ms), "ps": sym, "st": 1}}
        out = [(sym.lower() + "@forceOrder", payload), ("!forceOrder@arr", payload)]
        if self.x.coinm_share and "!forceOrder@arr" in self._index:
            # deterministic per (seed, symbol, window): a COIN-M liquidation on the same stream
            h = zlib.crc32(f"{self.x.seed}:{sym}:{window}".encode()) / 2**32
            if h < self.x.coinm_share:
                out.append(("!forceOrder@arr", self._coinm_payload(sym, window, ms, side, qty,
                                                                   price, avg, emit)))
        return out

    def _coinm_payload(self, sym, window, ms, side, qty, price, avg, emit) -> dict:
        base = self._spec(sym).base
        size = COINM_CONTRACT_USD.get(base, COINM_CONTRACT_USD_DEFAULT)
        contracts = str(max(1, round(qty * avg / size)))   # contracts, not base units
        pp = min(self._pp(sym), 2) if avg >= 1 else self._pp(sym)
        return {"e": "forceOrder", "E": emit + 3, "o": {
            "s": f"{base}USD_PERP", "S": side, "o": "LIMIT", "f": "IOC", "q": contracts,
            "p": fmt(price, pp), "ap": fmt(avg, pp), "X": "FILLED", "l": contracts,
            "z": contracts, "T": int(ms) + 1, "ps": f"{base}USD", "st": 1}}

    def _fan_out(self, frames: list[tuple[str, dict]]) -> None:
        f = self.x.faults
        if f.silent or not frames:
            return   # nothing on the wire; the market and the throttles keep running
        for stream, payload in frames:
            subs = self._index.get(stream)
            if not subs:
                continue
            if f.extra_fields:
                payload = with_extra_fields(payload)
            raw = dumps(payload)
            combined = None
            for conn in list(subs):
                if conn.combined:
                    if combined is None:
                        combined = f'{{"stream":"{stream}","data":{raw}}}'
                        if f.extra_fields:
                            combined = combined[:-1] + ',"sim_extra":{"n":1}}'
                    text = combined
                else:
                    text = raw
                if f.malformed_rate or f.truncated_rate:
                    text = self.x.damage(text)
                self.x.enqueue(conn, text)
                self.counters["frames"] += 1

    def _housekeeping(self, now: int) -> None:
        """Pings, pong timeouts, the 24 h cut and the drop fault."""
        wall = time.monotonic()
        scale = self.x.time_scale
        ping_every = WS_PING_EVERY / 1000.0 / scale
        # a floor on the pong wait: at high time scales a busy (but healthy) client on a
        # loaded machine must not be cut for answering a few hundred ms late
        pong_timeout = max(WS_PONG_TIMEOUT / 1000.0 / scale, 3.0)
        drop = self._drop_clock.due(self.x.faults.drop_every_s, wall)
        for conn in list(self._conns):
            if conn.closing:
                continue
            if drop:
                self.counters["fault_drops"] += 1
                self.x.close(conn, WSCloseCode.GOING_AWAY, b"", abrupt=self.x.faults.drop_abrupt)
            elif now - conn.opened_sim >= WS_LIFETIME:
                self.counters["lifetime_cuts"] += 1
                self.x.close(conn, WSCloseCode.GOING_AWAY, b"24h connection limit")
            elif conn.ping_pending_since is not None and \
                    wall - conn.ping_pending_since >= pong_timeout:
                self.x.close(conn, WSCloseCode.GOING_AWAY, b"Pong timeout")
            elif wall - conn.last_ping >= ping_every:
                conn.last_ping = wall
                if conn.ping_pending_since is None:
                    conn.ping_pending_since = wall
                self.x.enqueue(conn, PING, control=True)

    # -- replay: pre-rendered frames at full speed (ingest benchmarks) ----------------------

    async def prepare_replay(self, count: int, combined: bool = True) -> list[str]:
        """Render (once, cached) the frames a replay of ``count`` messages will send."""
        key = (count, combined)
        if key not in self._replay_cache:
            loop = asyncio.get_running_loop()
            frames = await loop.run_in_executor(
                None, lambda: _replay.render_frames(count, seed=self.x.seed, combined=combined))
            # a million frames hold ~300 MB of str objects: keep only the last two renders
            while len(self._replay_cache) >= 2:
                del self._replay_cache[next(iter(self._replay_cache))]
            self._replay_cache[key] = frames
        return self._replay_cache[key]

    async def _replay_ws(self, request: web.Request):
        try:
            count = int(request.query.get("count", "100000"))
        except ValueError:
            return web.json_response({"error": "count must be an integer"}, status=400)
        if not 1 <= count <= _replay.MAX_COUNT:
            return web.json_response({"error": f"count must be 1..{_replay.MAX_COUNT}"},
                                     status=400)
        combined = request.path.endswith("/stream")
        frames = await self.prepare_replay(count, combined)
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        task = asyncio.current_task()
        self._replay_tasks.add(task)
        try:
            await _replay.push(ws, frames)
            await ws.close(code=WSCloseCode.OK, message=b"replay done")
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._replay_tasks.discard(task)
        return ws


def _funding_rate(mark: float, index: float) -> float:
    premium = (mark - index) / index if index else 0.0
    rate = premium + min(max(INTEREST_RATE - premium, -0.0005), 0.0005)
    return min(max(rate, -0.02), 0.02)


_SUPPLY = {"BTC": 19_850_000.0, "ETH": 120_600_000.0, "SOL": 540_000_000.0}


def _circulating_supply(base: str) -> str:
    return fmt(_SUPPLY.get(base, 1_000_000_000.0), 8)
