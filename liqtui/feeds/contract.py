"""The venue contract, feed side: what a venue's REST client and live client provide.

A venue is declared once, in ``liqtui.feeds.venues.VENUES``; its entry names a REST client
class (a ``VenueRest``), a live client class (a ``VenueLive``) and a simulated protocol (a
``liqtui.sim.protocol.SimProtocol``). The session, the CLI, the recorder and the tests use a
venue only through these interfaces, so a new venue implements them and nothing else changes.

In practice a venue subclasses ``liqtui.feeds.rest.RestClient`` (session, status reports, the
backfill skeleton) and ``liqtui.feeds.live.LiveFeed`` (sockets, states, dedupe, gaps, closed
steps), which implement the venue-neutral half of these classes; it then writes the methods
marked *venue* below. Light to import: no aiohttp, no numpy.

Symbols are always ours (``BTCUSDT``) in and out of both clients; a venue that spells them
otherwise maps them itself (``Venue.venue_symbol`` / ``Venue.our_symbol``). Times are epoch
milliseconds (UTC); the exchange's clock decides what is closed. Events are the plain types of
``liqtui.feeds.events`` with ``venue`` set to the registry name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class VenueRest(ABC):
    """A venue's REST client: symbols, the exchange clock, single values and the backfill.

    Construction: ``cls(base_url, *, session=None, on_status=None, settings=None, **venue)``;
    ``base_url`` is scheme-host-port (the client appends the venue's paths). An async context
    manager; ``close()`` ends the session it opened (never one it was given).
    Class attributes: ``VENUE`` (the registry name, ``FeedStatus.venue``) and ``LABEL``
    (for messages). Instance attributes the live client relies on: ``on_status`` (a callable
    taking a ``FeedStatus``, or None: BANNED / rate-limit states are reported through it and a
    failing callback never breaks a request) and ``limiter`` (with ``banned`` and ``blocked``
    booleans: whether the venue has banned us / whether requests must wait now).

    Errors meant for the user are ``liqtui.feeds.rest.RestError`` and its subclasses
    ``UnknownSymbolError`` (naming the symbol) and ``BannedError`` (with ``until``).
    """

    VENUE = ""
    LABEL = ""

    @abstractmethod
    async def exchange_info(self, *, max_wait: float | None = None) -> dict:
        """*Venue.* The tradable linear perpetuals, keyed by our symbol name, each value a
        symbol info with at least ``symbol`` and ``tick_size`` (fetched once, then cached).
        ``max_wait``: seconds it may wait for the rate limiter (0: fail rather than wait)."""

    @abstractmethod
    async def symbol(self, symbol: str):
        """*Venue.* The info of one symbol (our name, any case) or ``UnknownSymbolError``
        naming it, with the nearest listed names when it is a typo."""

    @abstractmethod
    async def server_time(self, *, max_wait: float | None = None) -> int:
        """*Venue.* The exchange's clock (ms): closed steps are decided on it, not locally."""

    @abstractmethod
    async def open_interest(self, symbol: str, *, max_wait: float | None = None):
        """*Venue.* The current open interest (``events.OpenInterest``, in base units)."""

    @abstractmethod
    async def mark_price(self, symbol: str):
        """*Venue.* The current mark price (``events.MarkPrice``)."""

    @abstractmethod
    async def backfill(self, symbol: str, start_ms: int | None = None,
                       end_ms: int | None = None, *, lookback_ms: int | None = None,
                       interval_ms: int = 300_000, progress=None):
        """*Venue.* Closed bars of ``interval_ms`` opening at or after ``start_ms`` and
        closing at or before ``end_ms`` (default: the exchange's now), as a
        ``liqtui.feeds.rest.Backfill`` (columns ``time, open, high, low, close, volume,
        quote_volume, taker_buy_quote_volume, mark_high, mark_low, open_interest`` on the
        step grid; NaN where the venue has no value; taker volume 0.5 of the quote volume
        where its candles carry none: ``Venue.taker_in_candles``). ``lookback_ms`` instead of
        ``start_ms`` counts back from the end; the start is clamped to the venue's depth.
        ``progress(done, total)`` after each page. Raises ``UnknownSymbolError``,
        ``BannedError`` or ``RestError``; a ValueError for an interval it cannot serve."""

    @abstractmethod
    async def close(self) -> None:
        """End the HTTP session if the client opened it (idempotent)."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class VenueLive(ABC):
    """A venue's live client: its WebSockets as events, states and closed steps.

    Construction: ``cls(ws_url, symbols, *, rest=None, session=None, settings=None,
    on_event=None, on_status=None, on_gap=None, on_steps=None, step_ms=300_000, **venue)``;
    ``ws_url`` is scheme-host-port, ``rest`` a ``VenueRest`` of the same venue (for its
    symbols, gap backfills and closed steps). Callbacks: ``on_event(event)`` for every
    ``Trade``/``Liquidation``/``MarkPrice``/``OpenInterest``/``Bar``, ``on_status(FeedStatus)``
    on each state change, ``on_gap(Gap)``, ``on_steps(symbol, Backfill)`` for each batch of
    closed steps. A failing callback is counted, never raised.

    Attributes a front end reads: ``VENUE``, ``LABEL``, ``symbols``, ``state``
    (``FeedState``), ``counters`` (``frames``, ``events``, ``malformed``, ``reconnects``, …),
    ``bars`` (the ``BarBuilder`` with the provisional column), ``last_mark``, ``last_oi``,
    ``gaps``.

    The public methods are implemented once by ``LiveFeed``; a venue writes the hooks.
    """

    VENUE = ""
    LABEL = ""

    # ---------------------------------------------------------------- public (LiveFeed)

    @abstractmethod
    async def run(self) -> None:
        """Run until ``stop()`` (once per object). Never raises except on cancellation:
        failures become states (STALE, RECONNECTING, BANNED, ERROR with a reason)."""

    @abstractmethod
    async def stop(self) -> None:
        """Close the sockets and pollers; ``run()`` returns. Idempotent."""

    @abstractmethod
    def steps_from(self, symbol: str, open_ms: int) -> None:
        """Deliver closed steps of ``symbol`` from the step opening at ``open_ms`` on (the end
        of the caller's initial backfill), so backfill and live steps meet without a hole."""

    @abstractmethod
    async def backfill_gap(self, gap, interval_ms: int = 300_000) -> dict:
        """Closed bars covering a reported ``Gap`` for each of its symbols (needs ``rest``)."""

    @abstractmethod
    async def ingest(self, url: str) -> None:
        """Read one WebSocket at a full ``url`` until it closes, through the same parse and
        dedupe path as live data (no reconnects): the ingest benchmarks' entry point."""

    # ---------------------------------------------------------------- hooks (venue)

    @abstractmethod
    def _plan(self) -> list:
        """*Venue.* The sockets to open for ``symbols``: a list of ``(full URL, streams or
        subscription args, the symbols it carries)``; one entry per connection."""

    async def _subscribe(self, c, ws) -> None:
        """*Venue.* Send connection ``c``'s subscriptions on ``ws``; called after every
        (re)connect (venues keep no subscriptions across connections). Default: nothing,
        for venues whose streams are in the URL."""

    async def _keepalive(self, c, ws) -> None:
        """*Venue.* Application-level pings while ``ws`` is open (cancelled when it closes);
        close ``ws`` when the venue stops answering. Default: none (protocol pings only)."""

    @abstractmethod
    def _parse(self, data) -> list:
        """*Venue.* One WebSocket message (bytes or str) → events in our symbol names. Never
        raises: bad frames are counted in ``counters["malformed"]``, frames of channels or
        symbols we do not follow in ``unknown`` / ``foreign``; replies to our requests are
        ``events.Reply``."""

    def _extra_pollers(self) -> list:
        """*Venue.* REST coroutines to run beside the sockets (Binance polls open interest,
        which its streams do not carry). Default: none."""
        return []

    def _new_trade(self, ev, c) -> str | None:
        """*Venue.* None for a new trade on connection ``c``, else the counter it goes to
        (``duplicates``, ``implausible``). Default in ``LiveFeed``: ids increase per symbol,
        by at most ``TRADE_ID_JUMP`` on one socket; a venue with unordered ids remembers them."""
        return None
