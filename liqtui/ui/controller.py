"""Feeds and model for the app, without Textual: the same path as ``liqtui watch``.

Per asset: backfill the displayed range first (so the first heatmap paints quickly), then
follow the venue live (its ``LiveFeed`` with ``steps_from``, ``on_steps``, ``on_event``,
``on_status``) into a ``SymbolSeries`` while the rest of the lookback is fetched beside it
(retried with backoff until it arrives). The current asset and the
most recently viewed ones stay live; older ones are stopped (their data is kept, and a later
switch back fetches only the missing steps). Filters rebuild the model in a thread.

With a store (``liqtui.store.Store``) an asset paints at once from what is stored, REST
fetches only the gap since, and everything seen live (closed steps, open interest, marks,
liquidations) is written back. With a replay (``ReplaySpec``) the live feed is a
``StoreReplay`` of stored data over [start, end) on its own clock; nothing is fetched.

Every failure becomes a state on the ``AssetFeed`` (the header shows it); nothing raises into
the UI. Callbacks run on the event loop; the app polls ``version``/``tick`` counters at its
own redraw rate, so bursts of events coalesce for free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..feeds.rest import RestError, UnknownSymbolError
from ..feeds.venues import VENUES
from ..feeds.events import FeedState, FeedStatus, Liquidation, MarkPrice, OpenInterest, Trade
from ..feeds.series import SymbolSeries
from ..feeds.settings import FeedSettings
from ..model import ModelParams, build_heatmap
from ..model.venues import aggregate

log = logging.getLogger("liqtui.feeds")
from ..units import DAY  # noqa: E402


@dataclass(frozen=True)
class ReplaySpec:
    """``liqtui replay``: stored data over [start, end) (ms) at ``speed`` × real time."""
    start: int
    end: int
    speed: float = 1.0


@dataclass
class FeedEvent:
    time: int        # exchange ms (the controller's clock: the sim's in --demo)
    symbol: str
    text: str
    venue: str = ""  # the venue's label ("Bybit"), or "" for the venue sum


@dataclass
class AssetFeed:
    symbol: str
    series: SymbolSeries
    phase: str = "waiting"          # waiting, backfilling, ready, error
    error: str = ""
    progress: tuple[int, int] = (0, 0)
    state: FeedState | None = None
    reason: str = ""
    live: object | None = None       # the venue's LiveFeed
    task: asyncio.Task | None = None
    last_price: float | None = None
    last_data_ms: int | None = None  # exchange time of the newest data event
    liquidations: deque = field(default_factory=lambda: deque(maxlen=400))
    version: int = 0                 # bumps when the heatmap changes (closed steps, filters)
    tick: int = 0                    # bumps on live data
    tick_size: float | None = None
    used: float = 0.0                # monotonic time of the last switch to it
    live_task: asyncio.Task | None = None
    older: tuple[int, int] | None = None  # the part of the lookback still to fetch (ms span)
    older_task: asyncio.Task | None = None
    older_error: str = ""            # why the last fetch of it failed, and when it retries

    @property
    def heatmap(self):
        return self.series.heatmap

    def open_interest(self) -> OpenInterest | None:
        return self.live.last_oi.get(self.symbol) if self.live else None

    def forming(self):
        return self.live.bars.forming(self.symbol) if self.live else None

    def price(self) -> float | None:
        if self.last_price is not None:
            return self.last_price
        hm = self.series.heatmap
        return None if hm is None else float(hm.reference_price)

    def change_24h(self) -> float | None:
        """Last price against the close 24 h earlier (closed steps), as a fraction."""
        st, p = self.series.steps, self.price()
        if st is None or p is None or not len(st["time"]):
            return None
        t = st["time"]
        i = int(np.searchsorted(t, t[-1] + self.series.step_ms - DAY))
        if i >= len(t):
            return None
        then = float(st["close"][max(i - 1, 0)])
        return p / then - 1 if then > 0 else None

    def provisional(self):
        try:
            return self.series.provisional(self.forming(), self.open_interest())
        except Exception:  # never let a live-column hiccup reach the UI
            return None


class Controller:
    """The assets of one venue (``venue``: a name in ``liqtui.feeds.venues.VENUES``)."""

    def __init__(self, *, rest_url: str, ws_url: str, params: ModelParams, lookback_ms: int,
                 range_ms: int, settings: FeedSettings | None = None, keep_live: int = 3,
                 clock=None, ready=None, store=None, replay: ReplaySpec | None = None,
                 venue: str = "binance"):
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
        self._rebuild: asyncio.Task | None = None
        self.closed = False
        self.store = store        # liqtui.store.Store: paint from it, write live data to it
        self.replay = replay
        if replay is not None:    # the exchange clock of a replay is the replay's
            self.clock = lambda: self._replay_clock()

    # ------------------------------------------------------------------ events log

    def note(self, symbol: str, text: str, level=logging.INFO) -> None:
        self.events.append(FeedEvent(self.clock(), symbol, text, self.venue.label))
        log.log(level, "%s %s %s", self.venue.name, symbol, text)

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

    def _new_rest(self):
        return self.venue.rest_class()(self.rest_url, settings=self.settings)

    def _rest_client(self):
        if self._rest is None:
            self._rest = self._new_rest()
        return self._rest

    def switch(self, symbol: str) -> AssetFeed:
        """Make ``symbol`` current: start it if needed, keep the recent ones live."""
        symbol = symbol.upper()
        self.current = symbol
        f = self.feeds.get(symbol)
        if f is None:
            f = self.feeds[symbol] = AssetFeed(
                symbol, SymbolSeries(symbol, self.params, self.lookback_ms))
        f.used = time.monotonic()
        if f.task is None or f.task.done():
            f.task = asyncio.get_running_loop().create_task(self._run(f), name=f"feed-{symbol}")
        live = sorted((x for x in self.feeds.values() if x.task and not x.task.done()),
                      key=lambda x: x.used, reverse=True)
        for old in live[self.keep_live:]:
            self.note(old.symbol, "stopped (not viewed recently)")
            old.task.cancel()
        if f.series.params != self.params and f.series.steps is not None:
            f.series.rebuild(self.params)
            f.version += 1
        return f

    # ------------------------------------------------------------------ one asset

    async def _run(self, f: AssetFeed) -> None:
        """Backfill then follow; a venue failure is a state and is retried with backoff, so
        the asset recovers on its own. Only an unknown symbol stops for good."""
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
                raise
            except UnknownSymbolError as e:
                f.phase, f.error = "error", str(e)
                f.state, f.reason = FeedState.ERROR, str(e)
                self.note(f.symbol, f"unknown symbol: {e}", logging.ERROR)
                f.tick += 1
                return
            except Exception as e:  # noqa: BLE001 - RestError, or a bug of ours: a state
                msg = _failure(f.symbol, e)
                f.state, f.reason = FeedState.ERROR, f"{msg} · retrying in {delay:.0f} s"
                f.error = f.reason
                if f.series.steps is None:
                    f.phase = "error"
                self.note(f.symbol, f"error: {msg}; retrying in {delay:.0f} s", logging.ERROR)
                f.tick += 1
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
        f.phase, f.state = "backfilling", FeedState.BACKFILLING
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
                self._keep(bf)
                await self._extend_threaded(f, bf) if stored else f.series.extend(bf)
                f.version += 1
            f.phase = "ready"
            self.note(f.symbol, f"backfilled {len(bf['time'])} steps in "
                                f"{time.perf_counter() - t0:.1f} s")
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
        try:
            steps = await asyncio.to_thread(self.store.steps, self.venue.name, sym, start, end)
            tick = self.store.tick_size(self.venue.name, sym)
        except Exception as e:  # noqa: BLE001 - a damaged store: say so, use the network
            self.note(sym, f"store unreadable: {e}", logging.ERROR)
            return 0
        n = len(steps["time"])
        if n:
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
                f.version += 1
            await self._extend_threaded(f, steps)
            f.phase = "ready"
            self.note(sym, f"{n} steps from the store (up to "
                           f"{time.strftime('%H:%M', time.gmtime(f.series.end / 1000))} UTC)")
        return n

    def _keep(self, steps) -> None:
        """Closed steps from the venue into the store (written off the event loop)."""
        if self.store is not None and self.replay is None and len(steps["time"]):
            self.store.add_steps(self.venue.name, steps.symbol, steps, steps.interval_ms)

    # ------------------------------------------------------------------ replay

    async def _replay_load(self, f: AssetFeed) -> None:
        """A replay paints the lookback before its start from the store, then plays."""
        f.phase, f.state = "backfilling", FeedState.BACKFILLING
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
                self._keep(older)
                for w in older.warnings:
                    self.note(f.symbol, f"warning: {w}", logging.WARNING)
                if len(older["time"]):
                    await self._extend_threaded(f, older)
                f.older, f.older_error = None, ""
                self.note(f.symbol, f"lookback complete: {len(f.series.steps['time'])} steps "
                                    f"in {time.perf_counter() - t0:.1f} s")
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
        f.version += 1

    def _live_start(self, f: AssetFeed, steps_from: int | None) -> None:
        sym = f.symbol

        def on_status(st: FeedStatus) -> None:
            f.state, f.reason = st.state, st.reason
            f.tick += 1
            self.note(sym, f"{st.state.value}{' · ' + st.reason if st.reason else ''}",
                      logging.WARNING if st.state in (FeedState.STALE, FeedState.RECONNECTING,
                                                      FeedState.ERROR, FeedState.BANNED)
                      else logging.INFO)

        store = self.store if self.replay is None else None  # a replay writes nothing

        def on_event(ev) -> None:
            if getattr(ev, "symbol", None) != sym:
                return
            if store is not None:
                store.add_event(ev)
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

        def on_steps(steps) -> None:
            t0 = time.perf_counter()
            if store is not None:
                self._keep(steps)
            added = f.series.extend(steps)
            f.version += 1
            self.note(sym, f"closed steps up to {time.strftime('%H:%M', time.gmtime(f.series.end / 1000))} "
                           f"UTC: {added} new, model rebuilt in {(time.perf_counter() - t0) * 1e3:.0f} ms")

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
        f.version += 1

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


ALL = "all"
_BAD = (FeedState.ERROR, FeedState.BANNED)
WAITING = ("backfilling", "no data yet")  # why a venue is not in the sum yet: not a failure


class VenueSum:
    """One asset on several venues seen as one feed (what the app shows for "all"): the
    venues' heatmaps summed on the reference venue's grid (``liqtui.model.venues``), the
    live column and the markers mapped the same way. A venue that fails or has no data yet
    is left out of the sum; ``dropped`` says which and why, and changes are noted."""

    def __init__(self, symbol: str, members: dict, note):
        self.symbol, self.members, self._note = symbol, members, note
        self._key = None
        self._hm = None
        self.dropped: dict[str, str] = {}

    # ---- the sum, recomputed when a venue's model changes
    @property
    def heatmap(self):
        key = tuple((v, id(f.series), f.version, f.phase, f.state) for v, f in self.members.items())
        if key == self._key:
            return self._hm
        failed = {}
        for v, f in self.members.items():
            if f.phase == "error" or f.state in _BAD:
                failed[v] = (f.error or f.reason or "feed error")[:80]
            elif f.heatmap is None:
                failed[v] = "backfilling" if f.phase == "backfilling" else "no data yet"
        try:
            self._hm = aggregate({v: f.heatmap for v, f in self.members.items()},
                                 {v: f.series.steps for v, f in self.members.items()},
                                 failed=failed)
            dropped = self._hm.dropped
        except ValueError as e:
            if "parameters differ" in str(e):  # a filter change is half through: keep the last
                return self._hm
            self._hm, dropped = None, failed
        self._key = key
        was = {v for v, r in self.dropped.items() if r not in WAITING}
        now = {v for v, r in dropped.items() if r not in WAITING}
        for v in sorted(now - was):
            self._note(self.symbol, f"{VENUES[v].label} left out of the sum: {dropped[v]}")
        for v in sorted(was - now):
            self._note(self.symbol, f"{VENUES[v].label} back in the sum")
        self.dropped = dropped
        return self._hm

    @property
    def included(self) -> tuple[str, ...]:
        hm = self.heatmap
        return hm.venues if hm is not None else ()

    @property
    def reference(self) -> AssetFeed:
        inc = self.included
        return self.members[inc[0]] if inc else next(iter(self.members.values()))

    @property
    def series(self):
        return self.reference.series

    @property
    def version(self):
        return tuple(f.version for f in self.members.values()), self.included

    @property
    def tick(self):
        return sum(f.tick for f in self.members.values())

    def _ratio(self, v: str) -> float:
        hm = self.heatmap
        return hm.ratios.get(v, 1.0) if hm is not None else 1.0

    def provisional(self):
        """Every included venue's provisional column (or, without a forming step, its last
        state), mapped with the ratio of the live prices and summed."""
        hm = self.heatmap
        if hm is None:
            return None
        col, usd_state, live = np.zeros(len(hm.prices)), np.zeros_like(hm.state), False
        ref_price = self.reference.price()
        for v in hm.venues:
            f, src = self.members[v], hm.sources[v]
            price = f.price()
            r = ref_price / price if price and ref_price else None
            prov = f.provisional()
            live |= prov is not None
            col += hm.map_column(v, src.usd() if prov is None else prov.column, r)
            st = (src.state if prov is None else prov.state) * src.prices
            for t in range(st.shape[0]):
                for side in (0, 1):
                    usd_state[t, side] += hm.map_column(v, st[t, side], r)
        return _Live(col, usd_state / hm.prices) if live else None

    # ---- what the header and the markers read
    def price(self):
        return self.reference.price()

    def change_24h(self):
        return self.reference.change_24h()

    def open_interest(self):
        ois = [f.open_interest() for v, f in self.members.items() if v in self.included]
        ois = [o for o in ois if o is not None]
        return _OI(sum(o.base for o in ois)) if ois else None

    @property
    def liquidations(self):
        out = []
        for v in self.included:
            r = self._ratio(v)
            out += [(t, p * r, side, usd_) for t, p, side, usd_ in self.members[v].liquidations]
        return sorted(out)[-400:]

    @property
    def phase(self):
        if self.heatmap is not None:
            return "ready"
        phases = {f.phase for f in self.members.values()}
        return "error" if phases == {"error"} else "backfilling" if "backfilling" in phases \
            else "waiting"

    @property
    def error(self):
        return "; ".join(f"{VENUES[v].label}: {f.error}" for v, f in self.members.items() if f.error)

    @property
    def progress(self):
        ps = [f.progress for f in self.members.values()]
        return sum(p[0] for p in ps), sum(p[1] for p in ps)

    @property
    def state(self):
        states = [self.members[v].state for v in self.included] or \
            [f.state for f in self.members.values()]
        worst = [s for s in states if s is not None and s != FeedState.LIVE]
        return worst[0] if worst else (FeedState.LIVE if states and states[0] else None)

    @property
    def reason(self):
        return "; ".join(f"{VENUES[v].label}: {self.members[v].reason}" for v in self.included
                         if self.members[v].reason and self.members[v].state != FeedState.LIVE)

    @property
    def last_data_ms(self):
        ts = [f.last_data_ms for f in self.members.values() if f.last_data_ms is not None]
        return max(ts) if ts else None

    @property
    def older_error(self):
        return next((f.older_error for f in self.members.values() if f.older_error), "")


@dataclass
class _Live:
    column: np.ndarray
    state: np.ndarray


@dataclass
class _OI:
    base: float


class _Feeds:
    """``feeds.get(symbol)`` as the app reads it: the chosen venue's feed, or the sum."""

    def __init__(self, venues: "Venues"):
        self.venues = venues

    def get(self, symbol, default=None):
        return self.venues.feed(symbol) or default

    def __contains__(self, symbol) -> bool:
        return self.venues.feed(symbol) is not None


class Venues:
    """One ``Controller`` per venue behind the interface the app uses. ``view`` is a venue
    or ``"all"``; ``switch`` starts the feeds the view needs (one per venue per live asset)."""

    def __init__(self, urls: dict, *, view: str = "binance", **kw):
        self.controllers = {v: Controller(rest_url=r, ws_url=w, venue=v, **kw)
                            for v, (r, w) in urls.items()}
        self.view = view if view == ALL or view in self.controllers else next(iter(urls))
        self._sums: dict[str, VenueSum] = {}
        self._notes: deque[FeedEvent] = deque(maxlen=200)
        self.feeds = _Feeds(self)

    @property
    def first(self) -> Controller:
        return next(iter(self.controllers.values()))

    def views(self) -> list[str]:
        return [ALL, *self.controllers] if len(self.controllers) > 1 else list(self.controllers)

    def active(self) -> list[Controller]:
        return list(self.controllers.values()) if self.view == ALL else [self.controllers[self.view]]

    def feed(self, symbol: str):
        if self.view != ALL:
            return self.controllers[self.view].feeds.get(symbol)
        members = {v: c.feeds[symbol] for v, c in self.controllers.items() if symbol in c.feeds}
        if not members:
            return None
        s = self._sums.get(symbol)
        if s is None or s.members.keys() != members.keys():
            s = self._sums[symbol] = VenueSum(symbol, members, self.note)
        return s

    def label(self, symbol: str) -> str:
        """What the view includes: "Binance+Bybit+OKX", or one venue."""
        if self.view != ALL:
            return self.controllers[self.view].venue.label
        f = self.feed(symbol)
        inc = f.included if f is not None else ()
        return "+".join(VENUES[v].label for v in (inc or self.controllers))

    def note(self, symbol: str, text: str, level=logging.WARNING) -> None:
        self._notes.append(FeedEvent(self.clock(), symbol, text))
        log.log(level, "%s %s", symbol, text)

    def switch(self, symbol: str):
        for c in self.active():
            c.switch(symbol)
        return self.feed(symbol.upper())

    def set_view(self, view: str, symbol: str):
        self.view = view
        return self.switch(symbol)

    # ---- the Controller interface, for every venue at once
    @property
    def params(self) -> ModelParams:
        return self.first.params

    def set_params(self, params: ModelParams) -> None:
        for c in self.controllers.values():
            c.set_params(params)

    async def rebuild(self, symbol: str) -> None:
        await asyncio.gather(*(c.rebuild(symbol) for c in self.controllers.values()))

    async def load_symbols(self) -> list[str]:
        return await self.first.load_symbols()

    @property
    def events(self) -> list[FeedEvent]:
        import heapq

        evs = heapq.merge(*(c.events for c in self.controllers.values()), self._notes,
                          key=lambda e: e.time)
        return list(evs)[-200:]

    def _every(name):  # noqa: N805 - a property set on every controller
        def get(self):
            return getattr(self.first, name)

        def put(self, value):
            for c in self.controllers.values():
                setattr(c, name, value)
        return property(get, put)

    range_ms = _every("range_ms")
    lookback_ms = _every("lookback_ms")
    clock = _every("clock")
    ready = _every("ready")
    symbols = _every("symbols")  # the first venue's list (the picker's)
    rest_url = _every("rest_url")
    ws_url = _every("ws_url")
    del _every

    def replay_pause(self, paused: bool) -> None:
        for c in self.controllers.values():
            c.replay_pause(paused)

    def replay_speed(self, factor: float) -> float | None:
        speeds = [c.replay_speed(factor) for c in self.controllers.values()]
        return speeds[0]

    @property
    def closed(self) -> bool:
        return self.first.closed

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.controllers.values()))
