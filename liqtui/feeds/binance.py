"""Binance USDⓈ-M futures: REST backfill and the live WebSocket feed.

``BinanceRest`` pages klines, mark-price klines and open-interest history into the closed
5-minute steps the model takes, behind a request-weight limiter. ``BinanceLive`` keeps one
WebSocket per ≤ 200 streams on ``/market/stream`` (the legacy ``/stream`` and ``/ws`` paths
are silent since 2026-04-23), reconnects with capped backoff, replaces silent sockets, rotates
connections before the venue's 24-hour cut, drops duplicates, polls open interest and reports
gaps so the caller can backfill them. Neither raises into a running app: the live feed turns
every failure into a ``FeedStatus``; REST methods raise only ``RestError`` (with a message
meant for the user) when a request cannot succeed.

Base URLs are scheme-host-port (``https://fapi.binance.com``, ``wss://fstream.binance.com``);
the clients append the venue's paths, so a test, a testnet or a proxy is just another base.
"""

from __future__ import annotations

import re

from .backoff import Backoff
from .binance_parse import (
    VENUE,
    SymbolInfo,
    loads,
    parse_exchange_info,
    parse_frame,
    parse_klines,
    parse_oi_hist,
    parse_open_interest,
)
from .events import FeedState, MarkPrice, OpenInterest
from .live import STEP_MS, Gap, LiveFeed  # noqa: F401 - Gap re-exported
from .ratelimit import Blocked, WeightLimiter, server_wait
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

DEFAULT_REST_URL = VENUES["binance"].rest_url   # the registry declares them
DEFAULT_WS_URL = VENUES["binance"].ws_url
KLINE_LIMIT = 1500
OI_HIST_LIMIT = 500
INTERVALS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
             "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
             "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000}
OI_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
BAR_KEYS = ("time", "open", "high", "low", "close", "volume", "quote_volume",
            "taker_buy_quote_volume", "open_interest", "mark_high", "mark_low")

_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")


def kline_weight(limit: int) -> int:
    """Request weight of /fapi/v1/klines (and mark-price klines) by ``limit``."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


# ================================================================================ REST


class BinanceRest(RestClient):
    VENUE = VENUE
    LABEL = "Binance"

    def __init__(self, base_url: str = DEFAULT_REST_URL, *, session=None, limiter=None,
                 on_status=None, settings: FeedSettings | None = None):
        super().__init__(base_url, session=session, on_status=on_status, settings=settings)
        s = self.settings
        self.limiter = limiter or WeightLimiter(
            s.weight_limit, s.weight_buffer, oi_hist_limit=s.oi_hist_limit,
            oi_hist_buffer=s.oi_hist_buffer)
        self._symbols: dict[str, SymbolInfo] | None = None
        self._all_symbols: dict[str, SymbolInfo] = {}
        self._banned = False          # a 418 was reported and no request has succeeded since
        self._activity: FeedState | None = None
        self.counters = dict.fromkeys(
            ("requests", "retries", "http_429", "http_418", "http_5xx", "timeouts", "errors"), 0)

    # ---------------------------------------------------------------- plumbing

    async def _get(self, path: str, params: dict | None = None, *, weight: int = 1,
                   oi_hist: bool = False, max_wait: float | None = None):
        """GET a JSON body, obeying the limiter; retries 5xx, 408, timeouts and network
        errors with capped backoff; waits out 429/418 up to ``max_wait`` seconds."""
        s = self.settings
        max_wait = s.max_rest_wait_s if max_wait is None else max_wait
        url = self.base_url + path
        backoff = Backoff(s.rest_backoff_base_s, s.rest_backoff_cap_s)
        failures = 0
        limited = 0
        while True:
            try:
                await self.limiter.acquire(weight, oi_hist=oi_hist, max_wait=max_wait)
            except Blocked as e:
                raise BannedError.from_blocked(e) from None
            self.counters["requests"] += 1
            status, headers, body, problem = await self._attempt(url, params)
            if headers is not None:
                self.limiter.observe(headers)
            if problem is None:
                if status == 200:
                    try:
                        data = loads(body)
                    except Exception:
                        problem = "truncated or malformed JSON body"
                    else:
                        if self._banned:
                            self._rest_recovered()
                        return data
                elif status in (429, 418):
                    limited += 1
                    if limited > 50:  # the server keeps refusing: give up rather than spin
                        raise RestError(f"{path}: HTTP {status} {limited} times in a row",
                                        status=status)
                    self._limited(status, headers, body)
                    continue
                else:
                    raise self._error(path, params, status, body)
            failures += 1
            await self._failed(path, failures, problem, backoff)

    def _limited(self, status: int, headers, body: bytes) -> None:
        s = self.settings
        retry_after = headers.get("Retry-After")
        if status == 429:
            self.counters["http_429"] += 1
            wait = server_wait(retry_after, default=s.default_retry_after_s,
                               cap=s.max_limit_wait_s, counters=self.counters)
            self.limiter.throttle(wait)
            if wait > s.visible_wait_s:
                until = now_ms() + int(wait * 1000)
                self._banned = FeedState.LIMITED
                self._emit(FeedState.LIMITED, f"HTTP 429: Binance REST rate limited until "
                           f"{utc(until)}", until)
            return
        self.counters["http_418"] += 1
        if retry_after is None:  # "IP banned until 1660090423228" (wall ms) in the message
            m = _BANNED_UNTIL.search(body.decode("utf-8", "replace"))
            if m:
                retry_after = (int(m.group(1)) - now_ms()) / 1000
        wait = server_wait(retry_after, default=s.default_ban_s, cap=s.max_ban_s,
                           counters=self.counters)
        until = self.limiter.ban(wait, s.ban_probe_s)
        self._banned = FeedState.BANNED
        self._emit(FeedState.BANNED, f"HTTP 418: IP banned by Binance until {utc(until)}", until)

    def _error(self, path, params, status, body) -> RestError:
        code, msg = None, ""
        try:
            err = loads(body)
            code, msg = err.get("code"), str(err.get("msg", ""))
        except Exception:
            msg = body[:200].decode("utf-8", "replace")
        self.counters["errors"] += 1
        if code == -1121 and params and "symbol" in params:
            sym = params["symbol"]
            return UnknownSymbolError(sym, f"unknown symbol {sym!r} on Binance USDⓈ-M ({msg})")
        return RestError(f"Binance REST {path}: HTTP {status} {code if code is not None else ''} "
                         f"{msg}".rstrip(), status=status, code=code)

    # ---------------------------------------------------------------- symbols

    async def exchange_info(self, *, max_wait: float | None = None) -> dict[str, SymbolInfo]:
        """USDⓈ-M perpetual contracts that are trading, by symbol (fetched once)."""
        if self._symbols is None:
            body = await self._get("/fapi/v1/exchangeInfo", weight=1, max_wait=max_wait)
            try:
                allsyms, weight = parse_exchange_info(body)
            except ValueError as e:
                raise RestError(f"Binance exchangeInfo: {e}") from None
            if weight:  # the venue says what the limit is; keep our buffer below it
                self.limiter.limit = min(weight, self.settings.weight_limit)
            self._all_symbols = allsyms
            self._symbols = {k: v for k, v in allsyms.items()
                             if v.contract_type == "PERPETUAL" and v.status == "TRADING"}
        return self._symbols

    async def symbol(self, symbol: str) -> SymbolInfo:
        """The symbol's info, or ``UnknownSymbolError`` naming it (unknown, delisted or not a
        perpetual)."""
        return find_symbol(symbol, await self.exchange_info(), self._all_symbols,
                           venue=self.LABEL, market="USDⓈ-M", trading="TRADING")

    # ---------------------------------------------------------------- single values

    async def server_time(self, *, max_wait: float | None = None) -> int:
        """The exchange's clock (ms), from ``/fapi/v1/time`` (weight 1). Closed steps are
        decided on it, not on the local clock (which may be off, or the sim's may run fast)."""
        body = await self._get("/fapi/v1/time", weight=1, max_wait=max_wait)
        try:
            return int(body["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise RestError("Binance /fapi/v1/time: no 'serverTime' in the answer") from None

    async def mark_price(self, symbol: str) -> MarkPrice:
        body = await self._get("/fapi/v1/premiumIndex", {"symbol": symbol}, weight=1)
        try:
            return MarkPrice(VENUE, body["symbol"], int(body["time"]), float(body["markPrice"]),
                             float(body.get("indexPrice", "nan")))
        except (KeyError, TypeError, ValueError):
            raise RestError("Binance premiumIndex: unexpected answer") from None

    async def open_interest(self, symbol: str, *, max_wait: float | None = None) -> OpenInterest:
        body = await self._get("/fapi/v1/openInterest", {"symbol": symbol}, weight=1,
                               max_wait=max_wait)
        try:
            sym, t, base = parse_open_interest(body)
        except (KeyError, TypeError, ValueError):
            raise RestError("Binance openInterest: unexpected answer") from None
        return OpenInterest(VENUE, sym, t, base)

    # ---------------------------------------------------------------- history

    async def _klines(self, path, symbol, iv_name, iv, first, last, progress) -> list[tuple]:
        """Bars opening in [first, last], paged in windows of at most 1500 bars: each request
        names its whole window, so the answer cannot depend on how the venue fills a page."""
        rows: list[tuple] = []
        cursor = first
        while cursor <= last:
            n = min(KLINE_LIMIT, (last - cursor) // iv + 1)
            wend = cursor + (n - 1) * iv
            body = await self._get(path, {
                "symbol": symbol, "interval": iv_name, "startTime": cursor,
                "endTime": wend + iv - 1, "limit": n}, weight=kline_weight(n))
            try:
                page = parse_klines(body)
            except (ValueError, TypeError, IndexError) as e:
                raise RestError(f"Binance {path}: {e}") from None
            rows.extend(r for r in page if cursor <= r[0] <= wend)
            cursor = wend + iv
            progress(n)
        return rows

    async def _oi_hist(self, symbol, period_name, period, first, last, progress):
        """Open-interest rows stamped in [first, last], windows of at most 500 periods."""
        rows: list[tuple[int, float]] = []
        cursor = first
        while cursor <= last:
            n = min(OI_HIST_LIMIT, (last - cursor) // period + 1)
            wend = cursor + (n - 1) * period
            body = await self._get("/futures/data/openInterestHist", {
                "symbol": symbol, "period": period_name, "startTime": cursor,
                "endTime": wend, "limit": n}, oi_hist=True, weight=0)
            try:
                page = parse_oi_hist(body)
            except (ValueError, TypeError, KeyError) as e:
                raise RestError(f"Binance openInterestHist: {e}") from None
            rows.extend(r for r in page if cursor <= r[0] <= wend)
            cursor = wend + period
            progress(n)
        return rows

    async def backfill(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None,
                       *, lookback_ms: int | None = None, interval_ms: int = STEP_MS,
                       progress=None) -> Backfill:
        """Closed bars opening at or after ``start_ms`` and closing at or before ``end_ms``
        (default: the exchange's now), with mark-price extremes and open interest at each
        bar's close (NaN where the venue has none). ``lookback_ms`` instead of ``start_ms``
        counts back from the end. The start is clamped to the open-interest depth (~29.9 days)
        with a warning; a symbol listed later simply starts at its first bar.

        ``progress(done, total)`` is called after each page (units: rows).
        Raises ``UnknownSymbolError``, ``BannedError`` or ``RestError``.
        """
        iv_name = next((k for k, v in INTERVALS.items() if v == interval_ms), None)
        if iv_name is None:
            raise ValueError(f"interval_ms {interval_ms}: expected one of "
                             f"{', '.join(INTERVALS)} in ms")
        # open interest at every bar close needs a period that divides the bar
        period_name = next(p for p in reversed(OI_PERIODS)
                           if INTERVALS[p] <= max(interval_ms, STEP_MS)
                           and max(interval_ms, STEP_MS) % INTERVALS[p] == 0)
        period = INTERVALS[period_name]
        info = await self.symbol(symbol)
        sym = info.symbol
        self._activity = FeedState.BACKFILLING
        try:
            return await self._backfill(sym, start_ms, end_ms, lookback_ms, interval_ms, iv_name,
                                        period_name, period, progress)
        finally:
            self._activity = None

    async def _backfill(self, sym, start_ms, end_ms, lookback_ms, iv, iv_name, period_name,
                        period, progress) -> Backfill:
        async def fetch(first, last, now, count):
            kl = await self._klines("/fapi/v1/klines", sym, iv_name, iv, first, last, count)
            mk = await self._klines("/fapi/v1/markPriceKlines", sym, iv_name, iv, first, last,
                                    count)
            # a row stamped T is the open interest at instant T: the close of the bar opening
            # at T − interval. Ask from the row at or before the first close to the last.
            oi = await self._oi_hist(sym, period_name, period, (first + iv) // period * period,
                                     last + iv, lambda n: count(n * period // iv))
            return kl, mk, oi

        s = self.settings   # openInterestHist answers 400 beyond ~30 days
        bf = await self._steps(sym, start_ms, end_ms, lookback_ms, iv, period, fetch, progress,
                               lambda now, _: (now - s.oi_history_ms,
                                               f"~{s.oi_history_days:g} days of open-interest "
                                               "history"))
        if len(bf["time"]) and bf.start > bf.requested and self._all_symbols.get(sym):
            bf.warnings.append(f"{sym} history starts at {utc(bf.start)} "
                               "(listed later than the requested start)")
        return bf


# ================================================================================ live


class BinanceLive(LiveFeed):
    """Binance USDⓈ-M live: streams in the URL of ``/market/stream`` sockets (≤ 200 each;
    zero outgoing messages against the venue's 10-per-second rule), aiohttp answering the
    server's pings, open interest polled over REST (the venue has no OI stream)."""

    VENUE = VENUE
    LABEL = "Binance USDⓈ-M"

    def __init__(self, ws_url: str = DEFAULT_WS_URL, symbols=("BTCUSDT",), *, rest=None,
                 rest_url: str | None = None, session=None,
                 settings: FeedSettings | None = None, **kwargs):
        settings = settings or FeedSettings()
        if rest is None and rest_url is not None:
            rest = BinanceRest(rest_url, session=session, settings=settings)
        super().__init__(check_base_url(ws_url, ("ws", "wss"), "Binance WebSocket URL"),
                         symbols, rest=rest, session=session, settings=settings, **kwargs)

    def _plan(self):
        # the all-market liquidation stream goes first, on a socket with busy streams:
        # it can be quiet for minutes, and must not make its socket look stale
        streams = ["!forceOrder@arr"]
        for s in self.symbols:
            ls = s.lower()
            streams += [f"{ls}@aggTrade", f"{ls}@markPrice@1s", f"{ls}@kline_1m"]
        n = self.settings.max_streams_per_connection
        plan = []
        for i in range(0, len(streams), n):
            chunk = streams[i:i + n]
            syms = tuple(dict.fromkeys(x.split("@")[0].upper() for x in chunk
                                       if not x.startswith("!")))
            plan.append((f"{self.ws_url}/market/stream?streams={'/'.join(chunk)}", chunk, syms))
        return plan

    def _parse(self, data) -> list:
        return parse_frame(data, self.counters)

    def _extra_pollers(self) -> list:
        return [self._poll_oi()] if self.rest is not None else []
