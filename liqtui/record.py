"""``liqtui record``: capture many symbols of one or more venues into the store, headless: a
front end of a ``Session`` whose captures (``liqtui.session.capture``, one live feed per venue)
publish what they see, and whose store writer keeps it.

Feed states are printed as plain lines, like ``liqtui watch``; every ``every`` seconds a
status line; on exit (Ctrl-C, SIGTERM, ``--duration``) the store is flushed and what was
captured is reported per venue and symbol.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections import Counter

from .session.events import Note, StateChanged
from .units import hms, printable, utc


class Recorder:
    """Records ``symbols`` ({venue name: [symbol, …]}) through ``session`` into ``store``."""

    def __init__(self, session, store, symbols: dict[str, list[str]], *, backfill_ms: int,
                 every: float = 60.0, duration: float | None = None, out=sys.stdout):
        self.session, self.store, self.symbols = session, store, symbols
        self.backfill_ms, self.every, self.duration = backfill_ms, every, duration
        self.out = out
        self.stop = asyncio.Event()
        self.captures: dict = {}
        self.writer = None

    def say(self, line: str) -> None:
        """One plain line out, made printable (states, reasons and notes come from venues)."""
        self.out.write(printable(line) + "\n")
        self.out.flush()

    def on_event(self, ev) -> None:
        if isinstance(ev, StateChanged):
            until = f" until {utc(ev.until)}" if ev.until else ""
            self.say(f"{hms(ev.time)} {ev.venue} {ev.state.value}{until}"
                     f"{' · ' + ev.reason if ev.reason else ''}")
        elif isinstance(ev, Note) and ev.venue:  # a capture's (the demo's are its own)
            self.say(f"{ev.venue} {ev.symbol}: {ev.text}")

    def counts(self, venue: str, symbol: str) -> Counter:
        return self.writer.counts.get((venue, symbol), Counter())

    def status_line(self) -> str:
        parts = [hms(int(time.time() * 1000))]
        for venue, cap in self.captures.items():
            live = cap.live
            total = sum((self.counts(venue, s) for s in cap.symbols), Counter())
            state = live.state.value if live is not None and live.state else "…"
            frames = live.counters.get("frames", 0) if live is not None else 0
            parts.append(f"{venue} {state} · {len(cap.symbols)} symbols · frames {frames:,} · "
                         f"steps {total['steps']:,} · OI {total['open_interest']:,} · marks "
                         f"{total['marks']:,} · liquidations {total['liquidations']:,}")
        parts.append(f"store {self.store.written:,} rows written")
        if self.store.error:
            parts.append(self.store.error)
        return " · ".join(parts)

    async def run(self) -> int:
        from .session.store import KIND_EVENTS, StoreWriter

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        log = logging.getLogger("liqtui")
        if not log.handlers:  # these lines are the output
            log.addHandler(logging.NullHandler())
        s = self.session
        self.writer = StoreWriter(self.store, {x for xs in self.symbols.values() for x in xs})
        s.subscribe(self.writer, *KIND_EVENTS)
        s.subscribe(self.on_event, StateChanged, Note)
        self.captures = {v: s.capture(v, syms, backfill_ms=self.backfill_ms,
                                      last_step=self.store.last_step)
                         for v, syms in self.symbols.items()}
        names = ", ".join(f"{v} ({len(syms)} symbols)" for v, syms in self.symbols.items())
        self.say(f"liqtui record: {names} → {self.store.path}")
        tasks = [asyncio.create_task(c.run(self.stop), name=f"record-{v}")
                 for v, c in self.captures.items()]
        deadline = None if self.duration is None else time.monotonic() + self.duration
        try:
            while not self.stop.is_set() and not all(x.done() for x in tasks):
                wait = self.every if deadline is None else min(self.every,
                                                                deadline - time.monotonic())
                try:
                    await asyncio.wait_for(self.stop.wait(), max(wait, 0))
                except asyncio.TimeoutError:
                    pass
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not self.stop.is_set():
                    self.say(self.status_line())
        finally:
            self.stop.set()
            for c in self.captures.values():
                await c.stop()
            done, pending = await asyncio.wait(tasks, timeout=10)
            for x in pending:
                x.cancel()
            failed = False
            for v, res in zip(self.captures, await asyncio.gather(*tasks,
                                                                  return_exceptions=True)):
                if isinstance(res, Exception):  # a damaged store, or a bug of ours: say so
                    failed = True
                    self.say(f"{v}: recording failed: {type(res).__name__}: {res}")
            flushed = await asyncio.to_thread(self.store.flush)
        self.say(self.report(flushed))
        return 1 if failed else 0

    def report(self, flushed: bool) -> str:
        rows = [("venue", "symbol", "steps", "open interest", "marks", "liquidations")]
        for v, syms in self.symbols.items():
            for sym in syms:
                c = self.counts(v, sym)
                rows.append((v, sym, f"{c['steps']:,}", f"{c['open_interest']:,}",
                             f"{c['marks']:,}", f"{c['liquidations']:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"stopped · captured this run, {'flushed to' if flushed else 'NOT all written to'}"
                 f" {self.store.path}" + (f" ({self.store.error})" if self.store.error else "")]
        for r in rows:
            lines.append("  " + "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        return "\n".join(lines)


async def validate(session, symbols: list[str], store,
                   out=sys.stdout) -> tuple[dict, list[str]]:
    """({venue: [symbols it lists]}, [symbols no venue lists]); a line says what a venue does
    not list. A venue that cannot be asked now keeps the symbols as given (its live feed
    checks them again when it can). The tick sizes found go to the store."""
    from .session.capture import listed

    chosen: dict[str, list[str]] = {}
    found: set[str] = set()
    venues = session.venues
    for name, c in venues.items():
        known, why = await listed(c.venue, c.rest_url, symbols, c.settings)
        if known is None:
            out.write(printable(f"{name}: symbol list unavailable ({why}); recording the "
                                "symbols as given") + "\n")
            chosen[name] = list(symbols)
            found.update(symbols)
            continue
        for sym, tick in known.items():
            store.set_tick_size(name, sym, tick)
        missing = [s for s in symbols if s not in known]
        if missing and len(venues) > 1:
            out.write(printable(f"{name}: does not list {', '.join(missing)}; not recorded "
                                "there") + "\n")
        chosen[name] = [s for s in symbols if s in known]
        found.update(chosen[name])
    return {v: xs for v, xs in chosen.items() if xs}, sorted(set(symbols) - found)
