"""Live ingest throughput of the OKX client, beside the Binance client on the same market.

    python benchmarks/bench_ingest_okx.py [--count N] [--runs R]

The simulated exchange runs in its own process (pinned to another core when there is one) and
streams pre-rendered frames over a real loopback WebSocket as fast as the socket takes them:
``/replay/okx`` (the Binance replay's market as OKX pushes: trades, candle1m and mark-price,
sizes in contracts) and ``/replay/stream`` (Binance). This process reads each with the
client's ``ingest``: the same code as live data (aiohttp receive, the venue's parser, dedupe,
the ``BarBuilder``, the event callback), on one core. Prints a table: median of R runs
(default 3), the venues interleaved, after one warm-up each.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import WARM_UP, parser, pin_client, spawn, stop_sim, timed_ingest  # noqa: E402
from bench_ingest import GOAL  # noqa: E402
from bench_ingest import one_run as binance_run  # noqa: E402

SERVER = r"""
import asyncio, os, sys, tempfile
from liqtui.sim.market import Market
from liqtui.sim.server import SimExchange

async def main(count, warm_up):
    cache = os.path.join(tempfile.gettempdir(), "liqtui-sim-cache")
    sx = SimExchange(Market(["BTCUSDT"], seed=1, history_days=1.0, cache_dir=cache),
                     venues=("binance", "okx"))
    await sx.start()
    for n in (count, min(count, warm_up)):
        await sx.protocol("okx").prepare_replay(n)      # render before the clock starts
        await sx.protocol("binance").prepare_replay(n)
    print(sx.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await sx.stop()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def instruments():
    """BTC, ETH and SOL swaps with the simulated venue's contract values."""
    from liqtui.feeds.okx_parse import Instrument, Instruments
    from liqtui.sim.okx import CT_VAL

    return Instruments(Instrument(f"{b}-USDT-SWAP", f"{b}USDT", CT_VAL[b], b, "linear", 0.01,
                                  0.01, "live") for b in ("BTC", "ETH", "SOL"))


async def okx_run(port: int, count: int) -> dict:
    from liqtui.feeds.okx import OkxLive

    return await timed_ingest(OkxLive, port, f"/replay/okx?count={count}",
                              bad=("malformed", "unknown", "foreign"), instruments=instruments())


def main() -> None:
    args = parser(__doc__).parse_args()
    cores = pin_client()
    proc, (port,) = spawn(SERVER, args.count, WARM_UP, cpu=0)
    venues = (("okx", okx_run), ("binance", binance_run))
    results = {name: [] for name, _ in venues}
    try:
        for name, run in venues:
            asyncio.run(run(port, min(args.count, WARM_UP)))  # warm-up
        for _ in range(args.runs):   # interleaved: both see the same machine load
            for name, run in venues:
                cpu = time.process_time()
                r = asyncio.run(run(port, args.count))
                r["cpu_us"] = (time.process_time() - cpu) / max(1, r["frames"]) * 1e6
                results[name].append(r)
    finally:
        stop_sim(proc)
    print(f"Live ingest over loopback, OKX beside Binance ({args.count:,} messages per run, "
          f"{args.runs} runs, {cores} cores, server in its own process)")
    print(f"{'venue':>8} {'run':>4} {'messages':>10} {'events':>10} {'bad':>5} {'dups':>5} "
          f"{'wall s':>8} {'msg/s':>10} {'cpu µs/msg':>11}")
    med, cpu = {}, {}
    for name, rows in results.items():
        rates = [r["frames"] / r["wall"] for r in rows]
        for i, (r, rate) in enumerate(zip(rows, rates), 1):
            print(f"{name:>8} {i:>4} {r['frames']:>10,} {r['events']:>10,} {r['bad']:>5} "
                  f"{r['dups']:>5} {r['wall']:>8.3f} {rate:>10,.0f} {r['cpu_us']:>11.2f}")
        med[name] = statistics.median(rates)
        cpu[name] = statistics.median(r["cpu_us"] for r in rows)
        if any(r["frames"] != args.count for r in rows):
            print(f"warning: a {name} run received fewer messages than sent")
    for name, m in med.items():
        print(f"median {name}: {m:,.0f} msg/s, {cpu[name]:.2f} client CPU µs/msg "
              f"(goal ≥ {GOAL:,} msg/s): {'ok' if m >= GOAL else 'BELOW GOAL'}")
    # CPU time per message is the fairer comparison on a loaded machine (wall time also
    # counts the moments another process had the core)
    print(f"OKX / Binance: {med['okx'] / med['binance']:.2f} in msg/s, "
          f"{cpu['binance'] / cpu['okx']:.2f} in CPU per message (1.00 = the same)")


if __name__ == "__main__":
    main()
