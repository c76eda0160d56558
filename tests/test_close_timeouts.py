"""Every close has a timeout (issue 12, item 6): a server that keeps streaming and never
answers the close frame cannot keep `liqtui watch` or `liqtui record` from stopping.

aiohttp's ``ws.close()`` sends a close frame and then reads until the peer's close frame,
with ``ws_close`` as the timeout of *each* read: a peer that keeps sending data makes every
read succeed, so the close never ends. Here the REST side is the simulated exchange and the
WebSocket side a relay of the simulator's stream that forwards frames forever and never
reads what the client sends (so never answers its close). The real commands run as
subprocesses; the bounds are generous (a loaded 2-core machine)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import aiohttp
import pytest
from aiohttp import web

import liqtui.sim.market as sim_market
import liqtui.sim.server as sim_server

EXIT_WITHIN_S = 15.0  # after --duration or the signal; the bug: never


@pytest.fixture(scope="module")
def market():
    return sim_market.Market(("BTCUSDT",), seed=5, history_days=1.0, time_scale=60.0)


class DeafStreamer:
    """A WebSocket endpoint relaying the simulator's frames forever, deaf to the client: it
    never reads, so a close frame is never answered, and it keeps sending until the
    connection is torn down under it."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.connections = 0
        self._runner = None
        self.url = ""

    async def start(self):
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._ws)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def _ws(self, request):
        ws = web.WebSocketResponse(autoclose=False, autoping=False)
        await ws.prepare(request)
        self.connections += 1
        chatter = asyncio.create_task(self._chatter(ws))
        try:
            async with aiohttp.ClientSession() as s, \
                    s.ws_connect(self.upstream + request.path_qs) as up:
                async for msg in up:  # forward; never read from the client
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        await ws.send_str(msg.data)
                    elif msg.type is aiohttp.WSMsgType.BINARY:
                        await ws.send_bytes(msg.data)
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            pass  # the client tore the connection down: what it should do
        finally:
            chatter.cancel()
        return ws

    @staticmethod
    async def _chatter(ws):
        """A frame every 50 ms whatever the market does (a subscription reply, harmless):
        no read of the client's close waits long enough to time out."""
        try:
            while True:
                await ws.send_str('{"result":null,"id":0}')
                await asyncio.sleep(0.05)
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            pass

    async def stop(self):
        await self._runner.cleanup()


@pytest.fixture
async def hostile(market):
    sx = sim_server.SimExchange(market)
    await sx.start()
    deaf = await DeafStreamer(sx.ws_url).start()
    try:
        yield sx, deaf
    finally:
        await deaf.stop()
        await sx.stop()


async def _start(*argv, tmp_path=None):
    env = dict(os.environ, NO_COLOR="1")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liqtui", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)


async def _until_live(proc, pattern: str, lines: list, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, end - time.monotonic()))
        if not line:
            raise AssertionError("exited before going live:\n" + "".join(lines))
        lines.append(line.decode())
        if pattern in lines[-1]:
            return
    raise AssertionError(f"no {pattern!r} in:\n" + "".join(lines))


async def _exits(proc, lines: list, within: float) -> int:
    """The exit status, failing if the process is still running ``within`` seconds from now
    (then it is killed, so that a failing test does not leave it behind)."""
    async def drain():
        async for line in proc.stdout:
            lines.append(line.decode())
        return await proc.wait()
    try:
        return await asyncio.wait_for(drain(), within)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"still running {within:g} s later:\n" + "".join(lines)) from None


def _watch_argv(sx, deaf, *more):
    return ("watch", "--symbol", "BTCUSDT", "--range", "12h", "--every", "1",
            "--rest-url", sx.rest_url, "--ws-url", deaf.url, *more)


async def test_watch_duration_ends_although_the_server_never_answers_the_close(hostile):
    sx, deaf = hostile
    proc = await _start(*_watch_argv(sx, deaf, "--duration", "3"))
    lines: list[str] = []
    await _until_live(proc, " LIVE", lines)   # backfilled, the deaf socket streaming
    assert await _exits(proc, lines, EXIT_WITHIN_S + 3) == 0, "".join(lines)
    assert deaf.connections >= 1
    assert "Traceback" not in "".join(lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_watch_stops_on_a_signal_although_the_server_never_answers(hostile, sig):
    sx, deaf = hostile
    proc = await _start(*_watch_argv(sx, deaf))
    lines: list[str] = []
    await _until_live(proc, " LIVE", lines)
    await asyncio.sleep(1.0)  # a few frames in flight
    proc.send_signal(sig)
    assert await _exits(proc, lines, EXIT_WITHIN_S) == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)


async def test_record_stops_on_sigterm_although_the_server_never_answers(hostile, tmp_path):
    sx, deaf = hostile
    proc = await _start("record", "--symbols", "BTCUSDT", "--backfill", "2h", "--every", "1",
                        "--rest-url", sx.rest_url, "--ws-url", deaf.url,
                        "--data-dir", str(tmp_path))
    lines: list[str] = []
    await _until_live(proc, "marks", lines)
    await asyncio.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert await _exits(proc, lines, EXIT_WITHIN_S) == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)


# ------------------------------------------------------------------ the feed itself

class _Hosts:
    """A Feed's sim stand-in: REST from the simulator, the WebSocket from the deaf relay."""

    def __init__(self, sx, deaf):
        self.rest_url, self.ws_url = sx.rest_url, deaf.url


async def test_feed_stop_is_bounded_although_the_server_never_answers(hostile):
    """``LiveFeed.stop()`` closes a socket a reader is waiting on: aiohttp's close then reads
    until the peer's close frame, forever when the peer keeps streaming. Bounded, the socket
    is dropped instead, and ``run()`` returns STOPPED."""
    from liqtui.feeds.binance import BinanceLive
    from helpers import Feed, fast, until

    sx, deaf = hostile
    feed = Feed(BinanceLive, _Hosts(sx, deaf), ["BTCUSDT"], settings=fast(close_timeout_s=1.0))
    feed.task = asyncio.create_task(feed.live.run())
    try:
        await until(lambda: feed.live.counters.get("frames", 0) > 5, what="frames")
        await asyncio.wait_for(feed.live.stop(), EXIT_WITHIN_S)
        await asyncio.wait_for(feed.task, EXIT_WITHIN_S)
    finally:
        feed.task.cancel()
    from liqtui.feeds.events import FeedState
    assert feed.statuses[-1].state is FeedState.STOPPED
