"""Stored data played back as if it were live: a feed with the live feed's face.

``StoreReplay`` reads one venue's symbols from the store over [start, end) and delivers them
through the callbacks a ``LiveFeed`` uses (``on_event``, ``on_steps``, ``on_status``), in time
order, on a replay clock that runs ``speed`` times real time and can be paused: closed steps at
their close, open-interest points, liquidations, and the mark price from its stored minute bars
(open, the extremes, close, so the forming step's mark range is the stored one). The minute
bars also feed the ``BarBuilder`` as closed 1-minute klines (price only: trades are not
stored), so the provisional column moves as it did. A consumer that takes a ``LiveFeed`` takes
this: the app's replay mode is the live path with another source.
"""

from __future__ import annotations

import asyncio
import heapq
import time

import numpy as np

from .feeds.bars import MINUTE_MS, BarBuilder
from .feeds.events import Bar, FeedState, FeedStatus, Liquidation, MarkPrice, OpenInterest
from .feeds.rest import Backfill
from .store import STEP_MS, Store

_ORDER = {"mark": 0, "kline": 1, "oi": 2, "liq": 3, "steps": 4}  # ties: prices before steps


def _wall_ms() -> int:
    return int(time.time() * 1000)


class StoreReplay:
    def __init__(self, store: Store, venue: str, symbols, start: int, end: int, *,
                 speed: float = 1.0, on_event=None, on_status=None, on_steps=None,
                 step_ms: int = STEP_MS):
        if not end > start:
            raise ValueError("replay needs --to after --from")
        if not speed > 0:
            raise ValueError(f"replay speed {speed!r}: expected a positive number")
        self.store, self.venue = store, venue
        self.symbols = [symbols] if isinstance(symbols, str) else list(symbols)
        self.start, self.end, self.step_ms = start, end, step_ms
        self.on_event, self.on_status, self.on_steps = on_event, on_status, on_steps
        self.bars = BarBuilder(step_ms)
        self.last_mark: dict[str, MarkPrice] = {}
        self.last_oi: dict[str, OpenInterest] = {}
        self.counters = dict.fromkeys(("events", "steps", "callback_errors"), 0)
        self.state: FeedState | None = None
        self.paused = False
        self.speed = float(speed)
        self._anchor = (start, time.monotonic())  # (replay ms, monotonic s) of the last change
        self._next_step: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    # ------------------------------------------------------------------ the replay clock

    def clock(self) -> int:
        """Replay time now (ms): the exchange clock of a replayed session."""
        t, mono = self._anchor
        if self.paused:
            return t
        return min(self.end, t + int((time.monotonic() - mono) * 1000 * self.speed))

    def _rebase(self) -> None:
        self._anchor = (self.clock(), time.monotonic())

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"replay speed {speed!r}: expected a positive number")
        self._rebase()
        self.speed = float(speed)
        self._status(FeedState.LIVE, self._describe())
        self._wake.set()

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether it is paused now."""
        self._rebase()
        self.paused = not self.paused
        self._status(FeedState.LIVE, "replay paused" if self.paused else self._describe())
        self._wake.set()
        return self.paused

    def _describe(self) -> str:
        return f"replay ×{self.speed:g}"

    def steps_from(self, symbol: str, open_ms: int) -> None:
        """Deliver closed steps of ``symbol`` opening at or after ``open_ms`` (the end of what
        the caller already has); by default those opening at or after ``start``."""
        self._next_step[symbol.upper()] = open_ms

    # ------------------------------------------------------------------ run

    def _status(self, state: FeedState, reason: str = "") -> None:
        self.state = state
        if self.on_status is not None:
            try:
                self.on_status(FeedStatus(self.venue, state, _wall_ms(), reason))
            except Exception:
                self.counters["callback_errors"] += 1

    def _timeline(self, sym: str):
        """(time, order, kind, payload) of one symbol, sorted."""
        st, v, a, b = self.store, self.venue, self.start, self.end
        out = []
        m = st.marks(v, sym, a - MINUTE_MS, b)
        for i in range(len(m["time"])):
            t0, last = int(m["time"][i]), int(m["last_time"][i])
            o, h, lo, c = (float(m[k][i]) for k in ("open", "high", "low", "close"))
            ix = float(m["index_close"][i]) if np.isfinite(m["index_close"][i]) else float("nan")
            mid = (t0 + last) // 2
            first, second = (h, lo) if c < o else (lo, h)  # the extreme away from the close first
            for t, p in ((t0, o), ((t0 + mid) // 2, first), ((mid + last) // 2, second),
                         (last, c)):
                out.append((t, 0, "mark", MarkPrice(v, sym, t, p, ix)))
            out.append((t0 + MINUTE_MS, 1, "kline", Bar(v, sym, t0, MINUTE_MS, o, h, lo, c,
                                                         0.0, 0.0, 0.0, True)))
        oi = st.open_interest(v, sym, a, b)
        out += [(int(t), 2, "oi", OpenInterest(v, sym, int(t), float(x)))
                for t, x in zip(oi["time"], oi["base"])]
        lq = st.liquidations(v, sym, a, b)
        out += [(int(t), 3, "liq", Liquidation(v, sym, int(t), str(s), float(p), float(q),
                                               float(n)))
                for t, s, p, q, n in zip(lq["time"], lq["side"], lq["price"], lq["qty"],
                                         lq["notional"])]
        first_open = self._next_step.get(sym, a)
        steps = st.steps(v, sym, first_open, b - self.step_ms + 1, self.step_ms)
        out += [(int(t) + self.step_ms, 4, "steps", (sym, i)) for i, t in enumerate(steps["time"])]
        out = [e for e in out if a <= e[0] < b or e[2] == "steps"]
        out.sort(key=lambda e: (e[0], e[1]))
        return out, steps

    async def run(self) -> None:
        """Play until ``end`` or ``stop()``; never raises (a store error is an ERROR state)."""
        try:
            self._status(FeedState.BACKFILLING, "loading the replay")
            loaded = await asyncio.to_thread(lambda: [self._timeline(s) for s in self.symbols])
        except Exception as e:  # noqa: BLE001 - a damaged store: a state, not a crash
            self._status(FeedState.ERROR, f"replay: {e}")
            return
        steps = {s: st for s, (_, st) in zip(self.symbols, loaded)}
        events = list(heapq.merge(*(tl for tl, _ in loaded), key=lambda e: (e[0], e[1])))
        self._anchor = (self.start, time.monotonic())
        self._status(FeedState.LIVE, self._describe())
        i = 0
        while not self._stopping and i < len(events):
            now = self.clock()
            due = []
            while i < len(events) and events[i][0] <= now:
                due.append(events[i])
                i += 1
            self._deliver(due, steps)
            if i < len(events):
                wait = 0.25 if self.paused else min(
                    0.25, max(0.0, (events[i][0] - self.clock()) / 1000 / self.speed))
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
        self._status(FeedState.STOPPED, "replay stopped" if self._stopping else "replay finished")

    def _deliver(self, due, steps) -> None:
        batch: dict[str, list[int]] = {}
        for _, _, kind, x in due:
            if kind == "steps":
                batch.setdefault(x[0], []).append(x[1])
                continue
            if kind == "kline":
                self.bars.kline(x)
                continue
            if kind == "mark":
                self.last_mark[x.symbol] = x
            elif kind == "oi":
                self.last_oi[x.symbol] = x
            self.counters["events"] += 1
            if self.on_event is not None:
                try:
                    self.on_event(x)
                except Exception:
                    self.counters["callback_errors"] += 1
        for sym, idx in batch.items():
            st = steps[sym]
            bf = Backfill({k: v[idx[0]:idx[-1] + 1] for k, v in st.items()})
            bf.symbol, bf.interval_ms, bf.warnings = sym, self.step_ms, []
            bf.start, bf.end = int(bf["time"][0]), int(bf["time"][-1]) + self.step_ms
            bf.now = self.clock()
            self.counters["steps"] += len(idx)
            if self.on_steps is not None:
                try:
                    self.on_steps(bf)
                except Exception:
                    self.counters["callback_errors"] += 1

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
