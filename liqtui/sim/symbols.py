"""What the simulated market lists and where its history starts: light to import (no numpy),
so ``liqtui --demo`` can start generating its first symbol in a child process before the
parent has imported anything heavy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from ..units import DAY, MINUTE as MIN
# the tape's version: part of the cache key, bumped whenever the engine generates differently
ENGINE_VERSION = 2


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    base: str
    tick_size: float
    step_size: float
    price_precision: int
    qty_precision: int
    onboard_ms: int | None = None      # listing time; None = listed long before the history
    # simulation parameters (not exchange facts)
    price: float = 100.0               # price when generation starts
    daily_vol: float = 0.03
    oi_usd: float = 5e7                # scale of the traders' open interest (USD)
    median_usd: float = 2000.0         # median position notional
    trades_per_min: float = 150.0
    listed_days_ago: float | None = None  # catalogue entries listed relative to "now"


CATALOGUE = {s.symbol: s for s in (
    SymbolSpec("BTCUSDT", "BTC", 0.1, 0.001, 2, 3, price=95_000.0, daily_vol=0.025,
               oi_usd=3e8, median_usd=6000.0, trades_per_min=300),
    SymbolSpec("ETHUSDT", "ETH", 0.01, 0.001, 2, 3, price=3_400.0, daily_vol=0.032,
               oi_usd=1.5e8, median_usd=4000.0, trades_per_min=250),
    SymbolSpec("SOLUSDT", "SOL", 0.001, 0.01, 3, 2, price=180.0, daily_vol=0.045,
               oi_usd=6e7, median_usd=2500.0, trades_per_min=200),
    SymbolSpec("BNBUSDT", "BNB", 0.01, 0.01, 2, 2, price=650.0, daily_vol=0.03,
               oi_usd=3e7, median_usd=1500.0, trades_per_min=120),
    SymbolSpec("XRPUSDT", "XRP", 0.0001, 0.1, 4, 1, price=2.3, daily_vol=0.045,
               oi_usd=4e7, median_usd=1500.0, trades_per_min=150),
    SymbolSpec("DOGEUSDT", "DOGE", 0.00001, 1.0, 5, 0, price=0.32, daily_vol=0.055,
               oi_usd=3e7, median_usd=1200.0, trades_per_min=150),
    SymbolSpec("NEWUSDT", "NEW", 0.0001, 1.0, 4, 0, price=0.85, daily_vol=0.09,
               oi_usd=5e6, median_usd=800.0, trades_per_min=90, listed_days_ago=3),
)}


def resolve(name, now_ms: int, catalogue=CATALOGUE) -> SymbolSpec:
    """The spec of a symbol (a name or a ``SymbolSpec``), its listing fixed relative to
    ``now_ms`` if the catalogue gives it in days ago. Unknown names raise ``ValueError``."""
    s = name if isinstance(name, SymbolSpec) else catalogue.get(str(name).upper())
    if s is None:
        raise ValueError(f"unknown symbol {name!r}; known: {', '.join(catalogue)}")
    if s.onboard_ms is None and s.listed_days_ago is not None:
        s = replace(s, onboard_ms=(now_ms // DAY) * DAY - int(s.listed_days_ago * DAY))
    return s


def first_minute(spec: SymbolSpec, history_start: int) -> int:
    """A symbol's first generated minute: the history start, or its listing if later."""
    if spec.onboard_ms is None:
        return history_start
    return max(history_start, spec.onboard_ms // MIN * MIN)


def cache_path(spec: SymbolSpec, seed: int, regime: str, history_start: int,
               cache_dir: Path) -> Path:
    # every simulation parameter of the spec is in the name, so editing one misses the cache
    tag = zlib.crc32(repr(replace(spec, listed_days_ago=None)).encode())
    start = first_minute(spec, history_start)
    return cache_dir / f"sim-v{ENGINE_VERSION}-{spec.symbol}-s{seed}-{regime}-{start}-{tag:08x}.npz"


def history_start(now_ms: int, history_days: float, seed: int, regime: str,
                  cache_dir: Path | None = None, symbols=()) -> int:
    """Where a market's history starts: ``history_days`` before ``now_ms`` (whole minutes),
    so a first start generates exactly that much. With a cache, a run that started up to a
    day earlier (of the same seed and regime; of one of ``symbols`` if given) is continued
    instead, so a restart later the same day loads it and generates only what is new."""
    start = (now_ms - int(history_days * DAY)) // MIN * MIN
    if cache_dir is None:
        return start
    names = {str(s).upper() for s in symbols}
    best = None
    try:
        found = list(Path(cache_dir).glob(f"sim-v{ENGINE_VERSION}-*-s{seed}-{regime}-*.npz"))
    except OSError:
        return start
    for path in found:
        # sim, vN, SYMBOL, sSEED, REGIME, START, TAG
        parts = path.name[:-len(".npz")].split("-")
        if len(parts) != 7 or not parts[5].isdigit() or (names and parts[2] not in names):
            continue
        s = int(parts[5])
        if start - DAY <= s <= start and (best is None or s > best):
            best = s
    return start if best is None else best
