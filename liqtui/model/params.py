"""Validated model parameters. Every error names the value and what is accepted."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

DEFAULT_LEVERAGES = (5.0, 10.0, 25.0, 50.0, 100.0)
DEFAULT_WEIGHTS = (0.10, 0.25, 0.30, 0.20, 0.15)
TIER_PRESETS = ("all", "high", "low")
SIDE_FILTERS = ("both", "long", "short")
HIGH_MIN, LOW_MAX = 25.0, 10.0


def tier_label(leverage: float) -> str:
    return f"{leverage:g}x"


@dataclass(frozen=True)
class ModelParams:
    leverages: tuple[float, ...] = DEFAULT_LEVERAGES
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    tier_filter: str | tuple[float, ...] = "all"
    side_filter: str = "both"
    bin_width: float | None = None
    tick_size: float | None = None
    alpha: float = 1.0
    entry_spread: bool = False
    both_sides: bool = False
    half_life_ms: float | None = None
    seed: bool = False
    max_columns: int = 2048
    max_bins: int = 6000
    max_gap_ms: int = 3_600_000
    mmr: float = 0.004
    dtype: type = np.float32
    keep_ledger: bool = False
    reference_price: float | None = None
    _tier_mask: tuple[bool, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lev = tuple(float(x) for x in _seq(self.leverages, "leverages"))
        w = tuple(float(x) for x in _seq(self.weights, "weights"))
        if not lev:
            raise ValueError("leverages must list at least one tier, e.g. 5,10,25,50,100")
        if any(not math.isfinite(x) or x < 1 for x in lev):
            raise ValueError(f"leverages must be numbers ≥ 1, got {_fmt(lev)}")
        if len(set(lev)) != len(lev):
            raise ValueError(f"leverages must be distinct, got {_fmt(lev)}")
        if len(w) != len(lev):
            raise ValueError(
                f"weights must give one weight per leverage tier ({len(lev)}), got {len(w)}: {_fmt(w)}"
            )
        if any(not math.isfinite(x) or x < 0 for x in w) or abs(sum(w) - 1) > 1e-9:
            raise ValueError(f"weights must be ≥ 0 and sum to 1, got {_fmt(w)} (sum {sum(w):g})")
        object.__setattr__(self, "leverages", lev)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "_tier_mask", self._resolve_tiers(lev))
        if self.side_filter not in SIDE_FILTERS:
            raise ValueError(f"side filter must be one of {', '.join(SIDE_FILTERS)}, got {self.side_filter!r}")
        for name in ("bin_width", "tick_size", "half_life_ms", "reference_price"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name.replace('_', ' ')} must be a positive number, got {v!r}")
        if not (isinstance(self.alpha, (int, float)) and 0 <= self.alpha <= 1):
            raise ValueError(f"alpha must be a number in [0, 1], got {self.alpha!r}")
        if not (0 <= self.mmr < 1):
            raise ValueError(f"mmr must be in [0, 1), got {self.mmr!r}")
        for name, lo in (("max_columns", 2), ("max_bins", 16), ("max_gap_ms", 0)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer ≥ {lo}, got {v!r}")
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def _resolve_tiers(self, lev: tuple[float, ...]) -> tuple[bool, ...]:
        f = self.tier_filter
        if isinstance(f, str):
            if f == "all":
                return tuple(True for _ in lev)
            if f == "high":
                return tuple(x >= HIGH_MIN for x in lev)
            if f == "low":
                return tuple(x <= LOW_MAX for x in lev)
            raise ValueError(
                f"tier filter must be one of {', '.join(TIER_PRESETS)} or a list of leverages, got {f!r}"
            )
        chosen = {float(x) for x in _seq(f, "tier filter")}
        unknown = chosen - set(lev)
        if unknown:
            raise ValueError(
                f"tier filter names leverages that are not tiers: {_fmt(sorted(unknown))} "
                f"(tiers: {_fmt(lev)})"
            )
        return tuple(x in chosen for x in lev)

    @property
    def tier_mask(self) -> np.ndarray:
        return np.array(self._tier_mask, dtype=bool)

    @property
    def side_mask(self) -> np.ndarray:
        return np.array([self.side_filter in ("both", "long"), self.side_filter in ("both", "short")])

    @property
    def tier_labels(self) -> list[str]:
        return [tier_label(x) for x in self.leverages]

    def replace(self, **changes) -> "ModelParams":
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        kw.update(changes)
        return ModelParams(**kw)


def _seq(v, name):
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ValueError(f"{name} must be a list of numbers, got {v!r}")
    try:
        return [float(x) for x in v]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {v!r}") from None


def _fmt(xs) -> str:
    return ",".join(f"{x:g}" for x in xs)
