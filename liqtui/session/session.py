"""A running view, headless: the assets of one or more venues, the venue sum, the demo.

``Session`` is what the app, ``watch`` and ``record``'s front ends are given: it starts the
feeds a view needs (``switch``), keeps the recent assets live, and publishes what happens as
typed events (``liqtui.session.events``) to any number of subscribers (``subscribe``). Screens
may also read its state directly (``feed(symbol)``: one venue's ``AssetFeed`` or their
``VenueSum``) at their own redraw rate.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque

from ..feeds.venues import VENUES
from ..model import ModelParams
from .asset import FeedEvent
from .bus import Bus
from .events import Note, ProvisionalColumn
from .sum import ALL, VenueSum
from .venue import VenueAssets

log = logging.getLogger("liqtui.feeds")


class _Feeds:
    """``feeds.get(symbol)`` as a screen reads it: the chosen venue's feed, or the sum."""

    def __init__(self, session: "Session"):
        self.session = session

    def get(self, symbol, default=None):
        return self.session.feed(symbol) or default

    def __contains__(self, symbol) -> bool:
        return self.session.feed(symbol) is not None


class Session:
    """One ``VenueAssets`` per venue (``urls``: venue → (REST, WS) base URLs) behind one
    interface. ``view`` is a venue or ``"all"``; ``switch`` starts the feeds the view needs
    (one per venue per live asset). Keyword arguments go to every ``VenueAssets`` (model
    params, lookback, displayed range, feed settings, store, replay, keep_live)."""

    def __init__(self, urls: dict, *, view: str = "binance", **kw):
        self.bus = Bus()
        self.venues = {v: VenueAssets(rest_url=r, ws_url=w, venue=v, bus=self.bus, **kw)
                       for v, (r, w) in urls.items()}
        self.view = view if view == ALL or view in self.venues else next(iter(urls))
        self._sums: dict[str, VenueSum] = {}
        self._notes: deque[FeedEvent] = deque(maxlen=200)
        self.feeds = _Feeds(self)
        self.demo = None           # a ``Demo`` once ``start_demo`` ran
        self.current: str | None = None
        self._ticker: asyncio.Task | None = None
        self.writer = None         # the store's writer (a subscriber), with a store and no replay
        if kw.get("store") is not None and kw.get("replay") is None:
            from .store import KIND_EVENTS, StoreWriter

            self.writer = StoreWriter(kw["store"])
            self.subscribe(self.writer, *KIND_EVENTS)

    # ---- subscribers
    def subscribe(self, fn, *kinds):
        """``fn(event)`` for each event from now on (of ``kinds``); returns the subscription
        (``close()`` it to stop)."""
        return self.bus.subscribe(fn, *kinds)

    # ---- the demo: the simulated exchange in-process, every venue pointed at it
    async def start_demo(self, symbols, **kw):
        """Start ``--demo``'s simulated exchange (``Demo``'s keywords) and point every venue
        at it; the demo's symbols become the symbol list. Returns the ``Demo``."""
        from .demo import Demo

        demo = Demo(symbols, note=self.note, **kw)
        await demo.start()
        self.demo = demo
        self.rest_url, self.ws_url = demo.exchange.rest_url, demo.exchange.ws_url
        self.clock, self.ready = demo.clock, demo.ensure
        self.symbols = sorted(demo.symbols)
        log.info("demo: simulated exchange on %s", demo.exchange.rest_url)
        return demo

    @property
    def first(self) -> VenueAssets:
        return next(iter(self.venues.values()))

    def views(self) -> list[str]:
        return [ALL, *self.venues] if len(self.venues) > 1 else list(self.venues)

    def active(self) -> list[VenueAssets]:
        return list(self.venues.values()) if self.view == ALL else [self.venues[self.view]]

    def feed(self, symbol: str):
        if self.view != ALL:
            return self.venues[self.view].feeds.get(symbol)
        members = {v: c.feeds[symbol] for v, c in self.venues.items() if symbol in c.feeds}
        if not members:
            return None
        s = self._sums.get(symbol)
        if s is None or s.members.keys() != members.keys():
            s = self._sums[symbol] = VenueSum(symbol, members, self.note, self.bus.publish,
                                              self.clock)
        return s

    def label(self, symbol: str) -> str:
        """What the view includes: "Binance+Bybit+OKX", or one venue."""
        if self.view != ALL:
            return self.venues[self.view].venue.label
        f = self.feed(symbol)
        inc = f.included if f is not None else ()
        return "+".join(VENUES[v].label for v in (inc or self.venues))

    def note(self, symbol: str, text: str, level=logging.WARNING) -> None:
        now = self.clock()
        self._notes.append(FeedEvent(now, symbol, text))
        log.log(level, "%s %s", symbol, text)
        self.bus.publish(Note(now, symbol, "", text, level))

    def switch(self, symbol: str):
        """Make ``symbol`` the viewed asset on every venue of the view; returns its feed."""
        symbol = symbol.upper()
        self.current = symbol
        for c in self.active():
            c.switch(symbol)
        if self._ticker is None and self.bus.wanted(ProvisionalColumn):
            self._ticker = asyncio.get_running_loop().create_task(self._provisional(),
                                                                  name="provisional")
        return self.feed(symbol)

    def set_view(self, view: str, symbol: str):
        self.view = view
        return self.switch(symbol)

    async def _provisional(self, every: float = 1.0) -> None:
        """The viewed asset's provisional column, about once a second, while anybody
        listens for it (computed only then: it is a model step over the live bar)."""
        while not self.closed:
            await asyncio.sleep(every)
            f = self.feed(self.current or "")
            hm = f.heatmap if f is not None else None
            prov = f.provisional() if hm is not None else None
            if prov is not None and self.bus.wanted(ProvisionalColumn):
                venue = "" if self.view == ALL else self.view
                self.bus.publish(ProvisionalColumn(self.clock(), f.symbol, venue, hm.prices,
                                                   prov.column))

    def capture(self, venue: str, symbols, **kw):
        """A ``Capture`` of ``symbols`` on ``venue`` (one live feed, no model) publishing on
        this session's bus; ``kw``: ``backfill_ms``, ``last_step``. Run it with ``run(stop)``."""
        from .capture import Capture

        c = self.venues[venue]
        return Capture(c.venue, c.rest_url, c.ws_url, symbols, settings=c.settings,
                       bus=self.bus, **kw)

    async def unlisted(self, symbol: str, timeout: float = 5.0) -> dict[str, str]:
        """Ask each venue of the view once, briefly, whether it lists ``symbol``: venue →
        the reason, for those that do not. A venue that cannot be reached (slow, limiting,
        down) is not a verdict: it is not in the answer, and its feed will show its state."""
        return dict(r for r in await asyncio.gather(
            *(c.unlisted(symbol, timeout) for c in self.active())) if r)

    def leave_out(self, venue: str) -> None:
        """Run without ``venue`` (it does not list the asset): the view sums the others."""
        if self.view == venue or len(self.venues) == 1:
            raise ValueError(f"{venue} is the view's only venue")
        del self.venues[venue]
        self._sums.clear()
        if len(self.venues) == 1:
            self.view = next(iter(self.venues))

    # ---- the VenueAssets interface, for every venue at once
    @property
    def params(self) -> ModelParams:
        return self.first.params

    def set_params(self, params: ModelParams) -> None:
        for c in self.venues.values():
            c.set_params(params)

    async def rebuild(self, symbol: str) -> None:
        await asyncio.gather(*(c.rebuild(symbol) for c in self.venues.values()))

    async def load_symbols(self) -> list[str]:
        return await self.first.load_symbols()

    @property
    def events(self) -> list[FeedEvent]:
        """The feed events log (the app's ``e``), oldest first."""
        evs = heapq.merge(*(c.events for c in self.venues.values()), self._notes,
                          key=lambda e: e.time)
        return list(evs)[-200:]

    def counters(self, symbol: str) -> dict:
        """The live feeds' counters for ``symbol``, summed over the venues that run it."""
        out: dict = {}
        for c in self.venues.values():
            f = c.feeds.get(symbol)
            if f is not None and f.live is not None:
                for k, n in f.live.counters.items():
                    out[k] = out.get(k, 0) + n
        return out

    def _every(name):  # noqa: N805 - a property set on every venue
        def get(self):
            return getattr(self.first, name)

        def put(self, value):
            for c in self.venues.values():
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
        for c in self.venues.values():
            c.replay_pause(paused)

    def replay_speed(self, factor: float) -> float | None:
        speeds = [c.replay_speed(factor) for c in self.venues.values()]
        return speeds[0]

    @property
    def closed(self) -> bool:
        return self.first.closed

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await asyncio.gather(*(c.close() for c in self.venues.values()))
        if self.demo is not None:
            try:
                await asyncio.wait_for(self.demo.stop(), 3.0)
            except Exception:  # noqa: BLE001 - stopping: keep going
                log.exception("demo stop failed")
