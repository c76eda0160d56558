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
from dataclasses import dataclass

import aiohttp
import numpy as np

from .backoff import Backoff
from .bars import BarBuilder
from .binance_parse import (
    VENUE,
    Reply,
    SymbolInfo,
    loads,
    new_counters,
    parse_exchange_info,
    parse_frame,
    parse_klines,
    parse_oi_hist,
    parse_open_interest,
)
from .events import (
    Bar,
    FeedState,
    FeedStatus,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Trade,
)
from .ratelimit import Blocked, WeightLimiter
from .rest import Backfill, BannedError, RestError, UnknownSymbolError, check_base_url
from .settings import FeedSettings

DEFAULT_REST_URL = "https://fapi.binance.com"
DEFAULT_WS_URL = "wss://fstream.binance.com"
KLINE_LIMIT = 1500
OI_HIST_LIMIT = 500
STEP_MS = 300_000
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


@dataclass(frozen=True, slots=True)
class Gap:
    """Data the live feed missed: exchange times of the last data before the break and the
    first after it. The bars to fetch again over REST are those overlapping the gap
    (``bar_window``)."""
    symbols: tuple[str, ...]
    start_ms: int
    end_ms: int
    reason: str = ""

    def bar_window(self, interval_ms: int = STEP_MS) -> tuple[int, int]:
        """(first bar open, end of the last bar) covering the gap on the ``interval_ms`` grid."""
        return (self.start_ms // interval_ms * interval_ms,
                -(-(self.end_ms + 1) // interval_ms) * interval_ms)


_WORST = (FeedState.ERROR, FeedState.STALE, FeedState.RECONNECTING, FeedState.CONNECTING,
          FeedState.LIVE)


class _Conn:
    """One WebSocket and its bookkeeping (one per chunk of ≤ 200 streams)."""

    __slots__ = ("cid", "streams", "symbols", "url", "ws", "state", "data_frames",
                 "last_ms", "why", "stale", "successor", "opened", "had_data",
                 "gap_from", "gap_why")

    def __init__(self, cid, streams, symbols, url):
        self.cid, self.streams, self.symbols, self.url = cid, streams, symbols, url
        self.ws = None
        self.state = FeedState.CONNECTING
        self.data_frames = 0    # data frames on this chunk (the stale watchdog compares it)
        self.last_ms = None     # exchange time of the newest data seen (for gaps)
        self.why = ""           # why the current socket is being closed (for the status)
        self.stale = False      # ... because it went silent
        self.successor = None   # a socket opened before the old one is closed (rotation)
        self.opened = 0.0
        self.had_data = False   # the current socket delivered data
        self.gap_from = None    # last data time before a break, until the next data arrives
        self.gap_why = ""


class BinanceLive:
    def __init__(self, ws_url: str = DEFAULT_WS_URL, symbols=("BTCUSDT",), *, rest=None,
                 rest_url: str | None = None, session=None,
                 settings: FeedSettings | None = None, on_event=None, on_status=None,
                 on_gap=None, on_steps=None, step_ms: int = STEP_MS,
                 bars: BarBuilder | None = None):
        self.ws_url = check_base_url(ws_url, ("ws", "wss"), "Binance WebSocket URL")
        syms = [s.strip().upper() for s in ([symbols] if isinstance(symbols, str) else symbols)]
        if not syms or not all(syms):
            raise ValueError("BinanceLive needs at least one symbol")
        self.symbols = list(dict.fromkeys(syms))
        self.settings = settings or FeedSettings()
        self.on_event = on_event
        self.on_status = on_status
        self.on_gap = on_gap
        self.on_steps = on_steps
        self.step_ms = step_ms
        self.bars = bars if bars is not None else BarBuilder(step_ms)
        self._session = session
        self._own_session = session is None
        if rest is None and rest_url is not None:
            rest = BinanceRest(rest_url, session=session, settings=self.settings)
        self.rest: BinanceRest | None = rest
        if rest is not None:
            rest.on_status = self._rest_status
        self.counters = new_counters()
        self.counters.update(dict.fromkeys(
            ("duplicates", "foreign", "late", "reconnects", "stale", "rotations", "gaps",
             "oi_polls", "oi_errors", "step_fetches", "step_errors", "callback_errors",
             "errors"), 0))
        self.state: FeedState | None = None
        self.banned_until: int | None = None
        self.gaps: list[Gap] = []
        self.market_symbols: set[str] = set(self.symbols)  # exchangeInfo's set once known
        self.last_mark: dict[str, MarkPrice] = {}
        self.last_oi: dict[str, OpenInterest] = {}
        self._last_trade: dict[str, int] = {}
        self._last_kline: dict[str, tuple[int, bool]] = {}
        self._recent_liq: dict[tuple, None] = {}
        self._conns: list[_Conn] = []
        self._tasks: set[asyncio.Task] = set()
        self._pollers: list[asyncio.Task] = []
        self._next_step: dict[str, int] = {}   # per symbol: open time of the next step due
        self._step_seen = -1                   # newest exchange step index seen live
        self._steps_due: asyncio.Event | None = None
        self._stopping = False

    # ---------------------------------------------------------------- state

    def _emit_status(self, state: FeedState, reason: str = "", until: int | None = None):
        if state is self.state and state is not FeedState.BANNED and state is not FeedState.ERROR:
            return
        self.state = state
        if self.on_status is not None:
            try:
                self.on_status(FeedStatus(VENUE, state, _now_ms(), reason, until))
            except Exception:
                self.counters["callback_errors"] += 1

    def _update_state(self, reason: str = "") -> None:
        """The feed's state: BANNED while REST is banned, else the worst connection's."""
        if self._stopping:
            return
        if self.banned_until is not None:
            self._emit_status(FeedState.BANNED, reason, self.banned_until)
            return
        states = [c.state for c in self._conns] or [FeedState.CONNECTING]
        worst = min(states, key=_WORST.index)
        self._emit_status(worst, reason)

    def _set_conn(self, c: _Conn, state: FeedState, reason: str = "") -> None:
        if c.state is state and state is not FeedState.ERROR:
            return
        c.state = state
        self._update_state(reason)

    def _rest_status(self, st: FeedStatus) -> None:
        if st.state is FeedState.BANNED:
            self.banned_until = st.until
            self._update_state(st.reason)
        elif self.banned_until is not None and not self.rest.limiter.banned:
            self.banned_until = None
            self._update_state(st.reason or "REST ban over")

    # ---------------------------------------------------------------- public

    async def run(self) -> None:
        """Run until ``stop()`` (once per object). Never raises (cancellation aside):
        failures are states."""
        self._conns = []
        self._steps_due = asyncio.Event()
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(trust_env=True)
                if self.rest is not None and self.rest._session is None:
                    self.rest._session = self._session
            self._update_state("starting")
            if not await self._load_symbols():
                return
            # the all-market liquidation stream goes first, on a socket with busy streams:
            # it can be quiet for minutes, and must not make its socket look stale
            streams = ["!forceOrder@arr"]
            for s in self.symbols:
                ls = s.lower()
                streams += [f"{ls}@aggTrade", f"{ls}@markPrice@1s", f"{ls}@kline_1m"]
            n = self.settings.max_streams_per_connection
            for i in range(0, len(streams), n):
                chunk = streams[i:i + n]
                syms = tuple(dict.fromkeys(x.split("@")[0].upper() for x in chunk
                                           if not x.startswith("!")))
                url = f"{self.ws_url}/market/stream?streams={'/'.join(chunk)}"
                self._conns.append(_Conn(len(self._conns), chunk, syms, url))
            if self.rest is not None:
                # REST pollers may wait out a ban or a retry: stop() cancels them
                self._pollers = [self._spawn(self._poll_oi())]
                if self.on_steps is not None:
                    self._pollers.append(self._spawn(self._poll_steps()))
            await asyncio.gather(*(self._run_conn(c) for c in self._conns))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug of ours: say so rather than die silently
            self.counters["errors"] += 1
            self._emit_status(FeedState.ERROR, f"internal error: {type(e).__name__}: {e}")
        finally:
            self._stopping = True
            for c in self._conns:
                for ws in (c.ws, c.successor):
                    if ws is not None and not ws.closed:
                        await _close_quietly(ws)
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._own_session and self._session is not None:
                await self._session.close()
                self._session = None
                if self.rest is not None:
                    self.rest._session = None
            self._emit_status(FeedState.STOPPED, "stopped")

    async def stop(self) -> None:
        self._stopping = True
        for t in self._pollers:
            t.cancel()
        for c in self._conns:
            for ws in (c.ws, c.successor):
                if ws is not None and not ws.closed:
                    await _close_quietly(ws)

    async def ingest(self, url: str) -> None:
        """Read one WebSocket at ``url`` (a full URL) until it closes, through the same path
        as live data (parse, dedupe, bar builder, ``on_event``): for replays and benchmarks.
        No reconnects, no watchdog."""
        own = self._session is None
        if own:
            self._session = aiohttp.ClientSession(trust_env=True)
        c = _Conn(-1, (), tuple(self.symbols), url)
        try:
            ws = await self._open(c)
            try:
                await self._pump(c, ws, Backoff(1.0, 1.0))
            finally:
                await _close_quietly(ws)
        finally:
            if own:
                await self._session.close()
                self._session = None

    async def backfill_gap(self, gap: Gap, interval_ms: int = STEP_MS) -> dict[str, Backfill]:
        """Closed bars covering ``gap`` for each of its symbols, over REST (needs ``rest``).
        Bars that have not closed yet are not included: fetch them when they close."""
        if self.rest is None:
            raise RuntimeError("backfill_gap needs a REST client (rest= or rest_url=)")
        a, b = gap.bar_window(interval_ms)
        return {s: await self.rest.backfill(s, a, b, interval_ms=interval_ms)
                for s in gap.symbols}

    # ---------------------------------------------------------------- symbols

    async def _load_symbols(self) -> bool:
        if self.rest is None:
            return True
        try:  # do not wait out a ban here: streaming needs no REST
            known = await self.rest.exchange_info(max_wait=0)
        except RestError as e:
            # Not fatal: stream what was asked and filter liquidations by it
            self.counters["errors"] += 1
            self._emit_status(FeedState.ERROR, f"exchangeInfo unavailable ({e}); "
                              "streaming the requested symbols unchecked")
            return True
        bad = [s for s in self.symbols if s not in known]
        if bad:
            self._emit_status(FeedState.ERROR, "unknown or delisted symbol(s) on Binance "
                              f"USDⓈ-M: {', '.join(bad)}; not streamed")
            self.symbols = [s for s in self.symbols if s in known]
            if not self.symbols:
                return False
        self.market_symbols = set(known)
        return True

    # ---------------------------------------------------------------- connections

    async def _open(self, c: _Conn):
        s = self.settings
        # decode_text=False: orjson parses the UTF-8 bytes directly, skipping a str copy
        return await asyncio.wait_for(self._session.ws_connect(
            c.url, autoping=True, heartbeat=None, compress=0, max_msg_size=0, decode_text=False,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=s.close_timeout_s)),
            s.connect_timeout_s)

    async def _run_conn(self, c: _Conn) -> None:
        s = self.settings
        backoff = Backoff(s.backoff_base_s, s.backoff_cap_s)
        reason = ""
        while not self._stopping:
            ws, c.successor = c.successor, None
            if ws is None:
                if (c.had_data or reason) and c.state is not FeedState.ERROR:
                    self._set_conn(c, FeedState.RECONNECTING, reason)  # not the first try
                try:
                    ws = await self._open(c)
                except (aiohttp.WSServerHandshakeError, aiohttp.ClientResponseError) as e:
                    delay = backoff.next()
                    reason = f"handshake refused: HTTP {e.status} {e.message}; retry in {delay:.1f} s"
                    self._set_conn(c, FeedState.ERROR, reason)
                    await self._sleep(delay)
                    continue
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                    delay = backoff.next()
                    reason = f"connect failed ({type(e).__name__}: {e}); retry in {delay:.1f} s"
                    self._set_conn(c, FeedState.RECONNECTING, reason)
                    await self._sleep(delay)
                    continue
                if c.opened:
                    self.counters["reconnects"] += 1
            if self._stopping:
                await _close_quietly(ws)
                break
            c.ws, c.why, c.stale, c.had_data, c.opened = ws, "", False, False, time.monotonic()
            watchdog = self._spawn(self._watch(c, ws))
            try:
                await self._pump(c, ws, backoff)
            finally:
                watchdog.cancel()
                await _close_quietly(ws)
            if self._stopping:
                break
            if c.successor is not None:  # rotated before the 24 h cut: no gap, no backoff
                continue
            code = ws.close_code
            why = c.why or (f"closed by the server (code {code})" if code else "connection lost")
            if c.last_ms is not None and c.gap_from is None:
                c.gap_from, c.gap_why = c.last_ms, why
            if c.stale:
                self.counters["stale"] += 1
                self._set_conn(c, FeedState.STALE, f"{why}; replacing the connection")
            delay = backoff.next()
            reason = f"{why}; reconnecting in {delay:.1f} s"
            self._set_conn(c, FeedState.RECONNECTING, reason)
            await self._sleep(delay)

    async def _pump(self, c: _Conn, ws, backoff: Backoff) -> None:
        """Read frames until the socket closes. The hot path: keep it lean."""
        TEXT, BINARY = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        counters = self.counters
        on_frame = self._on_frame
        while True:
            msg = await ws.receive()
            t = msg.type
            if t is TEXT or t is BINARY:
                if on_frame(c, parse_frame(msg.data, counters)) and not c.had_data:
                    c.had_data = True
                    backoff.reset()  # reset only after real data: a socket that accepts and
                    self._first_data(c)  # then stays silent must keep backing off
            else:  # CLOSE / CLOSING / CLOSED / ERROR (pings are answered by aiohttp)
                return

    def _first_data(self, c: _Conn) -> None:
        self._set_conn(c, FeedState.LIVE, "receiving data")

    def _report_gap(self, c: _Conn, first_ms: int) -> None:
        gap = Gap(c.symbols, c.gap_from, first_ms, c.gap_why)
        c.gap_from = None
        if self._steps_due is not None:
            self._steps_due.set()  # closed steps missed during the gap: fetch them now
        self.counters["gaps"] += 1
        self.gaps.append(gap)
        del self.gaps[:-100]
        if self.on_gap is not None:
            try:
                self.on_gap(gap)
            except Exception:
                self.counters["callback_errors"] += 1

    def _on_frame(self, c: _Conn, events: list) -> bool:
        """Apply one frame's events; True if the frame carried market data."""
        if not events:
            # malformed or unknown frames still show the socket is delivering (not silent)
            c.data_frames += 1
            return False
        data = False
        for ev in events:
            cls = ev.__class__
            if cls is Trade:
                sym = ev.symbol
                if ev.trade_id <= self._last_trade.get(sym, -1):
                    self.counters["duplicates"] += 1  # replayed after a reconnect or overlap
                    data = True
                    continue
                self._last_trade[sym] = ev.trade_id
                self.bars.trade(VENUE, sym, ev.time, ev.price, ev.qty, ev.taker_buy)
                c.last_ms = ev.time  # gaps are measured on trade and mark times (a kline's
                if c.gap_from is not None:  # time is its bar's open, up to a minute earlier)
                    self._report_gap(c, ev.time)
            elif cls is Reply:
                continue
            elif cls is MarkPrice:
                old = self.last_mark.get(ev.symbol)
                if old is not None and ev.time <= old.time:
                    self.counters["duplicates"] += 1
                    data = True
                    continue
                self.last_mark[ev.symbol] = ev
                c.last_ms = ev.time
                if ev.time // self.step_ms != self._step_seen:  # a step closed: fetch it
                    self._step_seen = ev.time // self.step_ms
                    if self._steps_due is not None:
                        self._steps_due.set()
                if c.gap_from is not None:
                    self._report_gap(c, ev.time)
            elif cls is Bar:
                key = (ev.time, ev.closed)
                last = self._last_kline.get(ev.symbol)
                if last is not None and (key < last or (last[1] and ev.time == last[0])):
                    self.counters["duplicates"] += 1
                    data = True
                    continue
                self._last_kline[ev.symbol] = key
                self.bars.kline(ev)
            elif cls is Liquidation:
                if ev.symbol not in self.market_symbols:  # COIN-M on the all-market stream
                    self.counters["foreign"] += 1
                    data = True
                    continue
                k = (ev.symbol, ev.time, ev.side, ev.price, ev.qty)
                if k in self._recent_liq:  # no ids: dedupe on the whole order (overlap)
                    self.counters["duplicates"] += 1
                    data = True
                    continue
                self._recent_liq[k] = None
                if len(self._recent_liq) > 512:
                    del self._recent_liq[next(iter(self._recent_liq))]
            data = True
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:
                    self.counters["callback_errors"] += 1
        if data:
            c.data_frames += 1
        return data

    async def _watch(self, c: _Conn, ws) -> None:
        """Stale detection (data frames only: pings and replies do not count) and the
        proactive rotation before the venue's 24-hour cut."""
        s = self.settings
        check = min(1.0, s.stale_timeout_s / 4)
        seen, quiet_since = c.data_frames, time.monotonic()
        while not ws.closed:
            await asyncio.sleep(check)
            now = time.monotonic()
            if c.data_frames != seen:
                seen, quiet_since = c.data_frames, now
            elif now - quiet_since >= s.stale_timeout_s:
                c.stale = True
                c.why = f"no data for {s.stale_timeout_s:g} s"
                await _close_quietly(ws)
                return
            if now - c.opened >= s.max_connection_age_s and c.successor is None:
                # make before break: open the new socket, keep reading the old one for a
                # moment while the new one buffers, then switch; the overlap's duplicates
                # are dropped (trades by id), so nothing is lost and nothing is doubled
                try:
                    new = await self._open(c)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    new = None
                self.counters["rotations"] += 1
                c.why = "rotated before the 24-hour cut"
                if new is not None:
                    c.successor = new
                    await asyncio.sleep(s.rotation_overlap_s)
                await _close_quietly(ws)
                return

    async def _poll_oi(self) -> None:
        """Open interest every ``oi_poll_s``: one poll at a time (a slow poll delays the next
        instead of overlapping it), skipped while REST is banned or rate limited."""
        rest = self.rest
        while not self._stopping:
            t0 = time.monotonic()
            if not rest.limiter.blocked:
                for sym in self.symbols:
                    try:
                        oi = await rest.open_interest(sym, max_wait=0)
                    except BannedError:
                        break
                    except RestError:
                        self.counters["oi_errors"] += 1
                        continue
                    except Exception:
                        self.counters["oi_errors"] += 1
                        continue
                    self.counters["oi_polls"] += 1
                    old = self.last_oi.get(sym)
                    self.last_oi[sym] = oi
                    if self.on_event is not None and (old is None or old != oi):
                        try:
                            self.on_event(oi)
                        except Exception:
                            self.counters["callback_errors"] += 1
            elif self.banned_until is not None and not rest.limiter.banned:
                pass  # the ban is over; the next successful request reports it
            await self._sleep(self.settings.oi_poll_s - (time.monotonic() - t0))

    def steps_from(self, symbol: str, open_ms: int) -> None:
        """Deliver closed steps of ``symbol`` from the step opening at ``open_ms`` on (the end
        of the caller's initial backfill). Without it, delivery starts at the first step that
        closes while the feed runs."""
        self._next_step[symbol.upper()] = open_ms

    async def _poll_steps(self) -> None:
        """Closed steps over REST (klines, mark klines, open-interest history), the only
        source of closed model steps, delivered in order through ``on_steps(Backfill)``.

        Runs when a step boundary passes in exchange time (seen on mark prices) and after
        every gap, and always asks from the last step delivered: a disconnect or a ban only
        makes the next batch longer, so nothing is missed and nothing is delivered twice.
        A tail of bars whose open interest the venue has not published yet is held back and
        asked again after ``step_retry_s`` (given up on after ``oi_wait_steps`` steps)."""
        s, rest = self.settings, self.rest
        retry_at = None
        while not self._stopping:
            timeout = None if retry_at is None else max(0.0, retry_at - time.monotonic())
            try:
                await asyncio.wait_for(self._steps_due.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._steps_due.clear()
            retry_at = None
            await asyncio.sleep(s.step_settle_s)  # let the venue publish the closed step
            for sym in self.symbols:
                start = self._next_step.get(sym)
                if start is None:
                    if self._step_seen < 0:
                        continue
                    start = (self._step_seen - 1) * self.step_ms
                try:
                    bf = await rest.backfill(sym, start, interval_ms=self.step_ms)
                except RestError as e:
                    self.counters["step_errors"] += 1
                    retry_at = time.monotonic() + s.step_retry_s
                    if isinstance(e, BannedError):
                        break
                    continue
                self.counters["step_fetches"] += 1
                t, oi = bf["time"], bf["open_interest"]
                n = len(t)
                known = np.flatnonzero(np.isfinite(oi))
                keep = int(known[-1]) + 1 if known.size else 0
                if keep < n:
                    # held back until the venue publishes their open interest, but not forever
                    too_old = bf.now - (int(t[keep]) + self.step_ms) > s.oi_wait_steps * self.step_ms
                    if too_old:
                        keep = n
                    else:
                        retry_at = time.monotonic() + s.step_retry_s
                if keep == 0:
                    continue
                if keep < n:
                    part = Backfill({k: v[:keep] for k, v in bf.items()})
                    part.symbol, part.interval_ms, part.warnings = sym, self.step_ms, bf.warnings
                    part.start, part.end, part.now = bf.start, int(t[keep - 1]) + self.step_ms, bf.now
                    bf = part
                self._next_step[sym] = bf.end
                try:
                    self.on_steps(bf)
                except Exception:
                    self.counters["callback_errors"] += 1

    # ---------------------------------------------------------------- helpers

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early when stopping."""
        end = time.monotonic() + max(0.0, seconds)
        while not self._stopping:
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.2))


async def _close_quietly(ws) -> None:
    try:
        await ws.close()
    except Exception:
        pass
