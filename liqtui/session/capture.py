"""A capture: many symbols of one venue on one live feed, no model; what a recorder keeps.

The live feed starts first (liquidations, marks and open interest are captured from the first
second: nobody can send them again), then each symbol's missing closed steps are backfilled
over REST, from the newest stored step (``last_step``) or ``backfill_ms`` ago, up to now; the
live feed delivers the closed steps from there on. A backfill that fails is handed to the live
feed's step poller, which retries it at every step: nothing is skipped.

What happens is published on the session's bus like any view's events: ``StateChanged`` for
the venue's socket (symbol ``"*"``), ``MarketData``, ``RealizedLiquidation``, ``StepsClosed``
(``added`` 0: there is no model), ``Backfilled`` and ``Note``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..feeds.events import FeedStatus, Liquidation, Trade
from ..feeds.rest import RestError, close_session
from ..units import STEP_MS, utc
from .events import (Backfilled, MarketData, Note, RealizedLiquidation, StateChanged,
                     StepsClosed, TradeData)


def _now() -> int:
    return int(time.time() * 1000)


class Capture:
    def __init__(self, venue, rest_url: str, ws_url: str, symbols, *, settings, bus,
                 last_step=None, backfill_ms: int, step_ms: int = STEP_MS):
        self.venue, self.rest_url, self.ws_url = venue, rest_url, ws_url
        self.symbols, self.settings, self.bus = list(symbols), settings, bus
        self.last_step = last_step or (lambda venue, symbol, step_ms: None)
        self.backfill_ms, self.step_ms = backfill_ms, step_ms
        self.live = None

    def _note(self, symbol: str, text: str, level=logging.INFO) -> None:
        self.bus.publish(Note(_now(), symbol, self.venue.name, text, level))

    def _callbacks(self):
        bus, name, complete = self.bus, self.venue.name, self.venue.liquidations_complete
        symbols = set(self.symbols)

        def on_event(ev) -> None:
            if ev.symbol not in symbols:
                return
            if isinstance(ev, Trade):
                if bus.wanted(TradeData):  # hundreds a second: only when somebody listens
                    bus.publish(TradeData(ev.time, ev.symbol, name, ev))
            elif isinstance(ev, Liquidation):
                bus.publish(RealizedLiquidation(ev.time, ev.symbol, name, ev, complete))
            else:
                bus.publish(MarketData(ev.time, ev.symbol, name, ev))

        def on_steps(bf) -> None:
            bus.publish(StepsClosed(_now(), bf.symbol, name, bf, 0, 0.0,
                                    tuple(getattr(bf, "warnings", ()))))

        def on_status(st: FeedStatus) -> None:
            bus.publish(StateChanged(st.time, "*", name, st.state, st.reason, st.until))

        return on_event, on_steps, on_status

    async def run(self, stop: asyncio.Event) -> None:
        """Capture until ``stop`` is set (or the live feed ends)."""
        import aiohttp

        on_event, on_steps, on_status = self._callbacks()
        # where each symbol's backfill starts, read before the live feed can store a step:
        # a closed step that arrives live first must not cut the history before it
        stored = {sym: self.last_step(self.venue.name, sym, self.step_ms)
                  for sym in self.symbols}
        # one HTTP session and one REST client (one rate limiter) for the backfill and the
        # live feed's polls; the session is ours, so whichever starts first, it is closed once
        session = aiohttp.ClientSession(trust_env=True)
        rest = self.venue.rest_class()(self.rest_url, session=session, settings=self.settings)
        self.live = self.venue.live_class()(
            self.ws_url, self.symbols, rest=rest, session=session, settings=self.settings,
            on_event=on_event, on_status=on_status, on_steps=on_steps)
        runner = asyncio.create_task(self.live.run(), name=f"live-{self.venue.name}")
        try:
            for sym in self.symbols:
                if stop.is_set():
                    break
                await self._backfill(rest, sym, stored[sym])
            await runner
        finally:
            await self.live.stop()
            await asyncio.gather(runner, return_exceptions=True)
            await close_session(session)  # bounded: a peer cannot hold the recorder open

    async def stop(self) -> None:
        if self.live is not None:
            await self.live.stop()

    async def _backfill(self, rest, sym: str, last: int | None) -> None:
        start = None if last is None else last + self.step_ms
        t0 = time.perf_counter()
        try:
            if start is None:
                bf = await rest.backfill(sym, lookback_ms=self.backfill_ms,
                                         interval_ms=self.step_ms)
            else:
                bf = await rest.backfill(sym, start, interval_ms=self.step_ms)
        except (RestError, OSError, asyncio.TimeoutError, ValueError) as e:
            # the live feed's step poller fetches from here at every step until it succeeds
            self.live.steps_from(sym, start if start is not None else
                                 (_now() - self.backfill_ms) // self.step_ms * self.step_ms)
            self._note(sym, f"backfill failed ({e or type(e).__name__}); the live feed "
                            "retries it", logging.WARNING)
            return
        for w in bf.warnings:
            self._note(sym, f"warning: {w}", logging.WARNING)
        took = time.perf_counter() - t0
        n = len(bf["time"])
        self.bus.publish(Backfilled(_now(), sym, self.venue.name, n, bf.start, bf.end, took,
                                    "rest", tuple(bf.warnings), bf))
        self.live.steps_from(sym, bf.end)
        gap = "" if start is None else f" (stored up to {utc(start)})"
        self._note(sym, f"backfilled {n} closed steps{gap} → {utc(bf.end)} in {took:.1f} s")


async def listed(venue, rest_url: str, symbols, settings) -> tuple[dict | None, str]:
    """The venue's listing of ``symbols``: ({symbol: tick size} of those it lists, "") or
    (None, why) when it cannot be asked now."""
    rest = venue.rest_class()(rest_url, settings=settings)
    try:
        known = await rest.exchange_info()
    except (RestError, OSError, asyncio.TimeoutError) as e:
        return None, str(e or type(e).__name__)
    finally:
        await rest.close()
    return {s: getattr(known[s], "tick_size", None) for s in symbols if s in known}, ""
