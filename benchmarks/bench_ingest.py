"""Live ingest throughput: WebSocket messages per second through the Binance live client.

    python benchmarks/bench_ingest.py [--count N] [--runs R]

The simulated exchange runs in a separate process (pinned to another core when there is one)
and streams its pre-rendered replay (aggTrade / kline_1m / markPrice@1s mix) over a real
loopback WebSocket as fast as the socket takes it. This process reads it with
``BinanceLive.ingest``: the same code as live data (aiohttp receive, ``parse_frame``,
duplicate check, the 1-minute/5-minute ``BarBuilder``, the event callback), on one core.
Prints a table: median of R runs (default 3) after one warm-up.
"""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (measure, parser, pin_client, print_runs, spawn,  # noqa: E402
                      stop_sim, timed_ingest)

GOAL = 100_000

SERVER = r"""
import asyncio, os, sys, tempfile
from liqtui.sim.market import Market
from liqtui.sim.server import SimExchange

async def main(count, days, symbols):
    cache = os.path.join(tempfile.gettempdir(), "liqtui-sim-cache")  # history reused per day
    sx = SimExchange(Market(symbols.split(","), seed=1, history_days=days, cache_dir=cache))
    await sx.start()
    if count:
        await sx.protocol("binance").prepare_replay(count)   # render before the clock starts
    print(sx.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    await sx.stop()

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
"""


def start_sim(count: int = 0, cpu: int | None = 0, history_days: float = 1.0,
              symbols: str = "BTCUSDT") -> tuple[subprocess.Popen, int]:
    """The simulated exchange in its own process, with a replay of ``count`` messages rendered
    ahead; returns (process, port). Close its stdin to stop it (``stop_sim``)."""
    proc, (port,) = spawn(SERVER, count, history_days, symbols, cpu=cpu)
    return proc, port


async def one_run(port: int, count: int) -> dict:
    from liqtui.feeds.binance import BinanceLive

    return await timed_ingest(BinanceLive, port, f"/replay/stream?count={count}")


def main() -> None:
    args = parser(__doc__).parse_args()
    cores = pin_client()
    proc, port = start_sim(args.count, cpu=0)
    try:
        rows = measure(one_run, port, args.count, args.runs)
    finally:
        stop_sim(proc)
    try:
        import orjson  # noqa: F401
        decoder = "orjson"
    except ImportError:
        decoder = "json"
    print(f"Binance live ingest over loopback ({args.count:,} messages per run, {args.runs} runs, "
          f"decoder {decoder}, {cores} cores, server in its own process)")
    print_runs(rows, GOAL)
    if any(r["frames"] != args.count for r in rows):
        print("warning: a run received fewer messages than sent")


if __name__ == "__main__":
    main()
