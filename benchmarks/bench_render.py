"""Benchmark the heatmap rendering path (raster → levels → strips) and its terminal bytes.

    python benchmarks/bench_render.py [--runs N] [--cols 200] [--rows 60]

Prints a table, median of N runs (default 9) after one warm-up, per colour system:

* full frame: a new matrix → raster → palette levels → every strip rebuilt (merged runs);
* live column: one new (B,) column → its pixels → levels → one-cell strips;
* bytes per full frame: the strips rendered to ANSI by a Rich console of that colour system,
  with merged runs and with one segment per cell (what merging saves).

Data: ``build_heatmap(synthetic_bars(8640))`` (30 days of 5m bars), the last 24h shown.
No Textual app is started: this is the widget's own work per frame (Textual adds compositing).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.segment import Segment  # noqa: E402
from synth import synthetic_bars  # noqa: E402

from liqtui.model import ColorScale, build_heatmap  # noqa: E402
from liqtui.ui.heatmap import build_strip  # noqa: E402
from liqtui.ui.palette import get_palette  # noqa: E402
from liqtui.ui.raster import bin_rows, price_window, raster  # noqa: E402

from liqtui.units import DAY  # noqa: E402


def frame(hm, pal, scale, cols, rows):
    px_rows = rows * pal.pixels_per_cell
    lo, hi = price_window(hm.reference_price, rows=px_rows, bin_width=hm.bin_width)
    px = raster(hm, end_ms=hm.as_of, range_ms=DAY, cols=cols, rows=px_rows, price_lo=lo,
                price_hi=hi)
    codes = pal.cell_codes(pal.quantize(scale, px))
    return [build_strip(r, pal) for r in codes], (lo, hi)


def live(hm, pal, scale, column, rows, window):
    px = bin_rows(column, hm.prices, rows * pal.pixels_per_cell, *window)
    codes = pal.cell_codes(pal.quantize(scale, px)[:, None])[:, 0]
    return [pal.cell(int(c)) for c in codes]


def ansi_bytes(strips, system: str, merged: bool) -> int:
    con = Console(file=io.StringIO(), color_system=system, force_terminal=True, width=10_000,
                  legacy_windows=False)
    out = []
    for s in strips:
        segs = list(s) if merged else [Segment(ch, seg.style) for seg in s for ch in seg.text]
        out.append(con._render_buffer(segs))
    return sum(len(x.encode()) for x in out)


def timed(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--cols", type=int, default=200)
    ap.add_argument("--rows", type=int, default=60)
    a = ap.parse_args()
    hm = build_heatmap(synthetic_bars(8640))
    rng = np.random.default_rng(3)
    print(f"heatmap {hm.columns.shape[0]} columns × {hm.columns.shape[1]} bins; "
          f"grid {a.cols}×{a.rows} cells, last 24h; median of {a.runs} runs")
    print(f"{'palette':<10} {'full frame ms':>13} {'live col ms':>11} {'segments':>8} "
          f"{'bytes merged':>12} {'bytes per-cell':>14} {'ratio':>5}")
    for name, system in (("truecolor", "truecolor"), ("256", "256"), ("16", "standard")):
        pal = get_palette(name)
        scale = ColorScale()
        lo, hi = price_window(hm.reference_price, rows=a.rows * pal.pixels_per_cell,
                              bin_width=hm.bin_width)
        scale.rescale(raster(hm, end_ms=hm.as_of, range_ms=DAY, cols=a.cols,
                             rows=a.rows * pal.pixels_per_cell, price_lo=lo, price_hi=hi))
        base = hm.columns
        mats = [base * f for f in (0.95, 1.0, 1.05)]  # built outside the timing
        it = iter(range(10**9))

        def full():
            # a new matrix each frame (as after a filter change): nothing is reused
            hm.columns = mats[next(it) % len(mats)]
            return frame(hm, pal, scale, a.cols, a.rows)

        t_full = timed(full, a.runs)
        hm.columns = base
        strips, window = frame(hm, pal, scale, a.cols, a.rows)
        col = base[-1] * 1.05
        t_live = timed(lambda: live(hm, pal, scale, col * rng.uniform(0.9, 1.1), a.rows, window),
                       a.runs)
        nseg = sum(len(list(s)) for s in strips)
        b_m, b_c = ansi_bytes(strips, system, True), ansi_bytes(strips, system, False)
        print(f"{name:<10} {t_full:>13.2f} {t_live:>11.3f} {nseg:>8} {b_m:>12,} {b_c:>14,} "
              f"{b_c / b_m:>5.1f}×")
    hm.columns = base
    import asyncio
    asyncio.run(in_app(hm, a.runs, a.cols, a.rows))


async def in_app(hm, runs, cols, rows):
    """The widget's own calls inside a headless Textual app (terminal cols+11 × rows+1)."""
    from textual.app import App

    from liqtui.ui.heatmap import HeatmapView

    class Host(App):
        def compose(self):
            yield HeatmapView(palette=self.pal)

    print(f"\nHeatmapView in a headless Textual app, grid {cols}×{rows}: median of {runs} runs")
    print(f"{'palette':<10} {'show() ms':>10} {'set_live() ms':>13}")
    base = hm.columns
    mats = [base * f for f in (0.95, 1.0, 1.05)]
    for name in ("truecolor", "256"):
        app = Host()
        app.pal = name
        # grid = terminal − live column − price axis (10); + the time axis row
        async with app.run_test(size=(cols + 11, rows + 1)) as pilot:
            await pilot.pause()
            v = app.query_one(HeatmapView)
            v.show(hm, range_ms=DAY, rescale=True)
            assert v.grid.size.width == cols, v.grid.size
            k = iter(range(10**9))

            def show():
                hm.columns = mats[next(k) % 3]
                v.show(hm, range_ms=DAY)

            t_show = timed(show, runs)
            col = base[-1]
            t_live = timed(lambda: v.set_live(col * (1 + next(k) % 7 / 50), hm.reference_price),
                           runs)
            hm.columns = base
        print(f"{name:<10} {t_show:>10.2f} {t_live:>13.3f}")


if __name__ == "__main__":
    main()
