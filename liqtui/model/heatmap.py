"""The result of a model run: history columns, the final state, levels and the map."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .grid import Grid
from .levels import Level, LiquidationMap, find_levels, liquidation_map
from .params import ModelParams


@dataclass
class Heatmap:
    params: ModelParams
    grid: Grid
    bin_offset: int            # absolute grid index of prices[0]
    prices: np.ndarray         # (B,) bin centres
    times: np.ndarray          # (C,) column end times, ms
    columns: np.ndarray        # (C, B) USD under the active filters, time-major
    state: np.ndarray          # (tiers, 2, B) base quantity at the end; side 0 long, 1 short
    consumed: np.ndarray       # (T, 2) base quantity liquidated per step and side
    accounting: dict           # per-side totals in base units (see docs/model-notes.md)
    reference_price: float
    start: int                 # first bar open, ms
    as_of: int                 # end of the last step, ms
    interval_ms: int
    warnings: list = field(default_factory=list)
    ledger: dict | None = None
    step_net: np.ndarray | None = None  # n_t per step (net opens − closes, base)
    last_open_interest: float = float("nan")  # the last known OI (base), for the live step

    @property
    def bin_width(self) -> float:
        return self.grid.width

    @property
    def tier_labels(self) -> list[str]:
        return self.params.tier_labels

    def _masks(self, side, tiers):
        p = self.params if tiers is None else self.params.replace(tier_filter=tiers)
        sides = p.side_mask if side is None else self.params.replace(side_filter=side).side_mask
        return p.tier_mask, sides

    def usd_tiers(self, side: str | None = None, tiers=None) -> np.ndarray:
        """Final USD per (tier, side, bin); disabled tiers and sides are zero."""
        tmask, smask = self._masks(side, tiers)
        usd = self.state * self.prices
        return usd * (tmask[:, None, None] & smask[None, :, None])

    def usd(self, side: str | None = None, tiers=None) -> np.ndarray:
        """Final USD per bin, summed over the enabled tiers and sides."""
        return self.usd_tiers(side, tiers).sum(axis=(0, 1))

    def levels(self, top: int = 10) -> list[Level]:
        return find_levels(self.usd_tiers(), self.tier_labels, self.prices, self.bin_width,
                           self.reference_price, top)

    def liquidation_map(self) -> LiquidationMap:
        u = self.usd_tiers().sum(axis=0)
        return liquidation_map(u[0], u[1], self.prices, self.reference_price)

    def totals(self) -> dict:
        u = self.usd_tiers().sum(axis=(0, 2))
        return {"long_usd": float(u[0]), "short_usd": float(u[1])}

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays of this result."""
        arrays = [self.prices, self.times, self.columns, self.state, self.consumed]
        if self.step_net is not None:
            arrays.append(self.step_net)
        return sum(a.nbytes for a in arrays)
