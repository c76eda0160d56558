"""Live ingest throughput of the Bybit client: WebSocket messages per second.

    python benchmarks/bench_ingest_bybit.py [--count N] [--runs R] [--trades-per-msg K]

The same busy market as ``bench_ingest.py`` (``liqtui.sim.replay``: 80 % trades, 10 % 1-minute
klines, 10 % mark prices over BTC, ETH and SOL), re-encoded as Bybit v5 messages
(``publicTrade`` with K trades per message, default 1 so a message is comparable with a Binance
aggTrade; ``kline.1``; ``tickers`` deltas carrying the mark, index and open interest), streamed
by a server in its own process over a real loopback WebSocket as fast as the socket takes it.
This process reads it with ``BybitLive.ingest``: the same code as live data (aiohttp receive,
``parse_frame`` with the merged ticker book, UUID dedupe, the bar builder, the event
callback), on one core. Prints a table: median of R runs (default 3) after one warm-up.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (measure, parser, pin_client, print_runs, spawn,  # noqa: E402
                      stop_sim, timed_ingest)
from bench_ingest import GOAL  # noqa: E402

SERVER = r"""
import asyncio, json, sys, uuid
from aiohttp import web
from liqtui.sim.replay import push, render_frames

def bybit(frames, k):
    out, pending = [], {}
    for n, f in enumerate(frames):
        d = json.loads(f)["data"]
        e, s = d["e"], d["s"]
        if e == "aggTrade":
            t = {"T": d["T"], "s": s, "S": "Sell" if d["m"] else "Buy", "v": d["q"], "p": d["p"],
                 "L": "PlusTick", "i": str(uuid.UUID(int=d["a"])), "BT": False, "RPI": False,
                 "seq": d["a"]}
            batch = pending.setdefault(s, [])
            batch.append(t)
            if len(batch) >= k:
                out.append(json.dumps({"topic": "publicTrade." + s, "type": "snapshot",
                                       "ts": d["E"], "data": batch}, separators=(",", ":")))
                pending[s] = []
        elif e == "kline":
            b = d["k"]
            out.append(json.dumps({"topic": "kline.1." + s, "data": [{
                "start": b["t"], "end": b["T"], "interval": "1", "open": b["o"], "close": b["c"],
                "high": b["h"], "low": b["l"], "volume": b["v"], "turnover": b["q"],
                "confirm": b["x"], "timestamp": d["E"]}], "ts": d["E"], "type": "snapshot"},
                separators=(",", ":")))
        else:
            delta = {"symbol": s, "markPrice": d["p"][:-6], "indexPrice": d["i"][:-6]}
            if n % 3 == 0:
                delta.update(openInterest=str(60000 + n % 97), singleOpenInterest=str(30000 + n % 97))
            out.append(json.dumps({"topic": "tickers." + s, "type": "delta", "data": delta,
                                   "cs": n, "ts": d["E"]}, separators=(",", ":")))
    return out

async def main(count, k):
    frames = bybit(render_frames(count * k if k > 1 else count), k)[:count]
    async def replay(request):
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        n = int(request.query.get("count", len(frames)))
        await push(ws, frames[:n])
        await ws.close()
        return ws
    app = web.Application()
    app.router.add_get("/replay", replay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], len(frames), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


async def one_run(port: int, count: int) -> dict:
    from liqtui.feeds.bybit import BybitLive

    return await timed_ingest(BybitLive, port, f"/replay?count={count}")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--trades-per-msg", type=int, default=1)
    args = ap.parse_args()
    cores = pin_client()
    # the server prints its port and how many messages it rendered
    proc, (port, count) = spawn(SERVER, args.count, args.trades_per_msg, numbers=2, cpu=0,
                                what="the replay server")
    try:
        rows = measure(one_run, port, count, args.runs)
    finally:
        stop_sim(proc)
    print(f"Bybit live ingest over loopback ({count:,} messages per run, "
          f"{args.trades_per_msg} trade(s) per publicTrade message, {args.runs} runs, "
          f"{cores} cores, server in its own process)")
    print_runs(rows, GOAL)


if __name__ == "__main__":
    main()
