"""Bybit v5 linear perpetuals: REST backfill and the live WebSocket feed.

``BybitRest`` pages klines, mark-price klines (both newest first, ≤ 1000 a page, each request
naming its whole window) and 5-minute open interest (≤ 200 a page, ``nextPageCursor``) into
the closed steps the model takes, under the venue's 600 requests / 5 s per IP. Bybit candles
carry no taker-buy volume: ``taker_buy_quote_volume`` is NaN (the model takes 0.5).

``BybitLive`` subscribes ``publicTrade``, ``kline.1``, ``tickers`` and ``allLiquidation`` per
symbol on ``/v5/public/linear`` sockets, after *every* (re)connect (the venue keeps no
subscriptions), in batches of ≤ 10 topics with a ``req_id`` each, and checks every ack; it
pings ``{"op": "ping"}`` every ``ping_s`` (the venue hangs up after ~10 minutes without);
dedupes trades by their UUID in a bounded recent set; mark price and open interest come from
the merged ``tickers`` stream. Sockets, states, gaps and closed steps are ``LiveFeed``'s.

Errors: a non-zero ``retCode`` is an error even with HTTP 200 (10001 names a bad symbol;
10006 is the per-UID rate limit: back off and retry); HTTP 403 "access too frequent" stops
*all* REST for a 10-minute cool-off, reported as BANNED until its end.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from functools import partial

import aiohttp
import numpy as np

from .backoff import Backoff
from .bybit_parse import (
    KLINE_INTERVALS,
    OI_INTERVALS,
    PARAMS_ERROR,
    RATE_LIMITED,
    VENUE,
    RetCodeError,
    TickerBook,
    loads,
    parse_frame,
    parse_instruments,
    parse_klines,
    parse_open_interest,
    parse_tickers,
    result,
)
from .events import FeedState, MarkPrice, OpenInterest, Reply
from .live import STEP_MS, LiveFeed, _close_quietly
from .ratelimit import WeightLimiter, server_wait
from .rest import (
    Backfill,
    BannedError,
    RestClient,
    RestError,
    UnknownSymbolError,
    check_base_url,
    find_symbol,
    now_ms,
    utc,
)
from .venues import VENUES
from .settings import FeedSettings

DEFAULT_REST_URL = VENUES["bybit"].rest_url   # the registry declares them
DEFAULT_WS_URL = VENUES["bybit"].ws_url
WS_PATH = "/v5/public/linear"
KLINE_LIMIT = 1000
OI_LIMIT = 200
COOL_OFF_S = 600.0          # after HTTP 403: "stop and wait at least 10 min"
PING_S = 20.0               # the venue's advice; it cuts after ~10 min without
ARGS_PER_SUBSCRIBE = 10
RECENT_TRADE_IDS = 100_000  # UUIDs remembered for dedupe (minutes of the busiest symbols)
_NAN = float("nan")


# ================================================================================ REST


class RequestLimiter(WeightLimiter):
    """Bybit counts requests, not weight: at most ``limit − buffer`` in any ``window_s``
    (sliding), and nothing at all while paused (10006 back-off) or banned (403 cool-off; the
    pause and ban bookkeeping, ``throttle``/``ban``/``blocked``/``banned``, is the Binance
    limiter's). One per host: the limit is per IP."""

    def __init__(self, limit: int = 600, window_s: float = 5.0, buffer: int = 50):
        super().__init__(limit, buffer)
        self.window_s = window_s
        self._sent: deque[float] = deque()

    async def acquire(self, max_wait: float = math.inf) -> None:
        while True:
            now = time.monotonic()
            wait = self._paused_until - now
            if wait <= 0:
                q = self._sent
                while q and q[0] <= now - self.window_s:
                    q.popleft()
                if len(q) >= self.limit - self.buffer:
                    wait = q[0] + self.window_s - now + 0.001
            if wait <= 0:
                break
            if wait > max_wait:
                until = int((time.time() + wait) * 1000)
                what = ("in its cool-off after HTTP 403 (access too frequent)" if self.banned
                        else "rate limited")
                raise BannedError(f"Bybit REST {what} until {utc(until)}",
                                  status=403 if self.banned else None, until=until)
            self.waited_s += wait
            await asyncio.sleep(wait)
        self._sent.append(time.monotonic())


class BybitRest(RestClient):
    VENUE = VENUE
    LABEL = "Bybit"

    def __init__(self, base_url: str = DEFAULT_REST_URL, *, session=None, limiter=None,
                 on_status=None, settings: FeedSettings | None = None,
                 cool_off_s: float = COOL_OFF_S):
        super().__init__(base_url, session=session, on_status=on_status, settings=settings)
        self.limiter = limiter or RequestLimiter()
        self.cool_off_s = cool_off_s
        self._symbols: dict | None = None
        self._all_symbols: dict = {}
        self._banned = False
        self._activity: FeedState | None = None
        self.counters = dict.fromkeys(
            ("requests", "retries", "http_403", "rate_limited", "http_5xx", "timeouts",
             "errors"), 0)

    # ---------------------------------------------------------------- plumbing

    async def _get(self, path: str, params: dict | None = None, *,
                   max_wait: float | None = None) -> dict:
        """GET a v5 body whose retCode is 0, obeying the limiter; retries 5xx, timeouts,
        network errors and bad bodies with capped backoff; backs off on retCode 10006; waits
        out a 403 cool-off up to ``max_wait`` seconds."""
        s = self.settings
        max_wait = s.max_rest_wait_s if max_wait is None else max_wait
        url = self.base_url + path
        backoff = Backoff(s.rest_backoff_base_s, s.rest_backoff_cap_s)
        failures = limited = 0
        while True:
            await self.limiter.acquire(max_wait)
            self.counters["requests"] += 1
            status, headers, body, problem = await self._attempt(url, params)
            if problem is None:
                if status == 200:
                    try:
                        data = loads(body)
                        result(data, path)
                    except RetCodeError as e:
                        if e.code != RATE_LIMITED:
                            raise self._error(path, params, e) from None
                        limited += 1
                        self.counters["rate_limited"] += 1
                        if limited > 50:
                            raise RestError(f"Bybit REST {path}: retCode 10006 {limited} times "
                                            "in a row", code=RATE_LIMITED) from None
                        self._throttle(_reset_wait(headers, s, self.counters))
                        continue
                    except Exception:  # truncated, malformed or not an envelope: ask again
                        problem = "truncated or malformed body"
                    else:
                        if self._banned:
                            self._rest_recovered()
                        return data
                elif status == 403:
                    limited += 1
                    if limited > 50:
                        raise RestError(f"{path}: HTTP 403 {limited} times in a row", status=403)
                    self._cool_off(headers)
                    continue
                else:
                    self.counters["errors"] += 1
                    raise RestError(f"Bybit REST {path}: HTTP {status} "
                                    f"{body[:200].decode('utf-8', 'replace')}", status=status)
            failures += 1
            await self._failed(path, failures, problem, backoff)

    def _cool_off(self, headers) -> None:
        s = self.settings
        self.counters["http_403"] += 1
        # the venue sends no Retry-After; honour one if a proxy (or the sim) does, within reason
        seconds = server_wait(headers.get("Retry-After"), default=self.cool_off_s,
                              cap=s.max_ban_s, counters=self.counters)
        until = self.limiter.ban(seconds, s.ban_probe_s)
        self._banned = FeedState.BANNED
        self._emit(FeedState.BANNED, "HTTP 403 access too frequent: all Bybit REST paused "
                   f"until {utc(until)}", until)

    def _throttle(self, wait: float) -> None:
        """retCode 10006: no REST for ``wait`` s, shown as LIMITED when that is long."""
        self.limiter.throttle(wait)
        if wait > self.settings.visible_wait_s:
            until = now_ms() + int(wait * 1000)
            self._banned = self._banned or FeedState.LIMITED
            self._emit(FeedState.LIMITED, f"Bybit REST rate limited (retCode 10006) until "
                       f"{utc(until)}", until)

    def _error(self, path, params, e: RetCodeError) -> RestError:
        self.counters["errors"] += 1
        sym = (params or {}).get("symbol")
        if e.code == PARAMS_ERROR and sym and "symbol" in e.msg.lower():
            return UnknownSymbolError(sym, f"unknown symbol {sym!r} on Bybit linear ({e.msg})")
        return RestError(f"Bybit REST {path}: retCode {e.code} {e.msg}", code=e.code)

    # ---------------------------------------------------------------- symbols

    async def exchange_info(self, *, max_wait: float | None = None) -> dict:
        """Linear perpetuals that are trading, by symbol (fetched once, all pages)."""
        if self._symbols is None:
            allsyms, cursor, pages = {}, "", 0
            while True:
                params = {"category": "linear", "limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                body = await self._get("/v5/market/instruments-info", params, max_wait=max_wait)
                try:
                    page, cursor = parse_instruments(body["result"])
                except (ValueError, KeyError) as e:
                    raise RestError(f"Bybit instruments-info: {e}") from None
                allsyms.update(page)
                pages += 1
                if not cursor or not page or pages > 50:
                    break
            self._all_symbols = allsyms
            self._symbols = {k: v for k, v in allsyms.items()
                             if v.contract_type == "LinearPerpetual" and v.status == "Trading"}
        return self._symbols

    async def symbol(self, symbol: str):
        """The symbol's info, or ``UnknownSymbolError`` naming it."""
        return find_symbol(symbol, await self.exchange_info(), self._all_symbols,
                           venue=self.LABEL, market="linear", trading="Trading")

    # ---------------------------------------------------------------- single values

    async def server_time(self, *, max_wait: float | None = None) -> int:
        body = await self._get("/v5/market/time", max_wait=max_wait)
        try:
            return int(body["result"]["timeNano"]) // 1_000_000
        except (KeyError, TypeError, ValueError):
            raise RestError("Bybit /v5/market/time: no 'timeNano' in the answer") from None

    async def _ticker(self, symbol: str, max_wait):
        body = await self._get("/v5/market/tickers", {"category": "linear", "symbol": symbol},
                               max_wait=max_wait)
        try:
            return parse_tickers(body["result"])[symbol], int(body["time"])
        except (KeyError, TypeError, ValueError):
            raise RestError("Bybit tickers: unexpected answer") from None

    async def mark_price(self, symbol: str, *, max_wait: float | None = None) -> MarkPrice:
        (mark, index, _), t = await self._ticker(symbol, max_wait)
        return MarkPrice(VENUE, symbol, t, mark, index)

    async def open_interest(self, symbol: str, *, max_wait: float | None = None) -> OpenInterest:
        """Now, in base units (``singleOpenInterest`` where the venue has it)."""
        (_, _, oi), t = await self._ticker(symbol, max_wait)
        return OpenInterest(VENUE, symbol, t, oi)

    # ---------------------------------------------------------------- history

    async def _klines(self, path, symbol, iv_name, iv, first, last, progress) -> list[tuple]:
        """Bars opening in [first, last], oldest first, in windows of ≤ 1000 that each
        request names in full (start, end and limit), so paging cannot skip or repeat."""
        rows: list[tuple] = []
        cursor = first
        while cursor <= last:
            n = min(KLINE_LIMIT, (last - cursor) // iv + 1)
            wend = cursor + (n - 1) * iv
            body = await self._get(path, {"category": "linear", "symbol": symbol,
                                          "interval": iv_name, "start": cursor, "end": wend,
                                          "limit": n})
            try:
                page = parse_klines(body["result"])
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise RestError(f"Bybit {path}: {e}") from None
            rows.extend(r + (_NAN,) for r in page if cursor <= r[0] <= wend)
            cursor = wend + iv
            progress(n)
        return rows

    async def _oi(self, symbol, name, period, first, last, progress) -> list[tuple[int, float]]:
        """Open interest stamped in [first, last]: newest-first pages of ≤ 200 chained by
        ``nextPageCursor`` (stops when the cursor ends or a page brings nothing older)."""
        rows: dict[int, float] = {}
        cursor, oldest = "", None
        while True:
            params = {"category": "linear", "symbol": symbol, "intervalTime": name,
                      "startTime": first, "endTime": last, "limit": OI_LIMIT}
            if cursor:
                params["cursor"] = cursor
            body = await self._get("/v5/market/open-interest", params)
            try:
                page, cursor = parse_open_interest(body["result"])
            except (ValueError, TypeError, KeyError) as e:
                raise RestError(f"Bybit open-interest: {e}") from None
            rows.update((t, v) for t, v in page if first <= t <= last)
            progress(len(page))
            if not page or not cursor or (oldest is not None and page[0][0] >= oldest):
                break
            oldest = page[0][0]
        return sorted(rows.items())

    async def backfill(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None,
                       *, lookback_ms: int | None = None, interval_ms: int = STEP_MS,
                       progress=None) -> Backfill:
        """Closed bars opening at or after ``start_ms`` and closing at or before ``end_ms``
        (default: the exchange's now), with mark-price extremes and open interest (base, one
        side) at each bar's close; ``taker_buy_quote_volume`` is NaN (Bybit candles have
        none). ``progress(done, total)`` after each page. Raises ``UnknownSymbolError``,
        ``BannedError`` or ``RestError``."""
        iv_name = next((k for k, v in KLINE_INTERVALS.items() if v == interval_ms), None)
        if iv_name is None:
            raise ValueError(f"interval_ms {interval_ms}: expected one of "
                             f"{', '.join(str(v) for v in KLINE_INTERVALS.values())}")
        base = max(interval_ms, STEP_MS)  # open interest at every close: a dividing period
        oi_name = next(k for k, v in reversed(OI_INTERVALS.items()) if v <= base and base % v == 0)
        info = await self.symbol(symbol)
        self._activity = FeedState.BACKFILLING
        try:
            return await self._backfill(info, start_ms, end_ms, lookback_ms, interval_ms,
                                        iv_name, oi_name, progress)
        finally:
            self._activity = None

    async def _backfill(self, info, start_ms, end_ms, lookback_ms, iv, iv_name, oi_name,
                        progress) -> Backfill:
        sym, period = info.symbol, OI_INTERVALS[oi_name]

        async def fetch(first, last, now, count):
            kl = await self._klines("/v5/market/kline", sym, iv_name, iv, first, last, count)
            mk = await self._klines("/v5/market/mark-price-kline", sym, iv_name, iv, first,
                                    last, count)
            oi = await self._oi(sym, oi_name, period, (first + iv) // period * period,
                                last + iv, lambda n: count(n * period // iv))
            return kl, mk, oi

        bf = await self._steps(sym, start_ms, end_ms, lookback_ms, iv, period, fetch, progress)
        t = bf["time"]
        if len(t) and bf.start > bf.requested and (info.onboard_ms or 0) > bf.requested:
            bf.warnings.append(f"{sym} history starts at {utc(bf.start)} "
                               "(listed later than the requested start)")
        known = np.flatnonzero(np.isfinite(bf["open_interest"]))
        if known.size and known[0] > 0:  # (a missing tail is only not published yet)
            bf.warnings.append(f"Bybit has no open-interest history for {sym} before "
                               f"{utc(int(t[known[0]]))}")
        return bf


def _reset_wait(headers, s: FeedSettings, counters=None) -> float:
    """Seconds until a 10006 limit resets: ``Retry-After`` (s) or
    ``X-Bapi-Limit-Reset-Timestamp`` (wall ms), else 1 s; at least 0.1 s, at most 60 s (the
    limits are per 5 s window; ``max_limit_wait_s`` if lower) (``server_wait``)."""
    v = headers.get("Retry-After")
    if v is None and (reset := headers.get("X-Bapi-Limit-Reset-Timestamp")) is not None:
        try:
            v = (float(reset) - now_ms()) / 1000
        except (TypeError, ValueError):
            v = "garbage"  # counted as such, then the default
        else:
            v = max(v, 0.1) if v == v else v  # a reset just passed: ask again soon
    cap = min(60.0, s.max_limit_wait_s)
    return max(0.1, server_wait(v, default=1.0, cap=cap, counters=counters))


# ================================================================================ live


class BybitLive(LiveFeed):
    """Bybit linear live: ``/v5/public/linear`` sockets of ≤ ``max_streams_per_connection``
    topics each (a symbol's four topics stay on one socket, so its quiet ``allLiquidation``
    shares the watchdog with its busy trades), subscribed after every (re)connect with the
    acks checked, and kept alive with JSON pings."""

    VENUE = VENUE
    LABEL = "Bybit linear"

    def __init__(self, ws_url: str = DEFAULT_WS_URL, symbols=("BTCUSDT",), *, rest=None,
                 rest_url: str | None = None, session=None,
                 settings: FeedSettings | None = None, ping_s: float = PING_S, **kwargs):
        settings = settings or FeedSettings()
        if rest is None and rest_url is not None:
            rest = BybitRest(rest_url, session=session, settings=settings)
        super().__init__(check_base_url(ws_url, ("ws", "wss"), "Bybit WebSocket URL"),
                         symbols, rest=rest, session=session, settings=settings, **kwargs)
        if not ping_s > 0:
            raise ValueError(f"ping_s = {ping_s!r}: expected a positive number of seconds")
        self.ping_s = ping_s
        self.counters.update(block_trades=0, sub_errors=0, notices=0)
        self.book = TickerBook()
        self._pending: dict[str, tuple] = {}   # req_id → (conn id, topics) awaiting an ack
        self._req = 0
        # recent trade UUIDs in two generations: when the newer holds RECENT_TRADE_IDS it
        # becomes the older and the oldest is forgotten whole (between 1 and 2 × that many
        # are remembered, for two set operations a trade)
        self._ids: set[str] = set()
        self._old_ids: set[str] = set()
        # the hot path without a wrapper: one message → events, acks to _on_reply
        self._parse = partial(parse_frame, counters=self.counters, book=self.book,
                              on_reply=self._on_reply)

    def _parse(self, data) -> list:
        # the class-level hook of the contract; __init__ binds the same call as a partial
        # (the hot path without a wrapper), which shadows this on every instance
        return parse_frame(data, counters=self.counters, book=self.book,
                           on_reply=self._on_reply)

    def _plan(self):
        topics = []
        for s in self.symbols:
            topics.append([f"publicTrade.{s}", f"kline.1.{s}", f"tickers.{s}",
                           f"allLiquidation.{s}"])
        per = max(1, self.settings.max_streams_per_connection // 4)
        return [(self.ws_url + WS_PATH, sum(topics[i:i + per], []), tuple(self.symbols[i:i + per]))
                for i in range(0, len(topics), per)]

    async def _subscribe(self, c, ws) -> None:
        for k in list(self._pending):           # acks of a closed socket never come
            if self._pending[k][0] == c.cid:
                del self._pending[k]
        for i in range(0, len(c.streams), ARGS_PER_SUBSCRIBE):
            args = list(c.streams[i:i + ARGS_PER_SUBSCRIBE])
            self._req += 1
            rid = f"{c.cid}.{self._req}"
            self._pending[rid] = (c.cid, args, time.monotonic())
            await ws.send_str(json.dumps({"req_id": rid, "op": "subscribe", "args": args}))

    async def _keepalive(self, c, ws) -> None:
        """JSON pings every ``ping_s``; a subscribe request left without an ack for
        ``connect_timeout_s`` makes the socket be replaced (and so subscribed again)."""
        s = self.settings
        tick = min(self.ping_s, s.connect_timeout_s / 2)
        last_ping = time.monotonic()
        while not ws.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if any(p[0] == c.cid and now - p[2] > s.connect_timeout_s
                   for p in self._pending.values()):
                c.why = f"no subscribe ack within {s.connect_timeout_s:g} s"
                await _close_quietly(ws)
                return
            if now - last_ping >= self.ping_s:
                last_ping = now
                self._req += 1
                try:
                    await ws.send_str(f'{{"req_id":"{c.cid}.{self._req}","op":"ping"}}')
                except (ConnectionError, RuntimeError, aiohttp.ClientError):
                    return  # the socket is going away; the connection loop sees it close

    def _on_reply(self, r: Reply) -> None:
        if r.result == "notice":  # the venue closes the socket soon; the loop reconnects
            self.counters["notices"] += 1
            return
        if r.result not in ("subscribe", "unsubscribe"):
            return
        pending = self._pending.pop(r.id, None)
        if r.code is not None:
            self.counters["sub_errors"] += 1
            topics = ", ".join(pending[1]) if pending else "?"
            self._emit_status(FeedState.ERROR, f"Bybit refused the subscription to {topics}: "
                              f"{r.msg or 'no reason given'}")
            self._update_state()

    def _new_trade(self, ev, c) -> str | None:
        """Trade ids are UUIDs (no order, so no id is implausible; times are checked in
        ``LiveFeed._on_frame``): remember the most recent ones."""
        tid = ev.trade_id
        ids = self._ids
        if tid in ids or tid in self._old_ids:
            return "duplicates"
        ids.add(tid)
        if len(ids) >= RECENT_TRADE_IDS:
            self._old_ids, self._ids = ids, set()
        return None

