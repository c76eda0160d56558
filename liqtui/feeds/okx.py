"""OKX v5 USDT swaps: REST backfill and the live WebSocket feed.

``OkxRest`` pages candles (newest first, ≤ 100 rows a page: ``/market/candles`` for the latest
1,440 rows, ``/market/history-candles`` beyond) and the per-instrument open-interest history
(rubik, 5-minute rows; *not* the currency-wide ``open-interest-volume``) into the closed steps
the model takes, converting contracts to base units with each instrument's ``ctVal``. OKX
limits each endpoint per IP (candles 40 / 2 s, history 20 / 2 s, rubik 5 / 2 s): a sliding
window per endpoint keeps us under them, and a 429 / code 50011 is waited out and retried
(``counters["http_429"]``). Candles carry no taker-buy volume: ``taker_buy_quote_volume`` is
NaN, which the model reads as a 0.5 share. Mark-price extremes come from the mark-price
candles (``/market/mark-price-candles``, ``/market/history-mark-price-candles``).

``OkxLive`` keeps two sockets, ``/ws/v5/public`` (trades, mark price, open interest and the
instType-wide ``liquidation-orders``) and ``/ws/v5/business`` (``candle1m``: OKX serves candles
only there), subscribes after every (re)connect, checks the one ack per arg, sends the text
``ping`` after ``ping_after_s`` without any message and replaces a socket whose ``pong`` does
not come, and moves to a new socket (make before break) when OKX announces a service upgrade
(notice 64008). Liquidations of swaps we do not track are dropped (the channel brings all).
Everything else (states, dedupe, gaps, closed steps over REST) is ``LiveFeed``'s.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import time
from collections import deque

import aiohttp

from .backoff import Backoff
from .events import FeedState, MarkPrice, OpenInterest, Reply
from .live import STEP_MS, Conn, LiveFeed, _close_quietly
from .okx_parse import (
    VENUE,
    Instrument,
    Instruments,
    OkxApiError,
    inst_id,
    loads,
    parse_candles,
    parse_mark_candles,
    parse_message,
    parse_oi_history,
    unwrap,
)
from .rest import (
    Backfill,
    BannedError,
    RestClient,
    RestError,
    UnknownSymbolError,
    check_base_url,
    now_ms,
    utc,
)
from .ratelimit import server_wait
from .venues import VENUES
from .settings import FeedSettings

DEFAULT_REST_URL = VENUES["okx"].rest_url   # the registry declares them
DEFAULT_WS_URL = VENUES["okx"].ws_url
PAGE = 100                 # rows per candles / history-candles / rubik page (safe everywhere)
RECENT_ROWS = 1440         # /market/candles and rubik serve the latest 1,440 rows
OI_MARGIN = 72             # rubik rows not relied on: its window moves on while we page
BARS = {60_000: "1m", 180_000: "3m", 300_000: "5m", 900_000: "15m", 1_800_000: "30m",
        3_600_000: "1H", 7_200_000: "2H", 14_400_000: "4H", 21_600_000: "6Hutc",
        43_200_000: "12Hutc", 86_400_000: "1Dutc"}
OI_PERIODS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1H": 3_600_000,
              "2H": 7_200_000, "4H": 14_400_000, "6H": 21_600_000, "12H": 43_200_000,
              "1D": 86_400_000}
CANDLES = "/api/v5/market/candles"
HISTORY = "/api/v5/market/history-candles"
MARK_CANDLES = "/api/v5/market/mark-price-candles"
MARK_HISTORY = "/api/v5/market/history-mark-price-candles"
RUBIK_OI = "/api/v5/rubik/stat/contracts/open-interest-history"
LIMITS = {                 # path → (requests, per seconds), per IP, as OKX documents them
    CANDLES: (40, 2.0), HISTORY: (20, 2.0), RUBIK_OI: (5, 2.0), MARK_CANDLES: (20, 2.0),
    MARK_HISTORY: (20, 2.0),
    "/api/v5/public/open-interest": (20, 2.0), "/api/v5/public/mark-price": (10, 2.0),
    "/api/v5/public/instruments": (20, 2.0), "/api/v5/public/time": (10, 2.0),
}
RATE_LIMITED = "50011"
BAD_INSTRUMENT = "51001"


# ================================================================================ REST


class EndpointLimiter:
    """OKX's per-endpoint request limits, kept with a sliding window per path (a little
    below the venue's number, for requests in flight), and a pause for everything after a
    429. OKX does not ban: ``banned`` is always False."""

    banned = False

    def __init__(self, limits: dict | None = None, share: float = 0.9):
        self.limits = {p: (max(1, int(n * share)), per) for p, (n, per) in
                       (limits or LIMITS).items()}
        self._sent: dict[str, deque] = {}
        self._paused_until = 0.0   # monotonic
        self.waited_s = 0.0

    @property
    def blocked(self) -> bool:
        return time.monotonic() < self._paused_until

    def throttle(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))

    def unban(self) -> None:
        """Nothing to end: OKX does not ban (``RestClient._rest_recovered``)."""

    async def acquire(self, path: str, max_wait: float = float("inf")) -> None:
        n, per = self.limits.get(path, (5, 2.0))
        q = self._sent.setdefault(path, deque())
        while True:
            now = time.monotonic()
            while q and q[0] <= now - per:
                q.popleft()
            wait = max(self._paused_until - now, q[0] + per - now if len(q) >= n else 0.0)
            if wait <= 0:
                break
            if wait > max_wait:
                until = int((time.time() + wait) * 1000)
                raise BannedError(f"OKX REST rate limited until {utc(until)}", status=429,
                                  until=until)
            self.waited_s += wait
            await asyncio.sleep(wait)
        q.append(time.monotonic())


class OkxRest(RestClient):
    VENUE = VENUE
    LABEL = "OKX"

    def __init__(self, base_url: str = DEFAULT_REST_URL, *, session=None, limiter=None,
                 on_status=None, settings: FeedSettings | None = None):
        super().__init__(base_url, session=session, on_status=on_status, settings=settings)
        self.limiter = limiter or EndpointLimiter()
        self.instruments: Instruments | None = None
        self.counters = dict.fromkeys(
            ("requests", "retries", "http_429", "http_5xx", "timeouts", "errors"), 0)
        self.by_path: dict[str, int] = {}   # requests sent, per endpoint

    # ---------------------------------------------------------------- plumbing

    async def _get(self, path: str, params: dict | None = None, *,
                   max_wait: float | None = None) -> list:
        """The ``data`` of a GET, obeying the endpoint's window; retries 5xx, timeouts and
        network errors with capped backoff; waits out 429 / 50011 (OKX sends no
        Retry-After: the endpoint's window, doubling) up to ``max_wait`` seconds in all."""
        s = self.settings
        max_wait = s.max_rest_wait_s if max_wait is None else max_wait
        url = self.base_url + path
        backoff = Backoff(s.rest_backoff_base_s, s.rest_backoff_cap_s)
        limited = Backoff(self.limiter.limits.get(path, (1, 2.0))[1], 60.0)
        failures = 0
        while True:
            await self.limiter.acquire(path, max_wait)
            self.counters["requests"] += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            status, headers, body, problem = await self._attempt(url, params)
            if problem is None:
                limited_now = status == 429  # with or without the envelope
                try:
                    data = unwrap(loads(body))
                    if self._banned:
                        self._rest_recovered()
                    return data
                except OkxApiError as e:
                    if e.code != RATE_LIMITED and not limited_now:
                        raise self._error(path, params, status, e) from None
                    limited_now = True
                except Exception:
                    if not limited_now:
                        if status != 200:
                            self.counters["errors"] += 1
                            raise RestError(f"OKX REST {path}: HTTP {status}",
                                            status=status) from None
                        problem = "truncated or malformed JSON body"
                if limited_now:  # wait the window out (doubling), then ask again
                    self.counters["http_429"] += 1
                    if limited.attempts >= 12:
                        raise RestError(f"OKX REST {path}: rate limited "
                                        f"{limited.attempts} times in a row", status=429)
                    # OKX sends no Retry-After: honour one if a proxy (or the sim) does
                    wait = server_wait(headers.get("Retry-After"), default=limited.next(),
                                       cap=s.max_limit_wait_s, counters=self.counters)
                    self.limiter.throttle(wait)
                    if wait > s.visible_wait_s:
                        until = now_ms() + int(wait * 1000)
                        self._banned = FeedState.LIMITED
                        self._emit(FeedState.LIMITED, "OKX REST rate limited (429 / 50011) "
                                   f"until {utc(until)}", until)
                    continue
            failures += 1
            await self._failed(path, failures, problem, backoff)

    def _error(self, path, params, status, e: OkxApiError) -> RestError:
        self.counters["errors"] += 1
        if e.code == BAD_INSTRUMENT and params and "instId" in params:
            inst = params["instId"]
            return UnknownSymbolError(inst, f"unknown instrument {inst!r} on OKX ({e.msg})")
        return RestError(f"OKX REST {path}: HTTP {status}, {e}", status=status,
                         code=int(e.code) if e.code.isdigit() else None)

    # ---------------------------------------------------------------- symbols

    async def load_instruments(self, *, max_wait: float | None = None) -> Instruments:
        """Every swap (fetched once): ctVal, tickSz, lotSz, state, by instId."""
        if self.instruments is None:
            data = await self._get("/api/v5/public/instruments", {"instType": "SWAP"},
                                   max_wait=max_wait)
            try:
                self.instruments = Instruments.from_data(data)
            except ValueError as e:
                raise RestError(f"OKX instruments: {e}") from None
        return self.instruments

    async def exchange_info(self, *, max_wait: float | None = None) -> dict[str, Instrument]:
        """Our symbols (linear swaps that are live) by name, e.g. ``BTCUSDT``."""
        ins = await self.load_instruments(max_wait=max_wait)
        return {s: i for s, i in ins.symbols().items() if i.state == "live"}

    async def symbol(self, symbol: str) -> Instrument:
        """The instrument of ``symbol`` (our name), or ``UnknownSymbolError`` naming it."""
        sym = symbol.strip().upper()
        try:
            inst = inst_id(sym)
        except ValueError as e:
            raise UnknownSymbolError(sym, str(e)) from None
        ins = await self.load_instruments()
        live = await self.exchange_info()
        if sym in live:
            return live[sym]
        other = ins.get(inst)
        if other is not None:
            raise UnknownSymbolError(sym, f"symbol {sym!r} ({inst}) on OKX is not trading "
                                     f"(state {other.state})")
        near = difflib.get_close_matches(sym, list(live), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise UnknownSymbolError(sym, f"unknown symbol {sym!r}: no {inst} swap on OKX{hint}")

    # ---------------------------------------------------------------- single values

    async def server_time(self, *, max_wait: float | None = None) -> int:
        data = await self._get("/api/v5/public/time", max_wait=max_wait)
        try:
            return int(data[0]["ts"])
        except (IndexError, KeyError, TypeError, ValueError):
            raise RestError("OKX /api/v5/public/time: no 'ts' in the answer") from None

    async def open_interest(self, symbol: str, *, max_wait: float | None = None) -> OpenInterest:
        info = await self.symbol(symbol)
        data = await self._get("/api/v5/public/open-interest",
                               {"instType": "SWAP", "instId": info.inst_id}, max_wait=max_wait)
        try:
            d = data[0]
            ccy = d.get("oiCcy")
            base = float(ccy) if ccy not in (None, "") else float(d["oi"]) * info.ct_val
            return OpenInterest(VENUE, info.symbol, int(d["ts"]), base)
        except (IndexError, KeyError, TypeError, ValueError, AttributeError):
            raise RestError("OKX open-interest: unexpected answer") from None

    async def mark_price(self, symbol: str) -> MarkPrice:
        info = await self.symbol(symbol)
        data = await self._get("/api/v5/public/mark-price",
                               {"instType": "SWAP", "instId": info.inst_id})
        try:
            return MarkPrice(VENUE, info.symbol, int(data[0]["ts"]), float(data[0]["markPx"]))
        except (IndexError, KeyError, TypeError, ValueError):
            raise RestError("OKX mark-price: unexpected answer") from None

    # ---------------------------------------------------------------- history

    async def _candles(self, info: Instrument, bar: str, iv: int, first: int, last: int,
                       now: int, progress, mark: bool = False) -> list[tuple]:
        """Bars (or mark-price bars) opening in [first, last] as rows of 8: (open, o, h, l,
        c, base volume, quote volume, taker-buy quote volume: NaN, OKX has none). Newest page
        first, each request naming its whole window (``after`` = older than, ``before`` =
        newer than); the latest 1,440 rows from the recent endpoint, older from history."""
        rows: list[tuple] = []
        recent = now // iv * iv - (RECENT_ROWS - 1) * iv   # oldest row the recent one has
        paths = (MARK_CANDLES, MARK_HISTORY) if mark else (CANDLES, HISTORY)
        nan = float("nan")
        cursor = last
        while cursor >= first:
            n = min(PAGE, (cursor - first) // iv + 1)
            wfirst = cursor - (n - 1) * iv
            path = paths[0] if wfirst >= recent else paths[1]
            data = await self._get(path, {"instId": info.inst_id, "bar": bar,
                                          "after": cursor + 1, "before": wfirst - 1,
                                          "limit": n})
            try:
                page = parse_mark_candles(data) if mark else parse_candles(data, info.ct_val)
            except (ValueError, TypeError, IndexError) as e:
                raise RestError(f"OKX {path}: {e}") from None
            rows.extend((r[:5] + (0.0, 0.0, nan)) if mark else (r[:7] + (nan,))
                        for r in page if wfirst <= r[0] <= cursor)
            cursor = wfirst - iv
            progress(n)
        return rows

    async def _oi_hist(self, info: Instrument, period_name: str, period: int, first: int,
                       last: int, progress) -> list[tuple[int, float]]:
        rows: list[tuple[int, float]] = []
        cursor = last
        while cursor >= first:
            n = min(PAGE, (cursor - first) // period + 1)
            wfirst = cursor - (n - 1) * period
            # end: older than ts, begin: newer than ts (both exclusive, as after/before)
            data = await self._get(RUBIK_OI, {"instId": info.inst_id, "period": period_name,
                                              "begin": wfirst - 1, "end": cursor + 1,
                                              "limit": n})
            try:
                page = parse_oi_history(data)
            except (ValueError, TypeError, IndexError) as e:
                raise RestError(f"OKX open-interest-history: {e}") from None
            rows.extend(r for r in page if wfirst <= r[0] <= cursor)
            cursor = wfirst - period
            progress(n)
        return rows

    async def backfill(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None,
                       *, lookback_ms: int | None = None, interval_ms: int = STEP_MS,
                       progress=None) -> Backfill:
        """Closed bars opening at or after ``start_ms`` and closing at or before ``end_ms``
        (default: the exchange's now), volumes in base units, mark-price extremes, open
        interest at each bar's close (NaN where OKX has none), no taker-buy volume (NaN).
        ``lookback_ms`` instead of ``start_ms`` counts back from the end. The start is
        clamped to the open-interest history OKX serves (1,440 periods) with a warning.
        Raises ``UnknownSymbolError``, ``BannedError`` or ``RestError``."""
        bar = BARS.get(interval_ms)
        if bar is None:
            raise ValueError(f"interval_ms {interval_ms}: expected one of "
                             f"{', '.join(str(k) for k in BARS)}")
        step = max(interval_ms, STEP_MS)
        period_name = next(p for p in reversed(OI_PERIODS)
                           if OI_PERIODS[p] <= step and step % OI_PERIODS[p] == 0)
        period = OI_PERIODS[period_name]
        info = await self.symbol(symbol)
        return await self._backfill(info, start_ms, end_ms, lookback_ms, interval_ms, bar,
                                    period_name, period, progress)

    async def _backfill(self, info, start_ms, end_ms, lookback_ms, iv, bar, period_name,
                        period, progress) -> Backfill:
        async def fetch(first, last, now, count):
            kl = await self._candles(info, bar, iv, first, last, now, count)
            mk = await self._candles(info, bar, iv, first, last, now, count, mark=True)
            # a row stamped T is the open interest at instant T: the close of the bar opening
            # at T − interval
            oi = await self._oi_hist(info, period_name, period, (first + iv) // period * period,
                                     last + iv, lambda n: count(n * period // iv))
            return kl, mk, oi

        def oi_depth(now, period):  # the oldest rubik row we can rely on while paging
            return (now // period * period - (RECENT_ROWS - 1 - OI_MARGIN) * period,
                    f"the latest {RECENT_ROWS} open-interest periods of {period_name} "
                    f"({RECENT_ROWS * period / 86_400_000:g} days)")

        return await self._steps(info.symbol, start_ms, end_ms, lookback_ms, iv, period, fetch,
                                 progress, oi_depth)


# ================================================================================ live


class OkxLive(LiveFeed):
    """OKX live: a /public socket (liquidation-orders for every SWAP first, then trades,
    mark-price and open-interest per instrument) and a /business socket (candle1m)."""

    VENUE = VENUE
    LABEL = "OKX USDT swaps"

    def __init__(self, ws_url: str = DEFAULT_WS_URL, symbols=("BTCUSDT",), *, rest=None,
                 rest_url: str | None = None, session=None,
                 settings: FeedSettings | None = None, instruments: Instruments | None = None,
                 ping_after_s: float = 20.0, **kwargs):
        settings = settings or FeedSettings()
        if rest is None and rest_url is not None:
            rest = OkxRest(rest_url, session=session, settings=settings)
        if rest is None and instruments is None:
            raise ValueError("OkxLive needs rest=/rest_url= or instruments= (contract sizes)")
        if not ping_after_s > 0:
            raise ValueError(f"ping_after_s = {ping_after_s!r}: expected a positive number")
        super().__init__(check_base_url(ws_url, ("ws", "wss"), "OKX WebSocket URL"),
                         symbols, rest=rest, session=session, settings=settings, **kwargs)
        for s in self.symbols:
            inst_id(s)  # a clear ValueError for a name OKX swaps cannot have (BTCUSD, …)
        self.instruments = instruments
        self.ping_after_s = ping_after_s
        self._conv: dict[str, tuple[str, float]] = {}   # instId → (symbol, ctVal), tracked
        if instruments is not None:
            self._track(instruments)
        self.notice = ""                       # the latest notice OKX sent
        self.refused: dict[tuple, str] = {}    # subscription arg → OKX's error message
        self._pending: dict[int, set] = {}     # per socket: args sent and not yet acked
        self.subscribes: dict[int, int] = {}   # per socket: subscriptions sent (every connect)
        self._heard: dict[int, float] = {}     # per socket: when a reply or pong last came
        self.counters.update(dict.fromkeys(("acks", "ws_errors", "notices", "pings",
                                            "pongs", "pong_timeouts"), 0))

    # ---------------------------------------------------------------- venue hooks

    def _plan(self):
        insts = [inst_id(s) for s in self.symbols]
        public = [{"channel": "liquidation-orders", "instType": "SWAP"}]
        for i in insts:
            public += [{"channel": ch, "instId": i}
                       for ch in ("trades", "mark-price", "open-interest")]
        business = [{"channel": "candle1m", "instId": i} for i in insts]
        syms = tuple(self.symbols)
        return [(f"{self.ws_url}/ws/v5/public", public, syms),
                (f"{self.ws_url}/ws/v5/business", business, syms)]

    async def _subscribe(self, c: Conn, ws) -> None:
        self._pending[c.cid] = {_key(a) for a in c.streams}
        self.subscribes[c.cid] = self.subscribes.get(c.cid, 0) + 1
        for i in range(0, len(c.streams), 50):   # well under OKX's 64 KB request size
            await ws.send_str(_dumps({"op": "subscribe", "args": c.streams[i:i + 50]}))

    async def _keepalive(self, c: Conn, ws) -> None:
        """Text ``ping`` after ``ping_after_s`` without any message; no ``pong`` within as
        long again: the socket is dead, replace it (OKX itself cuts at 30 s)."""
        every = self.ping_after_s
        check = min(1.0, every / 4)
        seen, quiet = c.data_frames, time.monotonic()
        while not ws.closed:
            await asyncio.sleep(check)
            now = time.monotonic()
            if c.data_frames != seen or self._heard.get(c.cid, 0.0) > quiet:
                seen, quiet = c.data_frames, now
                continue
            if now - quiet < every:
                continue
            sent = time.monotonic()
            try:
                await ws.send_str("ping")
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return  # closing already: the connection loop takes it from here
            self.counters["pings"] += 1
            while time.monotonic() - sent < every and self._heard.get(c.cid, 0.0) < sent:
                await asyncio.sleep(check)
            if self._heard.get(c.cid, 0.0) < sent and not ws.closed:
                self.counters["pong_timeouts"] += 1
                c.why = f"no pong within {every:g} s"
                await _close_quietly(ws)
                return
            seen, quiet = c.data_frames, time.monotonic()

    def _parse(self, data) -> list:
        return parse_message(data, self._conv, self.counters)

    def _on_frame(self, c: Conn, events: list) -> bool:
        if events and events[0].__class__ is Reply:
            self._replies(c, events)
            return False
        return LiveFeed._on_frame(self, c, events)

    def _replies(self, c: Conn, replies: list) -> None:
        self._heard[c.cid] = time.monotonic()
        for r in replies:
            res = r.result
            if res == "pong":
                self.counters["pongs"] += 1
            elif r.code is None and isinstance(res, dict):   # an ack: one per arg
                self.counters["acks"] += 1
                self._pending.get(c.cid, set()).discard(_key(res.get("arg") or {}))
            elif isinstance(res, dict):                     # notice: 64008, the venue will
                self.counters["notices"] += 1               # close the socket soon: move to
                self.notice = f"{r.code} {r.msg}"           # a new one first (make before
                c.opened = float("-inf")                    # break, as before the 24 h cut)
            else:                                           # error: the socket stays open
                self.counters["ws_errors"] += 1
                args = [a for a in self._pending.get(c.cid, ()) if _named_in(a, r.msg)]
                for a in args:
                    self._pending[c.cid].discard(a)
                    self.refused[a] = r.msg
                self._emit_status(FeedState.ERROR, f"OKX refused a subscription: {r.code} "
                                  f"{r.msg}".rstrip())

    def unacked(self) -> set:
        """Subscription args sent on the current sockets and not acknowledged (yet)."""
        return set().union(*self._pending.values()) if self._pending else set()

    async def _load_symbols(self) -> bool:
        """The instruments (ctVal for every size) before anything is parsed: without them no
        size can be converted, so keep asking (ERROR, with backoff) until OKX answers."""
        if self.rest is not None:
            s = self.settings
            backoff = Backoff(s.backoff_base_s, s.backoff_cap_s)
            while not self._stopping:
                try:
                    ins = await self.rest.load_instruments(max_wait=s.backoff_cap_s)
                    break
                except RestError as e:
                    if self.instruments is not None:
                        ins = self.instruments
                        break
                    self.counters["errors"] += 1
                    delay = backoff.next()
                    self._emit_status(FeedState.ERROR, f"OKX instruments unavailable ({e}); "
                                      f"retry in {delay:.1f} s")
                    await self._sleep(delay)
            else:
                return False
            self.instruments = ins
        ok = await super()._load_symbols()
        self._track(self.instruments)
        return ok

    def _track(self, ins: Instruments) -> None:
        """liquidation-orders brings every swap: keep the tracked ones (the parser counts the
        others as foreign without building events for them)."""
        self.instruments = ins
        self.market_symbols = set(self.symbols)
        self._conv = {i: v for i, v in ins.conv.items() if v[0] in self.market_symbols}


def _key(arg: dict) -> tuple:
    return (arg.get("channel"), arg.get("instId") or arg.get("instType"))


def _named_in(key: tuple, msg: str) -> bool:
    """OKX's error names the channel and instrument in its text: 'channel:candle1m,instId:…'."""
    ch, target = key
    return f"channel:{ch}," in msg and f":{target}" in msg


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))
