"""The assets of one venue in a running view: backfill, follow live, keep the recent ones.

Per asset: backfill the displayed range first (so the first heatmap paints quickly), then
follow the venue live (its ``LiveFeed`` with ``steps_from``, ``on_steps``, ``on_event``,
``on_status``) into a ``SymbolSeries`` while the rest of the lookback is fetched beside it
(retried with backoff until it arrives). The current asset and the most recently viewed ones
stay live; older ones are stopped (their data is kept, and a later switch back fetches only the
missing steps). Filters rebuild the model in a thread.

With a store (``liqtui.store.Store``) an asset paints at once from what is stored, REST
fetches only the gap since, and everything seen live (closed steps, open interest, marks,
liquidations) is written back. With a replay (``ReplaySpec``) the live feed is a
``StoreReplay`` of stored data over [start, end) on its own clock; nothing is fetched.

Every failure becomes a state on the ``AssetFeed`` and a ``StateChanged`` event; nothing
raises into a front end. What happens is published on the session's bus (``events``); the
``version``/``tick`` counters let a screen poll at its own redraw rate, so bursts coalesce.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import replace

import numpy as np

from ..feeds.events import FeedState, FeedStatus, Liquidation, MarkPrice, Trade
from ..feeds.rest import RestError, UnknownSymbolError
from ..feeds.series import SymbolSeries
from ..feeds.settings import FeedSettings
from ..feeds.venues import VENUES
from ..model import ModelParams, build_heatmap
from .asset import AssetFeed, FeedEvent, ReplaySpec
from .bus import Bus
from .events import (Backfilled, HeatmapRebuilt, MarketData, Note, RealizedLiquidation,
                     StateChanged, StepsClosed, TradeData)

log = logging.getLogger("liqtui.feeds")
_WARN = (FeedState.STALE, FeedState.RECONNECTING, FeedState.ERROR, FeedState.LIMITED,
         FeedState.BANNED)


class VenueAssets:
    """The assets of one venue (``venue``: a name in ``liqtui.feeds.venues.VENUES``); what
    happens is published on ``bus``."""

    def __init__(self, *, rest_url: str, ws_url: str, params: ModelParams, lookback_ms: int,
                 range_ms: int, settings: FeedSettings | None = None, keep_live: int = 3,
                 clock=None, ready=None, store=None, replay: ReplaySpec | None = None,
                 venue: str = "binance", bus: Bus | None = None):
        self.bus = bus or Bus()
        self.rest_url, self.ws_url = rest_url, ws_url
        self.venue = VENUES[venue]
        self.params, self.lookback_ms, self.range_ms = params, lookback_ms, range_ms
        self.settings = settings or FeedSettings()
        self.keep_live = keep_live
        self.clock = clock or (lambda: int(time.time() * 1000))  # the exchange's clock
        # async ready(symbol, progress): waits until the venue can serve it (--demo builds
        # its symbols in the background); the asset shows "preparing" with the progress
        self.ready = ready
        self.feeds: dict[str, AssetFeed] = {}
        self.events: deque[FeedEvent] = deque(maxlen=200)
        self.symbols: list[str] = []     # the venue's symbol set, once known
        self.current: str | None = None
        self._rest = None
        self.closed = False
        self.store = store        # liqtui.store.Store: paint from it (the session's writer keeps)
        self.replay = replay
        if replay is not None:    # the exchange clock of a replay is the replay's
            self.clock = lambda: self._replay_clock()

    # ------------------------------------------------------------------ events log

    def note(self, symbol: str, text: str, level=logging.INFO) -> None:
        now = self.clock()
        self.events.append(FeedEvent(now, symbol, text, self.venue.label))
        log.log(level, "%s %s %s", self.venue.name, symbol, text)
        self.bus.publish(Note(now, symbol, self.venue.name, text, level))

    def _changed(self, f: AssetFeed) -> None:
        """The asset's model changed: bump its version and say so."""
        f.version += 1
        if f.series.heatmap is not None:
            self.bus.publish(HeatmapRebuilt(self.clock(), f.symbol, self.venue.name,
                                            f.series.heatmap))

    # ------------------------------------------------------------------ assets

    async def load_symbols(self) -> list[str]:
        """The venue's perpetuals (for the asset picker); [] on failure."""
        if self.symbols or self.replay is not None:  # a replay asks no venue anything
            return self.symbols
        try:
            info = await self._rest_client().exchange_info()
            self.symbols = sorted(info)
        except Exception as e:  # noqa: BLE001 - a failure is a note, not a crash
            self.note("*", f"symbol list unavailable: {e}", logging.WARNING)
        return self.symbols

    async def unlisted(self, symbol: str, timeout: float = 5.0) -> tuple[str, str] | None:
        """(venue, reason) if the venue says it does not list ``symbol``; None if it does or
        cannot say now (unreachable, slow, limiting: the feed state will show that)."""
        quick = replace(self.settings, rest_retries=0, rest_timeout_s=min(3.0, timeout))

        async def ask() -> None:
            async with self.venue.rest_class()(self.rest_url, settings=quick) as rest:
                await rest.exchange_info(max_wait=1.0)
                await rest.symbol(symbol)

        try:
            await asyncio.wait_for(ask(), timeout)
        except UnknownSymbolError as e:
            return self.venue.name, str(e)
        except Exception:  # noqa: BLE001 - not a verdict
            return None
        return None

    def _new_rest(self):
        return self.venue.rest_class()(self.rest_url, settings=self.settings)

    def _rest_client(self):
        if self._rest is None:
            self._rest = self._new_rest()
        return self._rest

    def switch(self, symbol: str) -> AssetFeed:
        """Make ``symbol`` current: start it if needed, keep the recent ones live. Safe under
        rapid switching: a switch back to an asset whose stop is still in flight starts it
        again once the stop has finished, and the viewed asset is never the one stopped."""
        symbol = symbol.upper()
        self.current = symbol
        f = self.feeds.get(symbol)
        if f is None:
            f = self.feeds[symbol] = AssetFeed(
                symbol, SymbolSeries(symbol, self.params, self.lookback_ms))
        f.used = time.monotonic()
        if not f.running:
            self._start(f)
        live = sorted((x for x in self.feeds.values() if x.running),
                      key=lambda x: x.used, reverse=True)
        for old in live[self.keep_live:]:
            if old is not f:
                self._stop(old)
        if f.series.params != self.params and f.series.steps is not None:
            f.series.rebuild(self.params)
            self._changed(f)
        return f

    def _start(self, f: AssetFeed) -> None:
        stopping = f.task if f.task is not None and not f.task.done() else None
        f.stopping = False
        f.task = asyncio.get_running_loop().create_task(self._run(f, stopping),
                                                        name=f"feed-{f.symbol}")

    def _stop(self, f: AssetFeed) -> None:
        f.stopping = True
        self.note(f.symbol, "stopped (not viewed recently)")
        f.task.cancel()

    # ------------------------------------------------------------------ one asset

    async def _run(self, f: AssetFeed, stopping: asyncio.Task | None = None) -> None:
        """Backfill then follow; a venue failure is a state and is retried with backoff, so
        the asset recovers on its own. Only an unknown symbol stops for good. ``stopping``:
        the asset's previous task, being cancelled; it finishes first."""
        if stopping is not None:
            await asyncio.wait([stopping])
        if f.state is FeedState.STOPPED:  # the previous task's stop: not this one's state
            f.state, f.reason = None, ""
            f.tick += 1
        delay = 2.0
        while True:
            try:
                if f.series.steps is None:
                    await (self._replay_load(f) if self.replay else self._backfill(f))
                self._older_start(f)
                await self._follow(f)
                if self.closed or self.replay:  # a replay that has played to its end stays
                    return
                raise RestError(f"the live feed stopped ({f.reason or 'no reason given'})")
            except asyncio.CancelledError:
                if f.older_task is not None:
                    f.older_task.cancel()  # resumed by the next switch to this asset
                if f.live is not None:
                    await f.live.stop()
                    if f.live_task is not None:  # ended before a restart makes a new one
                        await asyncio.wait([f.live_task], timeout=5.0)
                raise
            except UnknownSymbolError as e:
                f.phase, f.error = "error", str(e)
                self._state(f, FeedState.ERROR, str(e))
                self.note(f.symbol, f"unknown symbol: {e}", logging.ERROR)
                return
            except Exception as e:  # noqa: BLE001 - RestError, or a bug of ours: a state
                msg = _failure(f.symbol, e)
                f.error = f"{msg} · retrying in {delay:.0f} s"
                if f.series.steps is None:
                    f.phase = "error"
                self._state(f, FeedState.ERROR, f.error)
                self.note(f.symbol, f"error: {msg}; retrying in {delay:.0f} s", logging.ERROR)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                if f.phase == "error":
                    f.phase, f.error = "waiting", ""

    async def _backfill(self, f: AssetFeed) -> None:
        if self.ready is not None:
            f.phase = "preparing"
            self.venue.rest_class()  # its import while we wait, not after
            await self.ready(f.symbol, self._progress(f))
            f.progress = (0, 0)
        f.phase = "backfilling"
        self._state(f, FeedState.BACKFILLING)
        stored = await self._from_store(f, self.clock() - self.lookback_ms, None)
        rest = self._new_rest()
        t0 = time.perf_counter()
        progress = self._progress(f)
        try:
            info = await rest.symbol(f.symbol)
            f.tick_size = info.tick_size
            p = self.params
            if info.tick_size and p.bin_width is None and p.tick_size is None:
                if f.series.steps is None:
                    f.series.params = p.replace(tick_size=info.tick_size)
                elif f.series.params.tick_size != info.tick_size:  # the store had none
                    await self.rebuild(f.symbol)
            if self.store is not None:
                self.store.set_tick_size(self.venue.name, info.symbol, info.tick_size)
            first_span = min(self.range_ms, self.lookback_ms)
            if stored:  # only the gap since the newest stored step
                bf = await rest.backfill(info.symbol, f.series.end, progress=progress)
            else:
                bf = await rest.backfill(info.symbol, lookback_ms=first_span, progress=progress)
            for w in bf.warnings:
                self.note(f.symbol, f"warning: {w}", logging.WARNING)
            if len(bf["time"]):
                if stored:
                    await self._extend_threaded(f, bf)
                else:
                    f.series.extend(bf)
                    self._changed(f)
            f.phase = "ready"
            took = time.perf_counter() - t0
            self.note(f.symbol, f"backfilled {len(bf['time'])} steps in {took:.1f} s")
            self.bus.publish(Backfilled(self.clock(), f.symbol, self.venue.name,
                                        len(bf["time"]), bf.start, bf.end, took, "rest",
                                        tuple(bf.warnings), bf))
            start = bf.end - self.lookback_ms
            first = int(f.series.steps["time"][0]) if f.series.steps is not None else bf.start
            if first > start + f.series.step_ms:
                f.older = (start, first)
            self._live_start(f, bf.end)
        finally:
            await rest.close()
        f.progress = (0, 0)

    async def _from_store(self, f: AssetFeed, start: int, end: int | None) -> int:
        """Paint from the stored steps of [start, end) at once; returns how many there were."""
        if self.store is None:
            return 0
        sym = f.symbol
        skipped = getattr(self.store, "skipped", 0)
        try:
            steps = await asyncio.to_thread(self.store.steps, self.venue.name, sym, start, end)
            tick = self.store.tick_size(self.venue.name, sym)
        except Exception as e:  # noqa: BLE001 - a damaged store: say so, use the network
            self.note(sym, f"store unreadable: {e}", logging.ERROR)
            return 0
        if getattr(self.store, "skipped", 0) > skipped:  # an older version stored them unchecked
            self.note(sym, f"store: {self.store.skipped - skipped} bad stored step(s) skipped "
                      "(not finite, negative or implausible)", logging.WARNING)
        n = len(steps["time"])
        if n:
            t0 = time.perf_counter()
            p = self.params
            if tick and p.bin_width is None and p.tick_size is None:
                f.tick_size = tick
                f.series.params = p.replace(tick_size=tick)
            # the displayed range first (a model run of a few ms paints it), then the lookback
            t = steps["time"]
            cut = int(np.searchsorted(t, t[-1] + f.series.step_ms - self.range_ms))
            if cut > 0:
                f.series.extend({k: v[cut:] for k, v in steps.items()})
                f.phase = "ready"
                self._changed(f)
            await self._extend_threaded(f, steps)
            f.phase = "ready"
            self.note(sym, f"{n} steps from the store (up to "
                           f"{time.strftime('%H:%M', time.gmtime(f.series.end / 1000))} UTC)")
            self.bus.publish(Backfilled(self.clock(), sym, self.venue.name, n, int(t[0]),
                                        f.series.end, time.perf_counter() - t0, "store"))
        return n

    # ------------------------------------------------------------------ replay

    async def _replay_load(self, f: AssetFeed) -> None:
        """A replay paints the lookback before its start from the store, then plays."""
        f.phase = "backfilling"
        self._state(f, FeedState.BACKFILLING)
        r = self.replay
        if not await self._from_store(f, r.start - self.lookback_ms, r.start):
            f.phase = "ready"  # nothing before the start: the replay's steps build it
        self._live_start(f, f.series.end)

    def _replay_clock(self) -> int:
        f = self.feeds.get(self.current or "")
        live = f.live if f is not None else None
        return live.clock() if hasattr(live, "clock") else self.replay.start

    def replay_pause(self, paused: bool) -> None:
        f = self.feeds.get(self.current or "")
        if f is not None and hasattr(f.live, "toggle_pause") and f.live.paused != paused:
            f.live.toggle_pause()

    def replay_speed(self, factor: float) -> float | None:
        """Multiply the replay speed (within ×1…×10,000); returns the new speed."""
        f = self.feeds.get(self.current or "")
        if f is None or not hasattr(f.live, "set_speed"):
            return None
        f.live.set_speed(min(10_000.0, max(1.0, f.live.speed * factor)))
        return f.live.speed

    @staticmethod
    def _progress(f: AssetFeed):
        def progress(done, total):
            f.progress = (done, total)
            f.tick += 1
        return progress

    def _older_start(self, f: AssetFeed) -> None:
        """Fetch the rest of the lookback beside the live feed, if it is still missing."""
        if f.older is not None and (f.older_task is None or f.older_task.done()):
            f.older_task = asyncio.get_running_loop().create_task(
                self._older(f), name=f"older-{f.symbol}")

    async def _older(self, f: AssetFeed) -> None:
        """The part of the lookback before the displayed range; a failure is a visible state
        (``older_error``) and is retried with backoff until it succeeds."""
        delay = 2.0
        t0 = time.perf_counter()
        progress = self._progress(f)
        while f.older is not None:
            start, end = f.older
            rest = self._new_rest()
            try:
                older = await rest.backfill(f.symbol, start, end, progress=progress)
                for w in older.warnings:
                    self.note(f.symbol, f"warning: {w}", logging.WARNING)
                if len(older["time"]):
                    await self._extend_threaded(f, older)
                f.older, f.older_error = None, ""
                took = time.perf_counter() - t0
                self.note(f.symbol, f"lookback complete: {len(f.series.steps['time'])} steps "
                                    f"in {took:.1f} s")
                self.bus.publish(Backfilled(self.clock(), f.symbol, self.venue.name,
                                            len(older["time"]), start, end, took, "older",
                                            tuple(older.warnings), older))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - RestError, or a bug of ours: a state
                msg = _failure(f.symbol, e)
                f.older_error = f"older history: retrying in {delay:.0f} s"  # the header's
                self.note(f.symbol, f"{f.older_error} ({msg})", logging.ERROR)
                f.tick += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
            finally:
                f.progress = (0, 0)
                await rest.close()

    async def _extend_threaded(self, f: AssetFeed, steps) -> None:
        """Merge a big batch off the event loop (the model run is the long part)."""
        s = f.series
        probe = SymbolSeries(s.symbol, s.params, s.lookback_ms, s.step_ms)
        probe.steps = s.steps
        await asyncio.to_thread(probe.extend, steps)
        if s.steps is not None and probe.steps is not None and \
                s.steps["time"][-1] > probe.steps["time"][-1]:
            probe.extend({k: v for k, v in s.steps.items()})  # live steps arrived meanwhile
        s.steps, s.heatmap = probe.steps, probe.heatmap
        self._changed(f)

    def _live_start(self, f: AssetFeed, steps_from: int | None) -> None:
        sym = f.symbol

        def on_status(st: FeedStatus) -> None:
            self._state(f, st.state, st.reason, st.until)
            self.note(sym, f"{st.state.value}{' · ' + st.reason if st.reason else ''}",
                      logging.WARNING if st.state in _WARN else logging.INFO)

        bus, name, complete = self.bus, self.venue.name, self.venue.liquidations_complete

        def on_event(ev) -> None:
            if getattr(ev, "symbol", None) != sym:
                return
            if isinstance(ev, Trade):
                f.last_price = ev.price
            elif isinstance(ev, MarkPrice):
                f.series.mark(ev)
                if f.last_price is None:
                    f.last_price = ev.price
            elif isinstance(ev, Liquidation):
                f.liquidations.append((ev.time, ev.price, ev.side, ev.notional))
            if f.last_data_ms is None or ev.time > f.last_data_ms:
                f.last_data_ms = ev.time
            f.tick += 1
            if isinstance(ev, Trade):
                if bus.wanted(TradeData):  # hundreds a second: only when somebody listens
                    bus.publish(TradeData(ev.time, sym, name, ev))
            elif isinstance(ev, Liquidation):
                bus.publish(RealizedLiquidation(ev.time, sym, name, ev, complete))
            else:
                bus.publish(MarketData(ev.time, sym, name, ev))

        def on_steps(steps) -> None:
            t0 = time.perf_counter()
            added = f.series.extend(steps)
            ms = (time.perf_counter() - t0) * 1e3
            self._changed(f)
            self.note(sym, f"closed steps up to {time.strftime('%H:%M', time.gmtime(f.series.end / 1000))} "
                           f"UTC: {added} new, model rebuilt in {ms:.0f} ms")
            bus.publish(StepsClosed(self.clock(), sym, name, steps, added, ms,
                                    tuple(getattr(steps, "warnings", ()))))

        if self.replay is not None:
            from ..replay import StoreReplay

            r = self.replay
            f.live = StoreReplay(self.store, self.venue.name, [sym], r.start, r.end,
                                 speed=r.speed, on_event=on_event, on_status=on_status,
                                 on_steps=on_steps)
        else:
            f.live = self.venue.live_class()(
                self.ws_url, [sym], rest_url=self.rest_url, settings=self.settings,
                on_event=on_event, on_status=on_status, on_steps=on_steps)
        if steps_from is not None:
            f.live.steps_from(sym, steps_from)
        self._spawn_live(f)

    def _spawn_live(self, f: AssetFeed) -> None:
        live = f.live
        f.live_task = asyncio.get_running_loop().create_task(live.run(), name=f"live-{f.symbol}")

    async def _follow(self, f: AssetFeed) -> None:
        if f.live is None or f.live_task is None or f.live_task.done():
            f.phase = "ready"
            self._live_start(f, f.series.end)
        try:
            await f.live_task
        finally:
            f.live and await f.live.stop()

    # ------------------------------------------------------------------ filters

    def set_params(self, params: ModelParams) -> None:
        self.params = params

    async def rebuild(self, symbol: str) -> None:
        """Rebuild one asset under the current params, off the event loop."""
        f = self.feeds.get(symbol)
        if f is None or f.series.steps is None:
            if f is not None:
                f.series.params = self._with_tick(f, self.params)
            return
        params = self._with_tick(f, self.params)
        steps = f.series.steps
        hm = await asyncio.to_thread(build_heatmap, steps, params)
        if f.series.steps is steps:
            f.series.params, f.series.heatmap = params, hm
        else:  # closed steps arrived meanwhile: rebuild what is there now
            f.series.rebuild(params)
        self._changed(f)

    def _state(self, f: AssetFeed, state: FeedState, reason: str = "",
               until: int | None = None) -> None:
        f.state, f.reason = state, reason
        f.tick += 1
        self.bus.publish(StateChanged(self.clock(), f.symbol, self.venue.name, state, reason,
                                      until))

    def _with_tick(self, f: AssetFeed, p: ModelParams) -> ModelParams:
        if f.tick_size and p.bin_width is None and p.tick_size is None:
            return p.replace(tick_size=f.tick_size)
        return p

    # ------------------------------------------------------------------ stop

    async def close(self) -> None:
        self.closed = True
        tasks = []
        for f in self.feeds.values():
            if f.live is not None:
                c = f.live.counters
                log.info("%s counts: frames %s, events %s, malformed %s, reconnects %s, "
                         "closed-step fetches %s, OI polls %s", f.symbol, c.get("frames"),
                         c.get("events"), c.get("malformed"), c.get("reconnects"),
                         c.get("step_fetches"), c.get("oi_polls"))
                await f.live.stop()
            for t in (f.task, f.live_task, f.older_task):
                if t is not None and not t.done():
                    t.cancel()
                    tasks.append(t)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._rest is not None:
            await self._rest.close()


def _failure(symbol: str, e: Exception) -> str:
    """A failure as a one-line reason; a venue error says itself, a bug of ours is logged."""
    if isinstance(e, RestError):
        return str(e)
    log.exception("%s feed failed", symbol)
    return f"{type(e).__name__}: {e}"


