"""Generating a simulated symbol's history (no cache): seconds per simulated day per symbol.

    python benchmarks/bench_sim.py [--days D] [--runs R] [--symbols S,S] [--seed N]

Each run builds one symbol from scratch, as a cold ``liqtui --demo`` does for its first asset
(``--demo-days``, default 1.5: exactly that many days of minutes). Prints a table:
median of R runs (default 3) of wall and CPU time (the machine is shared: CPU time is the
steadier of the two, and the fastest run the steadiest), per symbol, plus the machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from liqtui.sim.market import CATALOGUE, _build_engine

from liqtui.units import DAY
START = 1_700_006_400_000 // DAY * DAY  # a fixed day boundary: the same minutes every run
GOAL_S_PER_DAY = 0.30  # issue 4 (cold demo ≤ 1.5 s): about half the ~0.63 s/day of engine v2


def one_run(symbol: str, days: float, seed: int) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    _build_engine(CATALOGUE[symbol], seed, "mixed", START, START + int(days * DAY), None)
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(f"history: {a.days:g} days ({int(a.days * 1440)} minutes) per symbol, no cache, "
          f"median of {a.runs}; load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'symbol':<10} {'wall s':>8} {'cpu s':>8} {'wall s/day':>11} {'cpu s/day':>10} "
          f"{'min cpu s/day':>14}  goal ≤ {GOAL_S_PER_DAY} s/day (cpu)")
    for sym in a.symbols.split(","):
        runs = [one_run(sym, a.days, a.seed) for _ in range(a.runs)]
        w = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        c_min = min(r[1] for r in runs)
        ok = "ok" if c / a.days <= GOAL_S_PER_DAY else "MISSED"
        print(f"{sym:<10} {w:8.3f} {c:8.3f} {w / a.days:11.3f} {c / a.days:10.3f} "
              f"{c_min / a.days:14.3f}  {ok}")


if __name__ == "__main__":
    main()
