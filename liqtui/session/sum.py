"""One asset on several venues seen as one feed: the venue sum the app shows for "all"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..feeds.events import FeedState
from ..feeds.venues import VENUES
from ..model.venues import aggregate
from .asset import AssetFeed
from .events import VenueLeftOut

ALL = "all"
_BAD = (FeedState.ERROR, FeedState.BANNED)
WAITING = ("backfilling", "no data yet")  # why a venue is not in the sum yet: not a failure


class VenueSum:
    """One asset on several venues seen as one feed (what the app shows for "all"): the
    venues' heatmaps summed on the reference venue's grid (``liqtui.model.venues``), the
    live column and the markers mapped the same way. A venue that fails or has no data yet
    is left out of the sum; ``dropped`` says which and why, and changes are noted."""

    def __init__(self, symbol: str, members: dict, note, publish=None, clock=None):
        self.symbol, self.members, self._note = symbol, members, note
        self._publish, self._clock = publish, clock
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
            self._left(v, dropped[v], back=False)
        for v in sorted(was - now):
            self._note(self.symbol, f"{VENUES[v].label} back in the sum")
            self._left(v, "", back=True)
        self.dropped = dropped
        return self._hm

    def _left(self, venue: str, reason: str, back: bool) -> None:
        if self._publish is not None:
            self._publish(VenueLeftOut(self._clock(), self.symbol, venue, reason, back))

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


