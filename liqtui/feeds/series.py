"""One symbol's closed model steps and its heatmap, fed by a venue client.

Closed steps (from REST: backfill, then ``on_steps`` batches) are merged by time and the model
is rebuilt over the lookback: the heatmap stays a pure function of stored steps and parameters,
so a gap that was backfilled leaves no trace. Between closed steps the forming bar, the polled
open interest and the live mark price give the provisional newest column, which the next closed
step replaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..model import Heatmap, ModelParams, build_heatmap
from ..model.live import Provisional, provisional
from .events import Bar, MarkPrice, OpenInterest

STEP_KEYS = ("time", "open", "high", "low", "close", "volume", "quote_volume",
             "taker_buy_quote_volume", "open_interest", "mark_high", "mark_low")


class SymbolSeries:
    def __init__(self, symbol: str, params: ModelParams, lookback_ms: int, step_ms: int = 300_000):
        self.symbol, self.params = symbol, params
        self.lookback_ms, self.step_ms = lookback_ms, step_ms
        self.steps: dict[str, np.ndarray] | None = None
        self.heatmap: Heatmap | None = None
        self._mark_step = -1                 # open time of the step the mark range covers
        self._mark_lo = self._mark_hi = math.nan

    @property
    def end(self) -> int | None:
        """Close time of the newest closed step (ms), or None before the first."""
        return None if self.steps is None else int(self.steps["time"][-1]) + self.step_ms

    def extend(self, steps: Mapping[str, np.ndarray]) -> int:
        """Merge closed steps (a newer copy of a step replaces the older) and rebuild.
        Returns how many steps are new."""
        new = {k: np.asarray(steps[k]) if k in steps else np.full(len(steps["time"]), np.nan)
               for k in STEP_KEYS}
        if len(new["time"]) == 0:
            return 0
        fresh = len(new["time"]) if self.steps is None else int(
            np.isin(new["time"], self.steps["time"], invert=True).sum())
        if self.steps is not None:
            merged = {k: np.concatenate([self.steps[k], new[k]]) for k in STEP_KEYS}
            # stable sort by time, keep the last copy of each time (the newer delivery)
            order = np.argsort(merged["time"], kind="stable")
            t = merged["time"][order]
            last = np.r_[t[1:] != t[:-1], True]
            new = {k: v[order][last] for k, v in merged.items()}
        cut = new["time"] >= new["time"][-1] + self.step_ms - self.lookback_ms
        self.steps = {k: v[cut] for k, v in new.items()}
        self.rebuild()
        return fresh

    def rebuild(self, params: ModelParams | None = None) -> Heatmap | None:
        """Run the model over the stored steps (also what a filter change calls)."""
        if params is not None:
            self.params = params
        if self.steps is not None:
            self.heatmap = build_heatmap(self.steps, self.params)
        return self.heatmap

    def mark(self, m: MarkPrice) -> None:
        """Track the live mark range of the forming step (consumption runs on mark)."""
        step = m.time // self.step_ms * self.step_ms
        if step != self._mark_step:
            self._mark_step, self._mark_lo, self._mark_hi = step, m.price, m.price
        else:
            self._mark_lo, self._mark_hi = min(self._mark_lo, m.price), max(self._mark_hi, m.price)

    def provisional(self, forming: Bar | None, oi: OpenInterest | None) -> Provisional | None:
        """The newest column from the forming step, or None when there is nothing to add."""
        hm, end = self.heatmap, self.end
        if hm is None or forming is None or forming.time < end:
            return None
        bar = {"open": forming.open, "high": forming.high, "low": forming.low,
               "close": forming.close, "volume": forming.volume,
               "quote_volume": forming.quote_volume,
               "taker_buy_quote_volume": forming.taker_buy_quote_volume}
        if self._mark_step == forming.time:
            bar["mark_low"], bar["mark_high"] = self._mark_lo, self._mark_hi
        return provisional(hm, bar, None if oi is None else oi.base)
