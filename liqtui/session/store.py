"""Write-back: what a session's feeds saw, into the store, as a subscriber of its events.

Closed steps (backfilled over REST or closed live), open interest, marks and realized
liquidations are what no venue can send again later; trades are not kept (the steps hold
their sum). Steps read from the store are not written back, and a replay writes nothing (the
session attaches no writer). ``counts`` says what was queued, per venue, symbol and kind.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from ..feeds.events import Liquidation, MarkPrice, OpenInterest
from .events import Backfilled, MarketData, RealizedLiquidation, StepsClosed

KINDS = {MarkPrice: "marks", OpenInterest: "open_interest", Liquidation: "liquidations"}
KIND_EVENTS = (Backfilled, StepsClosed, MarketData, RealizedLiquidation)


class StoreWriter:
    """``session.subscribe(StoreWriter(store), *KIND_EVENTS)``; ``symbols`` limits it to some
    symbols (a recorder's), else everything is kept."""

    def __init__(self, store, symbols=None):
        self.store = store
        self.symbols = None if symbols is None else set(symbols)
        self.counts: dict[tuple[str, str], Counter] = defaultdict(Counter)

    def __call__(self, ev) -> None:
        if self.symbols is not None and ev.symbol not in self.symbols:
            return
        if isinstance(ev, (StepsClosed, Backfilled)):
            steps = ev.steps if isinstance(ev, StepsClosed) else ev.data
            if (isinstance(ev, Backfilled) and ev.source == "store") or steps is None \
                    or not len(steps["time"]):
                return
            n = self.store.add_steps(ev.venue, ev.symbol, steps, steps.interval_ms)
            self.counts[ev.venue, ev.symbol]["steps"] += n
        elif isinstance(ev, (MarketData, RealizedLiquidation)):
            kind = KINDS.get(ev.data.__class__)
            if kind is not None and self.store.add_event(ev.data):
                self.counts[ev.venue, ev.symbol][kind] += 1
