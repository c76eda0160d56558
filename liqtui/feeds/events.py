"""The few plain event types every venue's wire data is normalised into.

Prices are floats in quote currency (USD(T)), quantities in base units, times in ms since the
epoch as the *exchange* stamped them (data age is measured from these, never the local clock).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    """A kline. ``closed`` is False for the forming bar."""
    venue: str
    symbol: str
    time: int            # open time, ms
    interval_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float        # base
    quote_volume: float
    taker_buy_quote_volume: float  # NaN where the venue does not give it
    closed: bool


@dataclass(frozen=True, slots=True)
class MarkBar:
    """A mark-price kline (high/low drive consumption where known)."""
    venue: str
    symbol: str
    time: int
    interval_ms: int
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class OpenInterest:
    venue: str
    symbol: str
    time: int            # the instant the value holds for
    base: float          # open interest in base units


@dataclass(frozen=True, slots=True)
class MarkPrice:
    venue: str
    symbol: str
    time: int
    price: float
    index_price: float = float("nan")


@dataclass(frozen=True, slots=True)
class Trade:
    venue: str
    symbol: str
    time: int
    trade_id: int
    price: float
    qty: float           # base
    taker_buy: bool      # the aggressor bought


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A realized forced liquidation: ``side`` is the position that was wiped."""
    venue: str
    symbol: str
    time: int
    side: str            # "long" or "short"
    price: float         # average fill (Binance ap) or the venue's reported price
    qty: float           # base
    notional: float      # USD: Binance z·ap, falling back to q·p


@dataclass(frozen=True, slots=True)
class Reply:
    """A venue's answer to a control message (subscribe, unsubscribe, list): ``result``, or
    an error (``code``, ``msg``). ``id`` is None for an error the venue could not tie to a
    request. Not market data: it never makes a socket look alive."""
    id: int | str | None
    result: object = None
    code: int | str | None = None
    msg: str = ""


# what every frame parser counts (it never raises on a venue's bad frame)
COUNTER_KEYS = ("frames", "events", "malformed", "unknown", "replies")


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTER_KEYS, 0)


class FeedState(str, enum.Enum):
    CONNECTING = "CONNECTING"
    BACKFILLING = "BACKFILLING"
    LIVE = "LIVE"
    STALE = "STALE"
    RECONNECTING = "RECONNECTING"
    LIMITED = "LIMITED"        # REST rate limited (429 and the like) until ``until``
    BANNED = "BANNED"
    ERROR = "ERROR"
    STOPPED = "STOPPED"


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A state change, observable by the UI and the log. ``until`` for BANNED and LIMITED
    (ms, wall)."""
    venue: str
    state: FeedState
    time: int                  # local wall time of the change, ms
    reason: str = ""
    until: int | None = None
