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

import asyncio
import difflib
import re
import time

import aiohttp
import numpy as np

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
from .events import FeedState, FeedStatus, MarkPrice, OpenInterest
from .live import STEP_MS, Gap, LiveFeed  # noqa: F401 - Gap re-exported
from .ratelimit import Blocked, WeightLimiter
from .rest import Backfill, BannedError, RestError, UnknownSymbolError, check_base_url
from .settings import FeedSettings

DEFAULT_REST_URL = "https://fapi.binance.com"
DEFAULT_WS_URL = "wss://fstream.binance.com"
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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


# ================================================================================ REST


class BinanceRest:
    def __init__(self, base_url: str = DEFAULT_REST_URL, *, session=None, limiter=None,
                 on_status=None, settings: FeedSettings | None = None):
        self.base_url = check_base_url(base_url, ("http", "https"), "Binance REST URL")
        self.settings = settings or FeedSettings()
        s = self.settings
        self.limiter = limiter or WeightLimiter(
            s.weight_limit, s.weight_buffer, oi_hist_limit=s.oi_hist_limit,
            oi_hist_buffer=s.oi_hist_buffer)
        self.on_status = on_status
        self._session = session
        self._own_session = session is None
        self._symbols: dict[str, SymbolInfo] | None = None
        self._all_symbols: dict[str, SymbolInfo] = {}
        self._banned = False          # a 418 was reported and no request has succeeded since
        self._activity: FeedState | None = None
        self.counters = dict.fromkeys(
            ("requests", "retries", "http_429", "http_418", "http_5xx", "timeouts", "errors"), 0)

    # ---------------------------------------------------------------- plumbing

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=True)  # honour HTTP(S)_PROXY
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _emit(self, state: FeedState, reason: str = "", until: int | None = None) -> None:
        if self.on_status is not None:
            try:
                self.on_status(FeedStatus(VENUE, state, _now_ms(), reason, until))
            except Exception:  # a broken callback must not break REST
                pass

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
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=s.rest_timeout_s)
        while True:
            try:
                await self.limiter.acquire(weight, oi_hist=oi_hist, max_wait=max_wait)
            except Blocked as e:
                raise BannedError.from_blocked(e) from None
            self.counters["requests"] += 1
            problem = None
            try:
                async with session.get(url, params=params, timeout=timeout) as r:
                    self.limiter.observe(r.headers)
                    status, headers = r.status, r.headers
                    body = await r.read()
            except asyncio.TimeoutError:
                self.counters["timeouts"] += 1
                problem = f"no answer within {s.rest_timeout_s:g} s"
            except aiohttp.ClientError as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if status == 200:
                    try:
                        data = loads(body)
                    except Exception:
                        problem = "truncated or malformed JSON body"
                    else:
                        if self._banned:
                            self._banned = False
                            self._emit(self._activity or FeedState.LIVE, "REST ban over")
                        return data
                elif status in (429, 418):
                    limited += 1
                    if limited > 50:  # the server keeps refusing: give up rather than spin
                        raise RestError(f"{path}: HTTP {status} {limited} times in a row",
                                        status=status)
                    self._limited(status, headers, body)
                    continue
                elif status >= 500 or status == 408:
                    self.counters["http_5xx"] += 1
                    problem = f"HTTP {status}"
                else:
                    raise self._error(path, params, status, body)
            failures += 1
            if failures > s.rest_retries:
                self.counters["errors"] += 1
                raise RestError(f"Binance REST {path} failed {failures} times ({problem})")
            self.counters["retries"] += 1
            await asyncio.sleep(backoff.next())

    def _limited(self, status: int, headers, body: bytes) -> None:
        s = self.settings
        retry_after = None
        try:
            retry_after = float(headers.get("Retry-After"))
        except (TypeError, ValueError):
            pass
        if status == 429:
            self.counters["http_429"] += 1
            self.limiter.throttle(s.default_retry_after_s if retry_after is None else retry_after)
            return
        self.counters["http_418"] += 1
        if retry_after is None:  # "IP banned until 1660090423228" (wall ms) in the message
            m = _BANNED_UNTIL.search(body.decode("utf-8", "replace"))
            if m:
                retry_after = (int(m.group(1)) - _now_ms()) / 1000
            if retry_after is None or not 0 < retry_after < 4 * 86400:
                retry_after = s.default_ban_s
        until = self.limiter.ban(retry_after)
        self._banned = True
        self._emit(FeedState.BANNED, f"HTTP 418: IP banned by Binance until {_utc(until)}", until)

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
        syms = await self.exchange_info()
        sym = symbol.strip().upper()
        if sym in syms:
            return syms[sym]
        other = self._all_symbols.get(sym)
        if other is not None:
            why = (f"not trading (status {other.status})" if other.status != "TRADING"
                   else f"a {other.contract_type or 'non-perpetual'} contract, not a perpetual")
            raise UnknownSymbolError(sym, f"symbol {sym!r} on Binance USDⓈ-M is {why}")
        near = difflib.get_close_matches(sym, list(syms), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise UnknownSymbolError(
            sym, f"unknown symbol {sym!r}: not a trading USDⓈ-M perpetual on Binance{hint}")

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
        warns: list[str] = []
        now = await self.server_time()
        end = now if end_ms is None else min(end_ms, now)
        if start_ms is None:
            if lookback_ms is None:
                raise ValueError("backfill needs start_ms or lookback_ms")
            start_ms = end - lookback_ms
        first = -(-start_ms // iv) * iv          # first bar opens on the grid at/after start
        last = end // iv * iv - iv               # last bar closes at/before end
        depth = now - self.settings.oi_history_ms
        if first + iv < depth:                   # openInterestHist answers 400 beyond ~30 days
            clamped = -(-(depth - iv) // iv) * iv
            warns.append(
                f"Binance keeps ~{self.settings.oi_history_days:g} days of open-interest "
                f"history: start moved from {_utc(first)} to {_utc(clamped)}")
            first = clamped
        self._emit(FeedState.BACKFILLING, f"{sym} {_utc(first)} → {_utc(last + iv)}")
        total = 3 * max(0, (last - first) // iv + 1)
        done = 0

        def step(n):
            nonlocal done
            done += n
            if progress is not None:
                progress(min(done, total), total)

        if last < first:
            kl, mk, oi = [], [], []
        else:
            kl = await self._klines("/fapi/v1/klines", sym, iv_name, iv, first, last, step)
            mk = await self._klines("/fapi/v1/markPriceKlines", sym, iv_name, iv, first, last,
                                    step)
            # a row stamped T is the open interest at instant T: the close of the bar opening
            # at T − interval. Ask from the row at or before the first close to the last.
            oi_first = (first + iv) // period * period
            oi = await self._oi_hist(sym, period_name, period, oi_first, last + iv,
                                     lambda n: step(n * period // iv))
        out = _join(kl, mk, oi, iv, period)
        if len(out["time"]) and out["time"][0] > first and self._all_symbols.get(sym):
            warns.append(f"{sym} history starts at {_utc(int(out['time'][0]))} "
                         "(listed later than the requested start)")
        bf = Backfill(out)
        bf.symbol, bf.interval_ms, bf.warnings = sym, iv, warns
        bf.start = int(out["time"][0]) if len(out["time"]) else first
        bf.end = int(out["time"][-1]) + iv if len(out["time"]) else first
        bf.now = now
        return bf


def _join(kl, mk, oi, iv, period) -> dict[str, np.ndarray]:
    """Klines as the time axis (sorted, unique), mark extremes and open interest joined on."""
    kl = sorted({r[0]: r for r in kl}.values())
    a = np.array(kl, dtype=np.float64).reshape(-1, 8)
    t = a[:, 0].astype(np.int64)
    out = {"time": t}
    for j, k in enumerate(("open", "high", "low", "close", "volume", "quote_volume",
                           "taker_buy_quote_volume"), 1):
        out[k] = np.ascontiguousarray(a[:, j])
    n = len(t)
    mh = np.full(n, np.nan)
    ml = np.full(n, np.nan)
    if mk:
        m = np.array(sorted({r[0]: r for r in mk}.values()), dtype=np.float64).reshape(-1, 8)
        mt = m[:, 0].astype(np.int64)
        idx = np.searchsorted(mt, t)
        ok = idx < len(mt)
        ok[ok] = mt[idx[ok]] == t[ok]
        mh[ok], ml[ok] = m[idx[ok], 2], m[idx[ok], 3]
    out["mark_high"], out["mark_low"] = mh, ml
    oiv = np.full(n, np.nan)
    if oi:
        o = sorted(dict(oi).items())
        ot = np.array([r[0] for r in o], dtype=np.int64)
        ov = np.array([r[1] for r in o], dtype=np.float64)
        close = t + iv
        j = np.searchsorted(ot, close, side="right") - 1  # the latest row at or before the close
        ok = j >= 0
        ok[ok] = close[ok] - ot[j[ok]] < period           # and it is of that period
        oiv[ok] = ov[j[ok]]
    out["open_interest"] = oiv
    return out


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
