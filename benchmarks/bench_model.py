"""Benchmark the LQ-1 rebuild (what a filter change in the UI calls) and its memory.

    python benchmarks/bench_model.py [--runs N]

Prints a table: median of N runs (default 7) after one warm-up, per case. Memory is what a
symbol keeps: the result's arrays (history columns, final state, per-step series) plus the
stored bars; "peak" is the transient high-water mark of one rebuild (tracemalloc).

The venue rows run the same synthetic market as every venue of the registry, shaped like the
simulator's (``liqtui.sim.venues.SHAPES``, from ``liqtui.feeds.venues``: each venue's basis and
its shares of volume and open interest): the aggregated rebuild (one build per venue on one
bin width, then ``aggregate``) and ``aggregate`` alone; "× single" compares with the
single-venue rebuild measured in the same round-robin (goal: the aggregated rebuild ≤ 3×).
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
from liqtui.model.venues import aggregate, build_venues  # noqa: E402

from liqtui.sim.venues import SHAPES  # noqa: E402 - the registry's shapes, as the simulator serves

N = len(SHAPES)

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


def venue_bars(bars: dict) -> dict:
    """The same bars as each venue would serve them: prices × (1 + basis), volumes and open
    interest × the venue's shares."""
    out = {}
    for name, shape in SHAPES.items():
        k, vol, oi = shape.k, shape.volume_share, shape.oi_share
        d = {key: bars[key] * k for key in ("open", "high", "low", "close")}
        d.update(time=bars["time"], volume=bars["volume"] * vol, open_interest=bars["open_interest"] * oi,
                 quote_volume=bars["quote_volume"] * vol * k,
                 taker_buy_quote_volume=bars["taker_buy_quote_volume"] * vol * k)
        out[name] = d
    return out


def bench_venues(runs: int) -> list[dict]:
    """The cases run round-robin, so a busy machine slows them alike and the ratio holds."""
    bars = venue_bars(synthetic_bars(8_640))
    built = build_venues(bars).sources
    cases = [
        ("1 venue (binance)", lambda: build_heatmap(bars["binance"])),
        (f"{N} venues", lambda: build_venues(bars, threads=False)),
        (f"{N} venues, threads", lambda: build_venues(bars, threads=True)),
        (f"aggregate only ({N} built)", lambda: aggregate(built, bars)),
    ]
    out = {name: f() for name, f in cases}  # warm-up
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(runs):
        for name, f in cases:
            t0 = time.perf_counter()
            out[name] = f()
            times[name].append((time.perf_counter() - t0) * 1e3)
    rows = []
    for name, _ in cases:
        t0 = time.perf_counter()
        for lv in out[name].levels(10):
            if hasattr(out[name], "level_venues"):
                out[name].level_venues(lv)
        rows.append({"case": name, "median": statistics.median(times[name]),
                     "min": min(times[name]), "max": max(times[name]), "agg": out[name],
                     "levels": (time.perf_counter() - t0) * 1e3})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    print(f"liqtui model benchmark: median of {runs} runs, {os.cpu_count()} CPUs, synthetic BTC-like bars")
    head = f"{'case':26s} {'steps':>6s} {'cols':>5s} {'bins':>5s} {'median ms':>10s} {'min':>7s} {'max':>7s} {'levels+map ms':>14s} {'kept MiB':>9s} {'peak MiB':>9s}"
    print(head)
    print("-" * len(head))
    rows = bench(runs)
    for r in rows:
        print(f"{r['case']:26s} {r['steps']:6d} {r['cols']:5d} {r['bins']:5d} {r['median']:10.1f} "
              f"{r['min']:7.1f} {r['max']:7.1f} {r['levels']:14.1f} {r['kept']:9.1f} {r['peak']:9.1f}")
    print()
    head = f"{'venues (8,640 steps each)':26s} {'cols':>5s} {'bins':>5s} {'median ms':>10s} {'min':>7s} {'max':>7s} {'× single':>9s} {'levels ms':>10s}"
    print(head)
    print("-" * len(head))
    venue_rows = bench_venues(runs)
    single = venue_rows[0]["median"]
    for r in venue_rows:
        c, b = r["agg"].columns.shape
        print(f"{r['case']:26s} {c:5d} {b:5d} {r['median']:10.1f} {r['min']:7.1f} {r['max']:7.1f} "
              f"{r['median'] / single:9.2f} {r['levels']:10.1f}")


if __name__ == "__main__":
    main()
