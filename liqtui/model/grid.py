"""The absolute price grid: bin ``i`` covers ``[i·w, (i+1)·w)``, centre ``(i + ½)·w``.

Bin widths come from the 1-2-5 series, ``w = m·10^e``. Prices are mapped to integers in units
of ``10^(e-6)`` so that ``w`` is exactly ``m·10^6`` units: bin indices are then exact integer
floor divisions, and a price on a boundary lands in exactly one bin (no float division, which
is what puts a boundary price in two buckets, or in the wrong one, elsewhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_MANTISSAS = (1, 2, 5)
_SUBDIGITS = 6  # price units per bin width: m·10^6


def _series_below(x: float) -> tuple[int, int]:
    """The largest 1-2-5 value ≤ x as (mantissa, exponent)."""
    e = math.floor(math.log10(x))
    for m in reversed(_MANTISSAS):
        if m * 10.0**e <= x * (1 + 1e-12):
            return m, e
    return 5, e - 1  # pragma: no cover - unreachable for x > 0


def _next_in_series(m: int, e: int) -> tuple[int, int]:
    i = _MANTISSAS.index(m)
    return (_MANTISSAS[i + 1], e) if i + 1 < len(_MANTISSAS) else (1, e + 1)


def choose_bin_width(price: float, tick: float | None = None, target: float = 0.0005) -> float:
    """The 1-2-5 width nearest (in log) to ``target`` × price, never below the tick size.

    BTC at 100,000 → 50; ETH at 3,000 → 2 (1.5 is nearer 2 than 1 in log).
    """
    if not (price > 0 and math.isfinite(price)):
        raise ValueError(f"price must be a positive number, got {price!r}")
    goal = price * target
    m, e = _series_below(goal)
    up = _next_in_series(m, e)
    lo, hi = m * 10.0**e, up[0] * 10.0**up[1]
    if math.log(hi / goal) < math.log(goal / lo):
        m, e = up
    if tick is not None and tick > 0:
        while m * 10.0**e < tick * (1 - 1e-12):
            m, e = _next_in_series(m, e)
    return Grid(m, e).width


def coarser_width(width: float) -> float:
    """The next 1-2-5 width above ``width``."""
    g = Grid.from_width(width)
    return Grid(*_next_in_series(g.mantissa, g.exponent)).width


@dataclass(frozen=True)
class Grid:
    """A 1-2-5 price grid. Pure function of the width: the same for every symbol and venue."""

    mantissa: int
    exponent: int

    @classmethod
    def from_width(cls, width: float) -> "Grid":
        if not (width > 0 and math.isfinite(width)):
            raise ValueError(f"bin width must be a positive number, got {width!r}")
        m, e = _series_below(width)
        if abs(m * 10.0**e - width) > 1e-9 * width:
            raise ValueError(
                f"bin width {width!r} is not in the 1-2-5 series (…, 1, 2, 5, 10, 20, 50, …)"
            )
        return cls(m, e)

    @property
    def width(self) -> float:
        # 10**e as an exact decimal string keeps e.g. 0.05 as the float nearest 0.05
        return float(f"{self.mantissa}e{self.exponent}")

    @property
    def width_units(self) -> int:
        return self.mantissa * 10**_SUBDIGITS

    def units(self, price) -> np.ndarray:
        """Prices as int64 multiples of 10^(e-6) (rounded to the nearest unit)."""
        k = _SUBDIGITS - self.exponent
        p = np.asarray(price, dtype=np.float64)
        scaled = p * float(10**k) if k >= 0 else p / float(10 ** (-k))
        return np.rint(scaled).astype(np.int64)

    def index(self, price) -> np.ndarray:
        """Bin index of each price: exact and half-open."""
        return self.units(price) // self.width_units

    def centre(self, index) -> np.ndarray:
        return (np.asarray(index, dtype=np.float64) + 0.5) * self.width

    def first_centre_at_or_above(self, price) -> np.ndarray:
        """Smallest bin index whose centre is ≥ price (exact)."""
        u, wu = self.units(price), self.width_units
        # centre_j >= p  <=>  (2j + 1)·wu >= 2u  <=>  j >= (2u - wu) / (2wu)
        return -((wu - 2 * u) // (2 * wu))

    def last_centre_at_or_below(self, price) -> np.ndarray:
        """Largest bin index whose centre is ≤ price (exact)."""
        u, wu = self.units(price), self.width_units
        return (2 * u - wu) // (2 * wu)

    def split(self, price) -> tuple[np.ndarray, np.ndarray]:
        """Linear split between the two nearest centres: (lower bin, weight of the upper bin)."""
        u, wu = self.units(price), self.width_units
        j = (u - wu // 2) // wu  # exact: a price on a centre is all in that bin
        # the weight in float, x − j with x = P/w − ½ (units would quantise it to 1e-6 of a bin)
        frac = np.asarray(price, dtype=np.float64) / self.width - 0.5 - j
        return j, np.clip(frac, 0.0, 1.0)
