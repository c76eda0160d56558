"""The typed events a session publishes: what every front end (the app, ``watch``, ``record``,
later alerts and a collector) learns of the market and the feeds, and nothing else.

Each event names its ``symbol`` and ``venue`` (the venue's name, or ``""`` for the venue sum)
and carries ``time`` in exchange milliseconds (the session's clock: the sim's in ``--demo``,
the replay's in a replay). Events are published on the event loop, in the order they happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..feeds.events import FeedState, Liquidation, MarkPrice, OpenInterest, Trade


@dataclass(frozen=True)
class SessionEvent:
    time: int
    symbol: str      # "*" for a venue-wide event (a capture's socket state)
    venue: str       # the venue's name, "" for the venue sum


@dataclass(frozen=True)
class StateChanged(SessionEvent):
    """A feed's state: LIVE, STALE, RECONNECTING, BANNED (until), ERROR (reason), STOPPED…"""
    state: FeedState
    reason: str = ""
    until: int | None = None   # ms, a ban's or a back-off's end


@dataclass(frozen=True)
class Backfilled(SessionEvent):
    """Closed steps fetched over REST (or read from the store) entered the model."""
    steps: int
    start: int | None          # ms, the first and end of what arrived
    end: int | None
    seconds: float
    source: str = "rest"       # "rest", "store", "older" (the rest of the lookback)
    warnings: tuple[str, ...] = ()
    data: object = None        # the steps themselves (``Steps``), for the store's writer


@dataclass(frozen=True)
class StepsClosed(SessionEvent):
    """Closed steps from the live feed (each a 5-minute bar with its open interest)."""
    steps: object              # the feeds' step batch (``Steps``: arrays by column)
    added: int                 # how many were new to the model (0 in a capture: no model)
    rebuild_ms: float = 0.0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeatmapRebuilt(SessionEvent):
    """The asset's model changed (closed steps, a filter, a venue in or out of the sum)."""
    heatmap: object


@dataclass(frozen=True)
class ProvisionalColumn(SessionEvent):
    """The live, provisional newest column (USD per price bin), about once a second."""
    prices: object
    column: object


@dataclass(frozen=True)
class MarketData(SessionEvent):
    """A mark price or open interest as the venue sent it (``data``): about once a second."""
    data: MarkPrice | OpenInterest


@dataclass(frozen=True)
class TradeData(SessionEvent):
    """A trade (``data``), hundreds a second: made only while somebody subscribes to it."""
    data: Trade


@dataclass(frozen=True)
class RealizedLiquidation(SessionEvent):
    """A forced liquidation the venue published. ``complete`` is False where the venue
    publishes a sample (Binance: at most one per symbol per second)."""
    data: Liquidation
    complete: bool = True


@dataclass(frozen=True)
class VenueLeftOut(SessionEvent):
    """A venue was left out of the venue sum (``reason``), or came back (``back``)."""
    reason: str = ""
    back: bool = False


@dataclass(frozen=True)
class Note(SessionEvent):
    """A line for the feed events log (``e`` in the app, ``--log``): what the feeds did."""
    text: str = ""
    level: int = 20            # logging.INFO
    extra: dict = field(default_factory=dict, compare=False)
