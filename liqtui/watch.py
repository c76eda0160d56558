"""``liqtui watch``: the live model for one symbol, headless, as plain lines.

Backfills the lookback over REST, prints the levels, then follows the venue live: feed states,
realized liquidations (a sample: Binance pushes at most one per symbol per second), a status line
with the provisional newest column's strongest levels every few seconds, and the levels again
whenever a closed step arrives and the model is rebuilt. Lines only, no screen control, so it
works in a pipe, a log file or a tmux pane.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from .feeds import BinanceLive, BinanceRest
from .feeds.events import FeedStatus, Liquidation, MarkPrice
from .feeds.series import SymbolSeries
from .feeds.settings import FeedSettings
from .report import levels_text, usd, utc
from .units import hms as _hm


class Watch:
    def __init__(self, args, params, threshold: float, rest_url: str, ws_url: str,
                 settings: FeedSettings | None = None, out=sys.stdout):
        self.args, self.threshold, self.out = args, threshold, out
        self.settings = settings or FeedSettings()
        self.rest_url, self.ws_url = rest_url, ws_url
        self.series = SymbolSeries(args.symbol, params, args.lookback_ms)
        self.live: BinanceLive | None = None
        self.last_mark: MarkPrice | None = None

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def levels(self) -> None:
        hm = self.series.heatmap
        if hm is not None:
            self.say(levels_text(hm, self.series.symbol, self.args.top, self.threshold).rstrip())

    # ------------------------------------------------------------ feed callbacks

    def on_status(self, st: FeedStatus) -> None:
        until = f" until {utc(st.until)}" if st.until else ""
        self.say(f"{_hm(st.time)} {st.state.value}{until}{' · ' + st.reason if st.reason else ''}")

    def on_event(self, ev) -> None:
        if isinstance(ev, MarkPrice) and ev.symbol == self.series.symbol:
            self.last_mark = ev
            self.series.mark(ev)
        elif isinstance(ev, Liquidation) and ev.symbol == self.series.symbol:
            self.say(f"{_hm(ev.time)} liquidation: {ev.side} {ev.qty:g} @ {ev.price:,.2f} "
                     f"({usd(ev.notional)}) (a sample: the venue pushes at most one a second)")

    def on_steps(self, steps) -> None:
        t0 = time.perf_counter()
        added = self.series.extend(steps)
        ms = (time.perf_counter() - t0) * 1e3
        self.say(f"{_hm(self.series.end)} closed step{'s' if added != 1 else ''} up to "
                 f"{utc(self.series.end)}: {added} new, model rebuilt in {ms:.0f} ms")
        for w in steps.warnings:
            self.say(f"warning: {w}")
        self.levels()

    def status_line(self) -> str:
        live, sym = self.live, self.series.symbol
        forming = live.bars.forming(sym) if live else None
        oi = live.last_oi.get(sym) if live else None
        prov = self.series.provisional(forming, oi)
        # stamped in exchange time like every other line (the newest mark's), not the local clock
        now = self.last_mark.time if self.last_mark is not None else int(time.time() * 1000)
        parts = [f"{_hm(now)} {live.state.value if live and live.state else '…'}"]
        if forming is not None:
            parts.append(f"{sym} {forming.close:,.2f}")
        if self.last_mark is not None:
            age = time.time() - self.last_mark.time / 1000
            parts.append(f"mark {self.last_mark.price:,.2f} (data age {max(age, 0):.1f} s)")
        if oi is not None:
            parts.append(f"OI {oi.base:,.1f}")
        if prov is not None:
            hm = self.series.heatmap
            ref = forming.close
            top = []
            for side, sign in (("long", -1), ("short", 1)):
                col = prov.state[:, 0 if side == "long" else 1].sum(axis=0) * hm.prices
                col = col * (hm.params.side_mask[0 if side == "long" else 1])
                if col.any():
                    i = int(col.argmax())
                    top.append(f"{side} {hm.prices[i]:,.0f} {usd(col[i])} "
                               f"{(hm.prices[i] / ref - 1) * 100:+.1f}%")
            if top:
                parts.append("provisional peak bins: " + " | ".join(top))
        return " · ".join(parts)

    # ------------------------------------------------------------ run

    async def run(self) -> int:
        args = self.args
        self.say(f"liqtui watch: {args.symbol} · Binance USDⓈ-M · lookback {args.range} · "
                 f"REST {self.rest_url} · WS {self.ws_url}")
        t0 = time.perf_counter()
        rest = BinanceRest(self.rest_url, settings=self.settings)
        try:
            info = await rest.symbol(args.symbol)
            bf = await rest.backfill(info.symbol, lookback_ms=args.lookback_ms)
        finally:
            await rest.close()
        self.series.symbol = info.symbol
        if info.tick_size and self.series.params.bin_width is None and self.series.params.tick_size is None:
            self.series.params = self.series.params.replace(tick_size=info.tick_size)
        for w in bf.warnings:
            self.say(f"warning: {w}")
        self.series.extend(bf)
        self.say(f"backfilled {len(bf['time'])} closed steps ({utc(bf.start)} → {utc(bf.end)}) "
                 f"in {time.perf_counter() - t0:.1f} s")
        self.levels()

        self.live = BinanceLive(self.ws_url, [info.symbol], rest_url=self.rest_url,
                                settings=self.settings, on_event=self.on_event, on_status=self.on_status,
                                on_steps=self.on_steps)
        self.live.steps_from(info.symbol, bf.end)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = asyncio.create_task(self.live.run())
        deadline = None if args.duration is None else time.monotonic() + args.duration
        try:
            while not stop.is_set():
                wait = args.every if deadline is None else min(args.every, deadline - time.monotonic())
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
            await self.live.stop()
            await asyncio.gather(runner, return_exceptions=True)
        c = self.live.counters
        self.say(f"stopped · frames {c['frames']:,} · events {c['events']:,} · malformed "
                 f"{c['malformed']} · reconnects {c['reconnects']} · closed-step fetches "
                 f"{c['step_fetches']}")
        return 0
