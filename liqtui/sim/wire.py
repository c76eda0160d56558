"""Wire helpers every simulated venue shares: JSON out, numbers as venues print them, one
WebSocket connection's outgoing queue and its single writer, the name → connections index,
and the faults' answers (unknown fields, a gateway's 5xx).

Public so each venue's protocol module (``liqtui.sim.binance``, ``bybit``, ``okx``, …) can
use them without reaching into another venue's or the server's private names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

log = logging.getLogger("liqtui.sim.server")

PING = object()                   # writer-queue tokens besides frame strings: a ping frame …
CLOSE = object()                  # … and the close handshake (after what is queued)


def dumps(obj) -> str:
    """Compact JSON, as the venues send it."""
    return json.dumps(obj, separators=(",", ":"))


def fmt(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` decimals, never "-0.00"."""
    s = f"{x:.{decimals}f}"
    return "0" + s[2:] if s.startswith("-0") and float(s) == 0 else s


def decimals(step: float) -> int:
    """Decimals needed to print a tick or step size exactly (0.1 → 1, 0.001 → 3, 1 → 0)."""
    for d in range(0, 12):
        if abs(round(step, d) - step) < 1e-12:
            return d
    return 12


def wall_seconds(sim_ms: float, scale: float) -> int:
    """A simulated duration as whole wall seconds for Retry-After (at least 1, as venues)."""
    return max(1, math.ceil(sim_ms / 1000.0 / max(scale, 1e-9)))


def jsonable(o):
    """``json.dumps(default=…)`` for numpy arrays and scalars."""
    tolist = getattr(o, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def with_extra_fields(obj):
    """Unknown keys at every object level, as venues add fields without notice."""
    if isinstance(obj, dict):
        out = {k: with_extra_fields(v) if isinstance(v, (dict, list)) else v
               for k, v in obj.items()}
        out["simExtra"] = "x"
        return out
    if isinstance(obj, list):
        # kline rows are arrays: a trailing extra element, as the venue appended "ignore" once
        if obj and all(isinstance(r, list) for r in obj):
            return [r + ["0"] for r in obj]
        return [with_extra_fields(v) if isinstance(v, (dict, list)) else v for v in obj]
    return obj


def http_5xx(rng, used: int = 0) -> web.Response:
    """The ``http_5xx_rate`` fault's answer: a gateway's HTML for 502, else the JSON error
    body of an overloaded venue (``used``: the weight header's value)."""
    status = rng.choice((500, 502, 503, 504))
    if status == 502:   # gateways answer in HTML, not the venue's JSON
        return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                            content_type="text/html")
    msg = ("Service Unavailable." if status == 503 else
           "Internal error; unable to process your request. Please try again.")
    return web.Response(status=status, text=dumps({"code": -1001, "msg": msg}),
                        content_type="application/json",
                        headers={"X-MBX-USED-WEIGHT-1M": str(used)})


# ------------------------------------------------------------------------------------------
# one WebSocket connection: a queue drained by one writer task


@dataclass(eq=False)
class Conn:
    """A server-side WebSocket connection. Frames, pings and the close go through ``out``
    and are written by ``writer(conn)`` alone, so they stay in order."""

    ws: web.WebSocketResponse
    request: web.Request
    kind: str                     # the venue's flavour of socket ("market", "bybit", …)
    combined: bool
    opened_sim: int
    subs: list[str] = field(default_factory=list)
    out: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    msg_times: deque = field(default_factory=deque)
    last_ping: float = field(default_factory=time.monotonic)
    ping_pending_since: float | None = None
    close_code: int = WSCloseCode.GOING_AWAY
    close_msg: bytes = b""
    closing: bool = False
    writer: asyncio.Task | None = None
    release: object = None        # release(conn): its protocol takes it off its index on close


def close(conn, code: int, msg: bytes = b"", abrupt: bool = False) -> None:
    """Close a connection from the server side: after what is queued (via its writer), or
    ``abrupt`` (a network failure: no close frame, the client's read ends in an error)."""
    if conn.closing:
        return
    release = getattr(conn, "release", None)
    if release is not None:
        release(conn)
    if abrupt:
        conn.closing = True
        transport = conn.request.transport
        if transport is not None:
            transport.abort()
        conn.wake.set()
        return
    conn.close_code, conn.close_msg = code, msg
    conn.out.append(CLOSE)
    conn.closing = True
    conn.wake.set()


async def writer(conn) -> None:
    """The only task that writes to a connection: frames, pings and the close, in order."""
    ws = conn.ws
    try:
        while True:
            if not conn.out:
                if conn.closing:
                    return
                conn.wake.clear()
                await conn.wake.wait()
                continue
            item = conn.out.popleft()
            if item is CLOSE:
                await ws.close(code=conn.close_code, message=conn.close_msg)
                return
            if item is PING:
                await ws.ping()
            else:
                await ws.send_str(item)
    except (ConnectionError, RuntimeError, asyncio.CancelledError):
        return   # the peer went away; the reader cleans up
    except Exception:  # noqa: BLE001 - never let one socket take the server down
        log.exception("sim websocket writer failed")


async def wind_down(conn) -> None:
    """After a connection's reader returns: let its writer finish what is queued (a close
    handshake included, at most 2 s), then make sure the socket is closed."""
    conn.closing = True
    conn.wake.set()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(conn.writer, 2.0)
    if not conn.ws.closed:
        with contextlib.suppress(Exception):
            await conn.ws.close()


def unindex(index: dict, conn, names) -> list:
    """Take ``conn`` off each of ``names`` in a name → connections index (every venue's
    socket server keeps one); the names nobody follows now, dropped from the index."""
    gone = []
    for name in names:
        subs = index.get(name)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del index[name]
                gone.append(name)
    return gone
