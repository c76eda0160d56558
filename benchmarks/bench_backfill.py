"""30-day REST backfill of one symbol from the local simulated exchange: wall time.

    python benchmarks/bench_backfill.py [--days D] [--runs R] [--symbol S]

The simulated exchange runs in its own process (as a venue would; its history is generated
before the clock starts and cached per day in the temp directory); this process runs
``BinanceRest.backfill`` (klines, mark-price klines and open-interest history, paged and
sequential behind the weight limiter) and times it end to end, including exchangeInfo and the
server-time request. Prints a table: median of R runs (default 3) after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from bench_ingest import start_sim, stop_sim  # noqa: E402

GOAL_S = 3.0
from liqtui.units import DAY  # noqa: E402


async def one_run(port: int, symbol: str, days: float) -> dict:
    from liqtui.feeds.binance import BinanceRest

    t0 = time.perf_counter()
    async with BinanceRest(f"http://127.0.0.1:{port}") as rest:
        bf = await rest.backfill(symbol, lookback_ms=int(days * DAY))
        wall = time.perf_counter() - t0
        import numpy as np

        return {"wall": wall, "bars": len(bf["time"]), "requests": rest.counters["requests"],
                "oi": int(np.isfinite(bf["open_interest"]).sum()),
                "mark": int(np.isfinite(bf["mark_high"]).sum()), "warnings": bf.warnings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--symbol", default="BTCUSDT")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    proc, port = start_sim(0, cpu=0, history_days=args.days + 1, symbols=args.symbol)
    try:
        asyncio.run(one_run(port, args.symbol, 1.0))  # warm-up: imports, first connection
        rows = [asyncio.run(one_run(port, args.symbol, args.days)) for _ in range(args.runs)]
    finally:
        stop_sim(proc)
    print(f"Binance REST backfill of {args.symbol}, {args.days:g} days of 5-minute steps from the "
          f"local simulated exchange ({args.runs} runs)")
    print(f"{'run':>4} {'bars':>6} {'with OI':>8} {'with mark':>9} {'requests':>9} {'wall s':>8}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>4} {r['bars']:>6} {r['oi']:>8} {r['mark']:>9} {r['requests']:>9} "
              f"{r['wall']:>8.3f}")
    med = statistics.median(r["wall"] for r in rows)
    print(f"median {med:.3f} s (goal ≤ {GOAL_S:g} s): {'ok' if med <= GOAL_S else 'ABOVE GOAL'}")
    for w in rows[0]["warnings"]:
        print(f"note: {w}")


if __name__ == "__main__":
    main()
