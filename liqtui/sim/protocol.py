"""The venue contract, simulator side: what a venue's simulated protocol provides to the
simulated exchange (``liqtui.sim.server.SimExchange``), and what the exchange gives it.

Each venue in ``liqtui.feeds.venues.VENUES`` names a ``SimProtocol`` subclass ("module:Class",
by convention ``liqtui.sim.<venue>:Protocol``). The exchange builds one per venue it serves,
all on one aiohttp app and one port, from one simulated market: the venue's REST and
WebSocket paths must therefore not collide with another venue's fixed paths (a path with a
pattern, such as Binance's ``/ws/{streams}``, is routed after every fixed one).

What the exchange gives a protocol (``exchange``):

* ``market``: the bare ``liqtui.sim.market.Market`` (the protocol's own ``market`` argument is
  that market as this venue shows it: ``liqtui.sim.venues.VenueMarket``, or the bare market
  for a venue with the identity shape);
* ``faults`` (``liqtui.sim.faults.Faults``, applied to every venue), ``rng`` (fault decisions,
  reproducible per seed), ``seed``, ``counters`` (``frames``, ``rest_requests``, …, shared);
* ``now()`` (simulated ms) and ``time_scale`` (simulated seconds per wall second);
* ``enqueue(conn, item, control=False)``: queue a frame on a ``wire.Conn`` (a client slower
  than ``max_queue`` frames is cut off, ``control`` frames are never refused), ``close(conn,
  code, msg, abrupt=False)``, ``damage(text)`` (the malformed and truncated faults) and
  ``http_5xx(used)`` (the 5xx fault's answer).

Shared wire helpers (JSON, number formatting, the connection writer, the subscription index)
are in ``liqtui.sim.wire``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class SimProtocol(ABC):
    """One venue's protocol server on the simulated exchange.

    Construction: ``cls(exchange, market)``: the ``SimExchange`` and the market shaped for the
    venue (see the module docstring). ``counters`` (a dict of ints) says what it served.
    """

    counters: dict

    @abstractmethod
    def __init__(self, exchange, market):
        """Keep ``exchange`` and ``market``; open nothing yet (the exchange starts the app)."""

    @abstractmethod
    def routes(self) -> list:
        """The venue's REST and WebSocket paths as ``aiohttp.web.RouteDef`` s (``web.get``…),
        with the venue's own parameters, limits, error bodies and payload shapes."""

    @abstractmethod
    def on_events(self, events: list, now_ms: int) -> None:
        """One pump tick: the live events of ``Market.advance()`` (unshaped: shape them with
        the venue's ``market.view_event``) at simulated ``now_ms``. Render and queue the
        venue's frames, apply its throttles, pings and connection rules. Must not block."""

    @abstractmethod
    async def stop(self) -> None:
        """Close every connection it holds (a close frame each) and wait briefly (about a
        second at most) for their handlers to end; the exchange then stops the server."""
