"""The venue-neutral live feed: WebSockets, states, dedupe, gaps and closed steps.

``LiveFeed`` keeps the venue's sockets open (capped backoff with jitter, a stale watchdog fed
by accepted data only, a proactive rotation before a connection's age limit), turns every
failure into a ``FeedStatus``, drops duplicates and implausible data (times or trade ids far
outside the socket's plausible window, so that one bad frame cannot freeze a feed: see
``_on_frame``), feeds the ``BarBuilder`` (the provisional newest column), keeps the last mark
price and open interest, reports gaps, and fetches closed model steps over REST after every
step boundary and every gap, so a disconnected run ends exactly like an uninterrupted one. A
venue module (``binance``, ``bybit``, ``okx``) subclasses it with its URLs, subscriptions,
keep-alive and frame parser. Nothing here raises into a running app.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import numpy as np

from .backoff import Backoff
from .bars import BarBuilder
from .contract import VenueLive
from .events import (
    Bar,
    FeedState,
    FeedStatus,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Reply,
    Trade,
    new_counters,
)
from .rest import CLOSE_BOUND_S, Backfill, BannedError, RestError, close_session, now_ms
from .settings import FeedSettings

from ..units import STEP_MS  # noqa: E402 - binance, bybit, okx import it from here too


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


class Conn:
    """One WebSocket and its bookkeeping."""

    __slots__ = ("cid", "streams", "symbols", "url", "ws", "state", "data_frames",
                 "last_ms", "why", "stale", "successor", "opened", "had_data",
                 "gap_from", "gap_why", "subscribed", "epoch", "ref_ms", "ref_at")

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
        self.subscribed = False  # the successor socket was subscribed during the rotation
        self.epoch = 0          # which socket this is (a new number for every socket opened)
        self.ref_ms = None      # newest exchange time accepted on the current socket, and
        self.ref_at = 0.0       # when (monotonic): the plausible window is measured from it


class LiveFeed(VenueLive):
    """The venue-neutral live feed: sockets, states, dedupe, gaps and closed steps (the
    public half of ``contract.VenueLive``).

    A venue subclass says which sockets to open (``_plan``), what to send on each after every
    (re)connect (``_subscribe``), how to keep it alive (``_keepalive``), how to read a frame
    (``_parse``) and how to check its symbols (``_load_symbols``); everything that decides
    whether data is lost or doubled lives here, once.
    """

    VENUE = ""      # events.*.venue and FeedStatus.venue
    LABEL = ""      # for messages: "Binance USDⓈ-M"

    def __init__(self, ws_url: str, symbols=("BTCUSDT",), *, rest=None, session=None,
                 settings: FeedSettings | None = None, on_event=None, on_status=None,
                 on_gap=None, on_steps=None, step_ms: int = STEP_MS,
                 bars: BarBuilder | None = None):
        self.ws_url = ws_url
        syms = [s.strip().upper() for s in ([symbols] if isinstance(symbols, str) else symbols)]
        if not syms or not all(syms):
            raise ValueError(f"{type(self).__name__} needs at least one symbol")
        self.symbols = list(dict.fromkeys(syms))
        self.settings = settings or FeedSettings()
        self.on_event = on_event
        self.on_status = on_status
        self.on_gap = on_gap
        self.on_steps = on_steps
        self.step_ms = step_ms
        self.bars = bars if bars is not None else BarBuilder(
            step_ms, reset_ms=int(self.settings.max_age_s * 1000))
        self._session = session
        self._own_session = session is None
        self.rest = rest
        if rest is not None:
            rest.on_status = self._rest_status
        self.counters = new_counters()
        self.counters.update(dict.fromkeys(
            ("duplicates", "foreign", "late", "reconnects", "stale", "rotations", "gaps",
             "oi_polls", "oi_errors", "step_fetches", "step_errors", "callback_errors",
             "errors", "implausible"), 0))
        s = self.settings
        self._future_ms = int(s.max_future_s * 1000)
        self._age_ms = int(s.max_age_s * 1000)
        self._epochs = 0
        self.state: FeedState | None = None
        self.banned_until: int | None = None   # end of a REST ban or long rate limit
        self._rest_state = FeedState.BANNED    # which of the two ``banned_until`` is
        self.gaps: list[Gap] = []
        self.market_symbols: set[str] = set(self.symbols)  # the venue's symbol set once known
        self.last_mark: dict[str, MarkPrice] = {}
        self.last_oi: dict[str, OpenInterest] = {}
        self._last_trade: dict[str, tuple[int, int]] = {}  # symbol → (id, socket epoch)
        self._last_kline: dict[str, tuple[int, bool]] = {}
        self._recent_liq: dict[tuple, None] = {}
        self._conns: list[Conn] = []
        self._tasks: set[asyncio.Task] = set()
        self._pollers: list[asyncio.Task] = []
        self._next_step: dict[str, int] = {}   # per symbol: open time of the next step due
        self._step_seen = -1                   # newest exchange step index seen live
        self._steps_due: asyncio.Event | None = None
        self._stopping = False

    # ---------------------------------------------------------------- venue hooks
    # _plan and _parse are the venue's (abstract); _subscribe, _keepalive and _extra_pollers
    # default to nothing in contract.VenueLive

    # the largest step between two trade ids of a symbol on one socket (ids increase per
    # symbol at Binance (aggTrade) and OKX, by one per trade; ten million is days of trading)
    TRADE_ID_JUMP = 10_000_000

    def _new_trade(self, ev: Trade, c: Conn) -> str | None:
        """None for a new trade, else the counter it goes to: ``duplicates`` (seen already)
        or ``implausible`` (an id jumping more than ``TRADE_ID_JUMP`` from the last one
        accepted on the same socket). On a new socket the id sequence may have moved on or
        restarted: an id far below the last is then a new sequence, not a replay."""
        tid = ev.trade_id
        last = self._last_trade.get(ev.symbol)
        if last is not None:
            last_id, epoch = last
            if tid <= last_id:
                if last_id - tid <= self.TRADE_ID_JUMP:
                    return "duplicates"
                if epoch == c.epoch:
                    return "implausible"
            elif tid - last_id > self.TRADE_ID_JUMP and epoch == c.epoch:
                return "implausible"
        self._last_trade[ev.symbol] = (tid, c.epoch)
        return None

    # ---------------------------------------------------------------- state

    def _emit_status(self, state: FeedState, reason: str = "", until: int | None = None):
        if state is self.state and state not in (FeedState.BANNED, FeedState.LIMITED,
                                                 FeedState.ERROR):
            return
        self.state = state
        if self.on_status is not None:
            try:
                self.on_status(FeedStatus(self.VENUE, state, now_ms(), reason, until))
            except Exception:
                self.counters["callback_errors"] += 1

    def _update_state(self, reason: str = "") -> None:
        """The feed's state: BANNED / LIMITED while REST is banned / rate limited for longer
        than a few seconds (the pollers skip their turns), else the worst connection's."""
        if self._stopping:
            return
        if self.banned_until is not None:
            self._emit_status(self._rest_state, reason, self.banned_until)
            return
        states = [c.state for c in self._conns] or [FeedState.CONNECTING]
        worst = min(states, key=_WORST.index)
        self._emit_status(worst, reason)

    def _set_conn(self, c: Conn, state: FeedState, reason: str = "") -> None:
        if c.state is state and state is not FeedState.ERROR:
            return
        c.state = state
        self._update_state(reason)

    def _rest_status(self, st: FeedStatus) -> None:
        if st.state in (FeedState.BANNED, FeedState.LIMITED):
            if st.state is FeedState.LIMITED and self._rest_state is FeedState.BANNED \
                    and self.rest.limiter.banned:
                return  # still banned: a rate limit within the ban changes nothing
            self.banned_until, self._rest_state = st.until, st.state
            self._update_state(st.reason)
        elif (self.banned_until is not None and not self.rest.limiter.banned
              and not self.rest.limiter.blocked):
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
            for url, streams, syms in self._plan():
                self._conns.append(Conn(len(self._conns), streams, tuple(syms), url))
            # REST pollers may wait out a ban or a retry: stop() cancels them
            self._pollers = [self._spawn(p) for p in self._extra_pollers()]
            if self.rest is not None and self.on_steps is not None:
                self._pollers.append(self._spawn(self._poll_steps()))
            await asyncio.gather(*(self._run_conn(c) for c in self._conns))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug of ours: say so rather than die silently
            self.counters["errors"] += 1
            self._emit_status(FeedState.ERROR, f"internal error: {type(e).__name__}: {e}")
        finally:
            self._stopping = True
            await self._close_sockets()
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._own_session and self._session is not None:
                await close_session(self._session)
                self._session = None
                if self.rest is not None:
                    self.rest._session = None
            self._emit_status(FeedState.STOPPED, "stopped")

    async def stop(self) -> None:
        self._stopping = True
        for t in self._pollers:
            t.cancel()
        await self._close_sockets()

    async def _close_sockets(self) -> None:
        """Close every socket at once: each close is bounded, and so is their sum."""
        await asyncio.gather(*(_close_quietly(ws) for c in self._conns
                               for ws in (c.ws, c.successor) if ws is not None and not ws.closed))

    async def ingest(self, url: str) -> None:
        """Read one WebSocket at ``url`` (a full URL) until it closes, through the same path
        as live data (parse, dedupe, bar builder, ``on_event``): for replays and benchmarks.
        No reconnects, no watchdog."""
        own = self._session is None
        if own:
            self._session = aiohttp.ClientSession(trust_env=True)
        c = Conn(-1, (), tuple(self.symbols), url)
        self._fresh_socket(c)
        try:
            ws = await self._open(c)
            try:
                await self._pump(c, ws, Backoff(1.0, 1.0))
            finally:
                await _close_quietly(ws)
        finally:
            if own:
                await close_session(self._session)
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
        """Check ``self.symbols`` against the venue's tradable perpetuals (the REST client's
        ``exchange_info()``, keyed by our symbol names); unknown ones are dropped and said."""
        if self.rest is None:
            return True
        try:  # do not wait out a ban here: streaming needs no REST
            known = await self.rest.exchange_info(max_wait=0)
        except RestError as e:
            # Not fatal: stream what was asked and filter liquidations by it
            self.counters["errors"] += 1
            self._emit_status(FeedState.ERROR, f"{self.LABEL} symbols unavailable ({e}); "
                              "streaming the requested symbols unchecked")
            return True
        bad = [s for s in self.symbols if s not in known]
        if bad:
            self._emit_status(FeedState.ERROR, "unknown or delisted symbol(s) on "
                              f"{self.LABEL}: {', '.join(bad)}; not streamed")
            self.symbols = [s for s in self.symbols if s in known]
            if not self.symbols:
                return False
        self.market_symbols = set(known)
        return True

    # ---------------------------------------------------------------- connections

    async def _open(self, c: Conn):
        s = self.settings
        # decode_text=False: orjson parses the UTF-8 bytes directly, skipping a str copy
        return await asyncio.wait_for(self._session.ws_connect(
            c.url, autoping=True, heartbeat=None, compress=0, max_msg_size=0, decode_text=False,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=s.close_timeout_s)),
            s.connect_timeout_s)

    async def _run_conn(self, c: Conn) -> None:
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
            self._fresh_socket(c)
            watchdog = self._spawn(self._watch(c, ws))
            keepalive = self._spawn(self._keepalive(c, ws))
            try:
                if not c.subscribed:
                    await self._subscribe(c, ws)
                c.subscribed = False
                await self._pump(c, ws, backoff)
            except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as e:
                c.why = c.why or f"subscribing failed ({type(e).__name__}: {e})"
            finally:
                watchdog.cancel()
                keepalive.cancel()
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

    async def _pump(self, c: Conn, ws, backoff: Backoff) -> None:
        """Read frames until the socket closes. The hot path: keep it lean."""
        TEXT, BINARY = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        parse, on_frame = self._parse, self._on_frame
        while True:
            msg = await ws.receive()
            t = msg.type
            if t is TEXT or t is BINARY:
                if on_frame(c, parse(msg.data)) and not c.had_data:
                    c.had_data = True
                    backoff.reset()  # reset only after real data: a socket that accepts and
                    self._first_data(c)  # then stays silent must keep backing off
            else:  # CLOSE / CLOSING / CLOSED / ERROR (pings are answered by aiohttp)
                return

    def _fresh_socket(self, c: Conn) -> None:
        """A new socket starts a new plausible window: its first accepted time sets it."""
        self._epochs += 1
        c.epoch, c.ref_ms = self._epochs, None

    def _first_data(self, c: Conn) -> None:
        self._set_conn(c, FeedState.LIVE, "receiving data")

    def _report_gap(self, c: Conn, first_ms: int) -> None:
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

    def _on_frame(self, c: Conn, events: list) -> bool:
        """Apply one frame's events; True if the frame carried accepted market data (only that
        keeps the socket from going stale: malformed, duplicate and implausible frames do not).

        The plausible window, one rule for every venue and event type: once the socket has
        accepted data, an event stamped more than ``max_future_s`` past the newest time it
        accepted (moved on by the wall time since) and past the local clock, or more than
        ``max_age_s`` before it, is dropped and counted as ``implausible``. The first event on
        a socket sets the window (a simulated clock may run fast; a bad first frame makes the
        rest implausible, the socket goes stale and the next socket starts afresh)."""
        if not events:
            return False  # malformed or unknown frames are not data
        data = False
        ref = c.ref_ms
        for ev in events:
            cls = ev.__class__
            if cls is Reply:
                continue
            t = ev.time
            if ref is not None and (t < ref - self._age_ms or (
                    t > ref + self._future_ms and not self._plausible_ahead(c, t))):
                self.counters["implausible"] += 1
                continue
            if cls is Trade:
                drop = self._new_trade(ev, c)
                if drop is not None:
                    self.counters[drop] += 1  # duplicates: replayed after a reconnect or overlap
                    continue
                self.bars.trade(ev.venue, ev.symbol, ev.time, ev.price, ev.qty, ev.taker_buy)
                c.last_ms = ev.time  # gaps are measured on trade and mark times (a kline's
                if c.gap_from is not None:  # time is its bar's open, up to a minute earlier)
                    self._report_gap(c, ev.time)
            elif cls is MarkPrice:
                old = self.last_mark.get(ev.symbol)
                if old is not None and old.time - self._age_ms <= ev.time <= old.time:
                    self.counters["duplicates"] += 1  # (far older: a new socket's new window)
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
                if last is not None and last[0] - self._age_ms <= ev.time and (
                        key < last or (last[1] and ev.time == last[0])):
                    self.counters["duplicates"] += 1
                    continue
                self._last_kline[ev.symbol] = key
                self.bars.kline(ev)
            elif cls is OpenInterest:  # pushed by Bybit and OKX (Binance's is polled)
                old = self.last_oi.get(ev.symbol)
                if old is not None and old.time - self._age_ms <= ev.time <= old.time:
                    self.counters["duplicates"] += 1
                    continue
                self.last_oi[ev.symbol] = ev
            elif cls is Liquidation:
                if ev.symbol not in self.market_symbols:  # COIN-M on the all-market stream:
                    self.counters["foreign"] += 1         # real data, the socket is alive
                    data = True
                    continue
                k = (ev.symbol, ev.time, ev.side, ev.price, ev.qty)
                if k in self._recent_liq:  # no ids: dedupe on the whole order (overlap)
                    self.counters["duplicates"] += 1
                    continue
                self._recent_liq[k] = None
                if len(self._recent_liq) > 512:
                    del self._recent_liq[next(iter(self._recent_liq))]
            data = True
            if ref is None or t > ref:
                ref = c.ref_ms = t
                c.ref_at = time.monotonic()
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:
                    self.counters["callback_errors"] += 1
        if data:
            c.data_frames += 1
        return data

    def _plausible_ahead(self, c: Conn, t: int) -> bool:
        """Whether ``t``, more than ``max_future_s`` past the newest time accepted on ``c``,
        is still within it of that time moved on by the wall time since, or of the local
        clock (the slow path: only for times well ahead)."""
        moved = c.ref_ms + (time.monotonic() - c.ref_at) * 1000.0
        return t <= max(moved, now_ms()) + self._future_ms

    async def _watch(self, c: Conn, ws) -> None:
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
                    await self._subscribe(c, new)  # it buffers while the old one still reads
                    c.subscribed = True
                except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError, OSError):
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


async def _close_quietly(ws, timeout: float = CLOSE_BOUND_S) -> None:
    """Close ``ws`` within ``timeout`` seconds whatever the peer does. aiohttp's close sends
    a close frame and then reads until the peer's answers it, ``ws_close`` being the limit of
    each read, not of the whole: a server that keeps streaming and never answers holds it
    forever (and with it ``stop()``, ``watch`` and ``record``). Past the bound the connection
    is dropped."""
    try:
        await asyncio.wait_for(ws.close(), timeout)
    except asyncio.TimeoutError:
        _abort(ws)
    except Exception:
        pass


def _abort(ws) -> None:
    """Drop a WebSocket's connection without a handshake (its reader then sees it closed)."""
    response = getattr(ws, "_response", None)
    try:
        if response is not None:
            response.close()
    except Exception:
        pass
