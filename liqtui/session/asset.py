"""One asset on one venue as a running view holds it: its series and model, its feed state,
its live feed and the tasks that fill it. ``ReplaySpec`` says what a replay plays."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..feeds.events import FeedState, OpenInterest
from ..feeds.series import SymbolSeries
from ..units import DAY


@dataclass(frozen=True)
class ReplaySpec:
    """``liqtui replay``: stored data over [start, end) (ms) at ``speed`` × real time."""
    start: int
    end: int
    speed: float = 1.0


@dataclass
class FeedEvent:
    time: int        # exchange ms (the session.s clock: the sim's in --demo)
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
    stopping: bool = False           # its task is being cancelled (not viewed recently)
    live_task: asyncio.Task | None = None
    older: tuple[int, int] | None = None  # the part of the lookback still to fetch (ms span)
    older_task: asyncio.Task | None = None
    older_error: str = ""            # why the last fetch of it failed, and when it retries

    @property
    def running(self) -> bool:
        """Its task runs and is not being stopped."""
        return self.task is not None and not self.task.done() and not self.stopping

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


