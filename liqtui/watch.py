"""``liqtui watch``: the live model for one symbol, headless, as plain lines: a front end of a
``Session`` (one venue, or the venues summed with ``--venue all``).

The session backfills the lookback over REST and follows the venues live; this prints what it
publishes: the levels once the backfill is in, feed states, realized liquidations (marked as a
sample where the venue publishes one), the closed steps and the levels again after each
rebuild, and every few seconds a status line with the provisional newest column's strongest
levels. Lines only, no screen control, so it works in a pipe, a log file or a tmux pane.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time

from .report import levels_text, usd, utc, venue_title, venues_text
from .units import printable
from .session import VENUES, FeedState, VenueSum
from .session.events import (Backfilled, MarketData, RealizedLiquidation, StateChanged,
                             StepsClosed, VenueLeftOut)


def _hm(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


# states the session passes through that the backfilled line and the model say better
_QUIET = (FeedState.BACKFILLING,)


class Watch:
    """Prints a session's events for ``symbol``. ``session`` is not started yet: ``run``
    switches it to the symbol and closes it at the end."""

    def __init__(self, session, symbol: str, *, lookback: str, top: int, threshold: float,
                 every: float = 10.0, duration: float | None = None, out=sys.stdout):
        self.session, self.symbol, self.lookback = session, symbol.upper(), lookback
        self.top, self.threshold, self.every, self.duration = top, threshold, every, duration
        self.out = out
        self.last_mark = None             # the newest MarkPrice of the reference venue
        self.backfilled: set[str] = set()  # venues whose backfill is in
        self._levels_due: asyncio.TimerHandle | None = None

    @property
    def many(self) -> bool:
        return len(self.session.active()) > 1

    def say(self, line: str) -> None:
        """One plain line out; what a venue or an argument put in it is made printable (the
        levels table, the one piece with colour of our own, goes out by ``out.write``)."""
        self.out.write(printable(line) + "\n")
        self.out.flush()

    def _who(self, venue: str) -> str:
        """The venue's label before a line, when several venues are watched."""
        return f"{VENUES[venue].label} " if self.many and venue in VENUES else ""

    def levels(self) -> None:
        self._levels_due = None
        f = self.session.feed(self.symbol)
        hm = f.heatmap if f is not None else None
        if hm is None:
            return
        summed = isinstance(f, VenueSum)  # the same table as `liqtui levels --venue …`
        venues = hm.venues if summed else (self.session.active()[0].venue.name,)
        text = venue_title(levels_text(hm, self.symbol, self.top, self.threshold), venues, summed)
        self.say((text + (venues_text(hm, self.top) if summed else "")).rstrip())

    def _levels_soon(self) -> None:
        """The levels after a rebuild; with several venues once their steps are all in (each
        venue closes the same step within a moment of the others)."""
        if self._levels_due is None:
            self._levels_due = asyncio.get_running_loop().call_later(
                0.5 if self.many else 0.0, self.levels)

    # ------------------------------------------------------------ session events

    def on_event(self, ev) -> None:
        if ev.symbol not in (self.symbol, "*"):
            return
        who = self._who(ev.venue)
        if isinstance(ev, StateChanged):
            if ev.state not in _QUIET:
                until = f" until {utc(ev.until)}" if ev.until else ""
                self.say(f"{_hm(ev.time)} {who}{ev.state.value}{until}"
                         f"{' · ' + ev.reason if ev.reason else ''}")
        elif isinstance(ev, MarketData):
            if type(ev.data).__name__ == "MarkPrice" and ev.venue == self._reference():
                self.last_mark = ev.data
        elif isinstance(ev, RealizedLiquidation):
            liq = ev.data
            sample = "" if ev.complete else " (a sample: the venue pushes at most one a second)"
            self.say(f"{_hm(liq.time)} {who}liquidation: {liq.side} {liq.qty:g} @ "
                     f"{liq.price:,.2f} ({usd(liq.notional)}){sample}")
        elif isinstance(ev, Backfilled) and ev.source == "rest":
            self.say(f"{who}backfilled {ev.steps} closed steps ({utc(ev.start)} → "
                     f"{utc(ev.end)}) in {ev.seconds:.1f} s")
            for w in ev.warnings:
                self.say(f"warning: {w}")
            self.backfilled.add(ev.venue)
            if self.backfilled >= {c.venue.name for c in self.session.active()}:
                self._levels_soon()
        elif isinstance(ev, StepsClosed):
            n, end = ev.added, int(ev.steps["time"][-1]) + ev.steps.interval_ms
            self.say(f"{_hm(end)} {who}closed step{'s' if n != 1 else ''} up to {utc(end)}: "
                     f"{n} new, model rebuilt in {ev.rebuild_ms:.0f} ms")
            for w in ev.warnings:
                self.say(f"warning: {w}")
            self._levels_soon()
        elif isinstance(ev, VenueLeftOut):
            label = VENUES[ev.venue].label
            self.say(f"{_hm(ev.time)} {label} back in the sum" if ev.back else
                     f"{_hm(ev.time)} {label} left out of the sum: {ev.reason}")

    def _reference(self) -> str:
        f = self.session.feed(self.symbol)
        inc = getattr(f, "included", None)
        return inc[0] if inc else self.session.active()[0].venue.name

    def status_line(self) -> str:
        f = self.session.feed(self.symbol)
        # stamped in exchange time like every other line (the newest mark's), not the local clock
        now = self.last_mark.time if self.last_mark is not None else int(time.time() * 1000)
        state = f.state if f is not None else None
        parts = [f"{_hm(now)} {state.value if state else '…'}"]
        price = f.price() if f is not None else None
        if price is not None:
            parts.append(f"{self.symbol} {price:,.2f}")
        if self.last_mark is not None:
            age = time.time() - self.last_mark.time / 1000
            parts.append(f"mark {self.last_mark.price:,.2f} (data age {max(age, 0):.1f} s)")
        oi = f.open_interest() if f is not None else None
        if oi is not None:
            parts.append(f"OI {oi.base:,.1f}")
        hm = f.heatmap if f is not None else None
        prov = f.provisional() if hm is not None else None
        if prov is not None and price:
            top = []
            for i, side in enumerate(("long", "short")):
                col = prov.state[:, i].sum(axis=0) * hm.prices * hm.params.side_mask[i]
                if col.any():
                    k = int(col.argmax())
                    top.append(f"{side} {hm.prices[k]:,.0f} {usd(col[k])} "
                               f"{(hm.prices[k] / price - 1) * 100:+.1f}%")
            if top:
                parts.append("provisional peak bins: " + " | ".join(top))
        return " · ".join(parts)

    # ------------------------------------------------------------ run

    def banner(self) -> str:
        cs = self.session.active()
        where = " · ".join(f"{c.venue.label + ' ' if self.many else ''}REST {c.rest_url} · "
                           f"WS {c.ws_url}" for c in cs)
        what = self.session.label(self.symbol) if self.many else \
            f"{cs[0].venue.label} {cs[0].venue.market}"
        return f"liqtui watch: {self.symbol} · {what} · lookback {self.lookback} · {where}"

    async def run(self) -> int:
        """Follow until SIGINT/SIGTERM or ``duration``; 2 if no venue lists the symbol."""
        s = self.session
        log = logging.getLogger("liqtui")
        if not log.handlers:  # these lines are the output; the session's log has no place here
            log.addHandler(logging.NullHandler())
        unlisted = await s.unlisted(self.symbol)
        if len(unlisted) == len(s.active()):
            for reason in dict.fromkeys(unlisted.values()):
                self.out.flush()
                print(f"liqtui: error: {printable(reason)}", file=sys.stderr)
            return 2
        for venue, reason in unlisted.items():
            self.say(f"{VENUES[venue].label}: {reason}; watching without it")
            s.leave_out(venue)
        self.say(self.banner())
        sub = s.subscribe(self.on_event, StateChanged, MarketData, RealizedLiquidation,
                          Backfilled, StepsClosed, VenueLeftOut)  # not every trade
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        s.switch(self.symbol)
        deadline = None if self.duration is None else time.monotonic() + self.duration
        try:
            while not stop.is_set():
                wait = self.every if deadline is None else \
                    min(self.every, deadline - time.monotonic())
                try:
                    await asyncio.wait_for(stop.wait(), max(wait, 0))
                except asyncio.TimeoutError:
                    pass
                if stop.is_set():
                    break
                self.say(self.status_line())
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            counters = s.counters(self.symbol)
            await s.close()
            sub.close()
            if self._levels_due is not None:
                self._levels_due.cancel()
        c = {k: counters.get(k, 0) for k in ("frames", "events", "malformed", "reconnects",
                                             "step_fetches")}
        self.say(f"stopped · frames {c['frames']:,} · events {c['events']:,} · malformed "
                 f"{c['malformed']} · reconnects {c['reconnects']} · closed-step fetches "
                 f"{c['step_fetches']}")
        return 0
