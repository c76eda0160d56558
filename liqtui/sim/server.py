"""The simulated exchange: every venue's protocol over real sockets on loopback, one port.

``SimExchange(market).start()`` serves a ``liqtui.sim.market.Market`` over the protocol of each
venue in the registry (``liqtui.feeds.venues.VENUES``: each names its ``SimProtocol``, e.g.
``liqtui.sim.binance:Protocol``), so a client that passes against the sim does not fail
against the venue. Here is what they share: the aiohttp app and the routing to each venue's
paths, the pump that advances the market and hands every protocol its events, the faults
(``/sim/faults``) and the truth (``/sim/truth``), and the connection machinery a protocol
uses (``enqueue``, ``close``, ``damage``, ``http_5xx``: see ``liqtui.sim.protocol``).
Wire reference: ``../shared/design/PROTOCOLS.md``; contract: ``docs/sim-and-feeds.md``.

Clocks: everything a venue measures in time (request-weight minutes, bans, connection lives,
server pings) runs on the market's *simulated* clock, so a fast ``time_scale`` shows minutes of
venue behaviour in seconds. Values sent to clients as durations (``Retry-After``) are converted
to wall seconds (at least 1), so a client that obeys them waits briefly in tests. Rates a
client controls with its own timers and transport timeouts are in wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random

from aiohttp import WSCloseCode, web

from . import wire
from .faults import Faults
from .venues import load_protocols
from .wire import jsonable

log = logging.getLogger(__name__)


class SimExchange:
    """The venues' protocols over aiohttp on 127.0.0.1, driven by a simulated ``Market``.

    ``tick_s``: wall seconds between ``market.advance()`` calls (the fan-out cadence).
    ``max_queue``: frames a connection may have waiting; a client slower than that is dropped
    (as a venue would) so it never holds back the others.
    ``coinm_share``: share of Binance's USDⓈ-M liquidation snapshots that also bring a COIN-M
    one on ``!forceOrder@arr`` (the venue does this since mid-2026; 0 turns it off).
    ``venues``: the registry names to serve (default: every venue).
    """

    def __init__(self, market, faults: Faults | None = None, *, tick_s: float = 0.05,
                 max_queue: int = 20_000, coinm_share: float = 0.2, seed: int | None = None,
                 venues=None):
        self.market = market
        self.faults = faults if faults is not None else Faults()
        self.tick_s = tick_s
        self.max_queue = max_queue
        self.coinm_share = coinm_share
        seed = getattr(market, "seed", 1) if seed is None else seed
        self.seed = int(seed) if isinstance(seed, int) else 1
        self.rng = random.Random(self.seed)   # fault decisions; reproducible per seed
        self.rest_url = ""
        self.ws_url = ""
        self.host = ""
        self.port = 0
        self.counters = {"frames": 0, "dropped_clients": 0, "rate_disconnects": 0,
                         "fault_drops": 0, "lifetime_cuts": 0, "rest_requests": 0}
        self._runner: web.AppRunner | None = None
        self._pump_task: asyncio.Task | None = None
        # venue name → its protocol server, in the registry's order, on one port
        self.served = load_protocols(self, venues)
        self.protocols = list(self.served.values())

    def protocol(self, venue: str):
        """The protocol server of ``venue`` (a registry name); KeyError if not served."""
        return self.served[venue]

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def time_scale(self) -> float:
        return float(getattr(self.market, "time_scale", 1.0) or 1.0)

    def now(self) -> int:
        return int(self.market.now_ms())

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.add_routes([
            web.get("/sim/truth", self._truth),
            web.get("/sim/faults", self._get_faults),
            web.post("/sim/faults", self._set_faults),
        ])
        # every venue's fixed paths first, then paths with patterns (Binance's /ws/{streams}),
        # so a pattern never takes another venue's fixed path (OKX's /ws/v5/public)
        routes = [r for proto in self.protocols for r in proto.routes()]
        app.add_routes(sorted(routes, key=lambda r: "{" in getattr(r, "path", "")))
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # the port actually bound (port=0 picks a free one)
        self.host, self.port = host, sock.getsockname()[1]
        self.rest_url = f"http://{host}:{self.port}"
        self.ws_url = f"ws://{host}:{self.port}"
        # events from before the server existed are nobody's live data: skip that backlog, so
        # the first frames a client sees are current
        self.market.advance()
        self._pump_task = asyncio.create_task(self._pump(), name="sim-pump")

    async def stop(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        for proto in self.protocols:
            await proto.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    # -- the pump: advance the market, every protocol renders and fans out its frames ------

    async def _pump(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                events = self.market.advance()
                now = self.now()
                for proto in self.protocols:
                    proto.on_events(events, now)
            except Exception:  # noqa: BLE001 - a market bug must not kill the server
                log.exception("sim pump tick failed")

    # -- what protocols use (liqtui.sim.protocol) ------------------------------------------

    def enqueue(self, conn, item, control: bool = False) -> None:
        if conn.closing:
            return
        if not control and len(conn.out) >= self.max_queue:
            # a client that cannot keep up is cut off rather than slowing everyone down
            self.counters["dropped_clients"] += 1
            self.close(conn, WSCloseCode.POLICY_VIOLATION, b"Client too slow")
            return
        conn.out.append(item)
        conn.wake.set()

    @staticmethod
    def close(conn, code: int, msg: bytes = b"", abrupt: bool = False) -> None:
        """Close a connection from the server side (``wire.close``)."""
        wire.close(conn, code, msg, abrupt)

    def damage(self, text: str) -> str:
        f, rng = self.faults, self.rng
        if f.truncated_rate and rng.random() < f.truncated_rate:
            return text[: rng.randrange(1, max(2, len(text) - 1))]
        if f.malformed_rate and rng.random() < f.malformed_rate:
            return rng.choice((
                text.replace('"', "'", 3),                  # not JSON
                text.replace(":", "", 1),                   # not JSON
                '{"stream":null,"data":[1,2,3]}',          # JSON of the wrong shape
                '{"e":"aggTrade","E":"soon","p":null}',    # wrong types
                "\x00\xff garbage",
                "",
            ))
        return text

    def http_5xx(self, used: int = 0):
        """The ``http_5xx_rate`` fault's answer (``wire.http_5xx``)."""
        return wire.http_5xx(self.rng, used)

    # -- simulator endpoints (not part of any venue) ---------------------------------------

    async def _truth(self, request):
        sym = request.query.get("symbol", "")
        if sym not in self.market.symbols:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        bw = request.query.get("bin_width")
        try:
            truth = self.market.truth_map(sym, float(bw)) if bw else self.market.truth_map(sym)
        except ValueError as e:
            return web.json_response({"code": -1130, "msg": str(e)}, status=400)
        return web.Response(text=json.dumps(truth, default=jsonable),
                            content_type="application/json")

    async def _get_faults(self, request):
        return web.json_response(self.faults.as_dict())

    async def _set_faults(self, request):
        # JSON only: a text/plain or form POST is what a web page may send cross-site without
        # asking (no CORS preflight), so it is refused before the body is read
        if request.content_type != "application/json":
            return web.json_response(
                {"error": f"content type {request.content_type!r} is not accepted: expected "
                          "application/json"}, status=415)
        try:
            changes = await request.json()
        except ValueError as e:
            return web.json_response({"error": f"body is not JSON: {e}"}, status=400)
        if not isinstance(changes, dict):
            return web.json_response(
                {"error": f"body {changes!r} is not accepted: expected a JSON object of faults"},
                status=400)
        try:
            self.faults.update(**changes)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(self.faults.as_dict())
