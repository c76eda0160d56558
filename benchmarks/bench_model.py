"""Benchmark the LQ-1 rebuild (what a filter change in the UI calls) and its memory.

    python benchmarks/bench_model.py [--runs N]

Prints a table: median of N runs (default 7) after one warm-up, per case. Memory is what a
symbol keeps: the result's arrays (history columns, final state, per-step series) plus the
stored bars; "peak" is the transient high-water mark of one rebuild (tracemalloc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(__file__))

from synth import synthetic_bars  # noqa: E402

from liqtui.model import build_heatmap  # noqa: E402

CASES = [
    ("30d of 5m bars", 8_640, 300_000, {}),
    ("30d of 5m, tiers=high", 8_640, 300_000, {"tier_filter": "high"}),
    ("30d of 5m, entry spread", 8_640, 300_000, {"entry_spread": True}),
    ("7d of 1m bars", 10_080, 60_000, {}),
]


def bench(runs: int) -> list[dict]:
    rows = []
    for name, steps, interval, kw in CASES:
        bars = synthetic_bars(steps, interval_ms=interval)
        build_heatmap(bars, **kw)  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            hm = build_heatmap(bars, **kw)
            times.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        hm.levels(10), hm.liquidation_map()
        extras = (time.perf_counter() - t0) * 1e3
        tracemalloc.start()
        build_heatmap(bars, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        kept = hm.nbytes + sum(a.nbytes for a in bars.values())
        rows.append({
            "case": name, "steps": steps, "cols": hm.columns.shape[0], "bins": hm.columns.shape[1],
            "median": statistics.median(times), "min": min(times), "max": max(times),
            "levels": extras, "kept": kept / 2**20, "peak": peak / 2**20,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    print(f"liqtui model benchmark: median of {runs} runs, {os.cpu_count()} CPUs, synthetic BTC-like bars")
    head = f"{'case':26s} {'steps':>6s} {'cols':>5s} {'bins':>5s} {'median ms':>10s} {'min':>7s} {'max':>7s} {'levels+map ms':>14s} {'kept MiB':>9s} {'peak MiB':>9s}"
    print(head)
    print("-" * len(head))
    for r in bench(runs):
        print(f"{r['case']:26s} {r['steps']:6d} {r['cols']:5d} {r['bins']:5d} {r['median']:10.1f} "
              f"{r['min']:7.1f} {r['max']:7.1f} {r['levels']:14.1f} {r['kept']:9.1f} {r['peak']:9.1f}")


if __name__ == "__main__":
    main()
