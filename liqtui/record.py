"""``liqtui record``: capture many symbols of one or more venues into the store, headless.

Per venue, the live feed starts first (liquidations, marks and open interest are captured from
the first second: nobody can send them again), then each symbol's missing closed steps are
backfilled over REST, from the newest stored step (or ``--backfill`` ago for a symbol new to
the store) up to now, and the live feed delivers the closed steps from there on. A backfill
that fails is handed to the live feed's step poller, which retries it at every step: nothing
is skipped. Feed states are printed as plain lines, like ``liqtui watch``; on exit (Ctrl-C,
SIGTERM, ``--duration``) the store is flushed and what was captured is reported per venue and
symbol.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from .feeds.events import FeedStatus, Liquidation, MarkPrice, OpenInterest
from .feeds.rest import RestError
from .report import utc
from .units import hms as _hm
from .store import Store

KINDS = {MarkPrice: "marks", OpenInterest: "open_interest", Liquidation: "liquidations"}


@dataclass
class Target:
    """One venue to record: its clients, URLs and symbols."""
    venue: str
    rest_cls: type
    live_cls: type
    rest_url: str
    ws_url: str
    symbols: list[str]
    ticks: dict[str, float] = field(default_factory=dict)  # symbol -> tick size, once known
    live: object = None
    counts: dict[str, Counter] = field(default_factory=dict)  # symbol -> kind -> n


class Recorder:
    def __init__(self, store: Store, targets: list[Target], *, settings, backfill_ms: int,
                 every: float = 60.0, duration: float | None = None, step_ms: int = 300_000,
                 out=sys.stdout):
        self.store, self.targets, self.settings = store, targets, settings
        self.backfill_ms, self.every, self.duration = backfill_ms, every, duration
        self.step_ms, self.out = step_ms, out
        self.stop = asyncio.Event()
        for t in targets:
            t.counts = {s: Counter() for s in t.symbols}

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    # ------------------------------------------------------------ callbacks (event loop)

    def _callbacks(self, t: Target):
        store, counts, venue = self.store, t.counts, t.venue

        def on_event(ev) -> None:
            kind = KINDS.get(ev.__class__)
            if kind is not None and ev.symbol in counts:
                store.add_event(ev)
                counts[ev.symbol][kind] += 1

        def on_steps(bf) -> None:
            n = store.add_steps(venue, bf.symbol, bf, bf.interval_ms)
            if bf.symbol in counts:
                counts[bf.symbol]["steps"] += n

        def on_status(st: FeedStatus) -> None:
            until = f" until {utc(st.until)}" if st.until else ""
            self.say(f"{_hm(st.time)} {venue} {st.state.value}{until}"
                     f"{' · ' + st.reason if st.reason else ''}")

        return on_event, on_steps, on_status

    # ------------------------------------------------------------ one venue

    async def _venue(self, t: Target) -> None:
        on_event, on_steps, on_status = self._callbacks(t)
        # one session and one REST client (one rate limiter) for the backfill and the live
        # feed's polls; the session is ours, so whichever starts first, it is closed once
        session = aiohttp.ClientSession(trust_env=True)
        rest = t.rest_cls(t.rest_url, session=session, settings=self.settings)
        t.live = t.live_cls(t.ws_url, t.symbols, rest=rest, session=session,
                            settings=self.settings, on_event=on_event, on_status=on_status,
                            on_steps=on_steps)
        runner = asyncio.create_task(t.live.run(), name=f"live-{t.venue}")
        for sym, tick in t.ticks.items():
            self.store.set_tick_size(t.venue, sym, tick)
        try:
            for sym in t.symbols:
                if self.stop.is_set():
                    break
                await self._backfill(t, rest, sym)
            await runner
        finally:
            await t.live.stop()
            await asyncio.gather(runner, return_exceptions=True)
            await session.close()

    async def _backfill(self, t: Target, rest, sym: str) -> None:
        last = self.store.last_step(t.venue, sym, self.step_ms)
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
            t.live.steps_from(sym, start if start is not None else
                              (int(time.time() * 1000) - self.backfill_ms) // self.step_ms
                              * self.step_ms)
            self.say(f"{t.venue} {sym}: backfill failed ({e or type(e).__name__}); the live "
                     "feed retries it")
            return
        for w in bf.warnings:
            self.say(f"{t.venue} {sym}: warning: {w}")
        n = self.store.add_steps(t.venue, sym, bf, bf.interval_ms)
        t.counts[sym]["steps"] += n
        t.live.steps_from(sym, bf.end)
        gap = "" if start is None else f" (stored up to {utc(start)})"
        self.say(f"{t.venue} {sym}: backfilled {n} closed steps{gap} → {utc(bf.end)} "
                 f"in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------ run

    def status_line(self) -> str:
        parts = [_hm(int(time.time() * 1000))]
        for t in self.targets:
            total = sum(t.counts.values(), Counter())
            state = t.live.state.value if t.live is not None and t.live.state else "…"
            frames = t.live.counters.get("frames", 0) if t.live is not None else 0
            parts.append(f"{t.venue} {state} · {len(t.symbols)} symbols · frames {frames:,} · "
                         f"steps {total['steps']:,} · OI {total['open_interest']:,} · marks "
                         f"{total['marks']:,} · liquidations {total['liquidations']:,}")
        parts.append(f"store {self.store.written:,} rows written")
        if self.store.error:
            parts.append(self.store.error)
        return " · ".join(parts)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        names = ", ".join(f"{t.venue} ({len(t.symbols)} symbols)" for t in self.targets)
        self.say(f"liqtui record: {names} → {self.store.path}")
        tasks = [asyncio.create_task(self._venue(t), name=f"record-{t.venue}")
                 for t in self.targets]
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
            for t in self.targets:
                if t.live is not None:
                    await t.live.stop()
            done, pending = await asyncio.wait(tasks, timeout=10)
            for x in pending:
                x.cancel()
            for t, res in zip(self.targets, await asyncio.gather(*tasks, return_exceptions=True)):
                if isinstance(res, Exception):  # a bug of ours: say so, keep what was captured
                    self.say(f"{t.venue}: recording failed: {type(res).__name__}: {res}")
            flushed = await asyncio.to_thread(self.store.flush)
        self.say(self.report(flushed))
        return 0

    def report(self, flushed: bool) -> str:
        rows = [("venue", "symbol", "steps", "open interest", "marks", "liquidations")]
        for t in self.targets:
            for sym, c in t.counts.items():
                rows.append((t.venue, sym, f"{c['steps']:,}", f"{c['open_interest']:,}",
                             f"{c['marks']:,}", f"{c['liquidations']:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"stopped · captured this run, {'flushed to' if flushed else 'NOT all written to'}"
                 f" {self.store.path}" + (f" ({self.store.error})" if self.store.error else "")]
        for r in rows:
            lines.append("  " + "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        return "\n".join(lines)


async def validate(targets: list[Target], settings, out=sys.stdout) -> list[str]:
    """Drop symbols a venue does not list (a line says so); returns the symbols no venue
    lists. A venue that cannot be asked now keeps the symbols as given (its live feed checks
    them again when it can)."""
    listed_somewhere: set[str] = set()
    asked = {s for t in targets for s in t.symbols}
    for t in targets:
        rest = t.rest_cls(t.rest_url, settings=settings)
        try:
            known = await rest.exchange_info()
        except (RestError, OSError, asyncio.TimeoutError) as e:
            out.write(f"{t.venue}: symbol list unavailable ({e or type(e).__name__}); "
                      "recording the symbols as given\n")
            listed_somewhere.update(t.symbols)
            continue
        finally:
            await rest.close()
        t.ticks = {s: getattr(known[s], "tick_size", None) for s in t.symbols if s in known}
        missing = [s for s in t.symbols if s not in known]
        if missing and len(targets) > 1:
            out.write(f"{t.venue}: does not list {', '.join(missing)}; not recorded there\n")
        t.symbols = [s for s in t.symbols if s in known]
        listed_somewhere.update(t.symbols)
    return sorted(asked - listed_somewhere)

