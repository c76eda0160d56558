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

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

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
        await sx.prepare_replay(count)   # render before the clock starts
    print(sx.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    await sx.stop()

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
"""


def start_sim(count: int = 0, cpu: int | None = 0, history_days: float = 1.0,
              symbols: str = "BTCUSDT") -> tuple[subprocess.Popen, int]:
    """The simulated exchange in its own process, with a replay of ``count`` messages rendered
    ahead; returns (process, port). Close its stdin to stop it."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(count), str(history_days), symbols],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(proc.pid, {cpu})
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit("the simulated exchange did not start")
    return proc, int(line)


def stop_sim(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def one_run(port: int, count: int) -> dict:
    from liqtui.feeds.binance import BinanceLive

    first = [0.0]
    n_events = [0]

    def on_event(ev):  # what an app does at the least: look at each event
        if not n_events[0]:
            first[0] = time.perf_counter()
        n_events[0] += 1

    live = BinanceLive(f"ws://127.0.0.1:{port}", ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                       on_event=on_event)
    t0 = time.perf_counter()
    await live.ingest(f"ws://127.0.0.1:{port}/replay/stream?count={count}")
    t1 = time.perf_counter()
    c = live.counters
    bars = [live.bars.forming(s) for s in live.symbols]
    return {"frames": c["frames"], "events": c["events"], "bad": c["malformed"] + c["unknown"],
            "dups": c["duplicates"], "wall": t1 - (first[0] or t0), "bars": sum(b is not None for b in bars)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300_000, help="messages per run")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and cores > 1:
        os.sched_setaffinity(0, {1})  # the client on its own core; the server gets core 0
    proc, port = start_sim(args.count, cpu=0)
    try:
        asyncio.run(one_run(port, min(args.count, 20_000)))  # warm-up (imports, connection)
        rows = [asyncio.run(one_run(port, args.count)) for _ in range(args.runs)]
    finally:
        stop_sim(proc)
    try:
        import orjson  # noqa: F401
        decoder = "orjson"
    except ImportError:
        decoder = "json"
    rates = [r["frames"] / r["wall"] for r in rows]
    print(f"Binance live ingest over loopback ({args.count:,} messages per run, {args.runs} runs, "
          f"decoder {decoder}, {cores} cores, server in its own process)")
    print(f"{'run':>4} {'messages':>10} {'events':>10} {'bad':>5} {'dups':>5} {'wall s':>8} "
          f"{'msg/s':>10}")
    for i, (r, rate) in enumerate(zip(rows, rates), 1):
        print(f"{i:>4} {r['frames']:>10,} {r['events']:>10,} {r['bad']:>5} {r['dups']:>5} "
              f"{r['wall']:>8.3f} {rate:>10,.0f}")
    med = statistics.median(rates)
    print(f"median {med:,.0f} msg/s (goal ≥ {GOAL:,}): {'ok' if med >= GOAL else 'BELOW GOAL'}")
    if any(r["frames"] != args.count for r in rows):
        print("warning: a run received fewer messages than sent")


if __name__ == "__main__":
    main()
