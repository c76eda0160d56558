"""`liqtui record` of many symbols: the recorder process's own CPU and memory.

    python benchmarks/bench_record.py [--symbols N] [--rate MSGS] [--seconds S] [--runs R]

The simulated exchange runs in its own process (pinned to core 0 when there are two) with N
generated perpetuals (default 200; the catalogue has 7, so the rest are ``SymbolSpec``s made
here, with a short generated history: 0.05 days) trading at a pace that makes about MSGS
WebSocket messages per second in total (default 10,000: aggTrade, markPrice@1s, kline_1m).
`liqtui record` runs as a real subprocess (pinned to core 1) into a fresh store: it validates
the symbols, backfills 30 minutes of each, then records live. Once every symbol is backfilled
the steady state is measured for S seconds (default 60): CPU time of the recorder process
(user + system, from /proc) over wall time, its resident memory sampled every second, and the
messages it received (its status lines count the frames). Prints a table: median of R runs
(default 3).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GOAL_CPU = 0.5  # of one core
TICKS = os.sysconf("SC_CLK_TCK")

SERVER = r"""
import asyncio, sys
from liqtui.sim.market import Market, SymbolSpec
from liqtui.sim.server import SimExchange

def specs(n, trades_per_min):
    # n generated perpetuals: prices spread over five decades, like a real listing
    out = []
    for i in range(n):
        price = 10 ** (i % 5 - 1) * (1 + (i * 37 % 100) / 100)
        out.append(SymbolSpec(f"GEN{i:03d}USDT", f"GEN{i:03d}", price / 1e4, 0.001, 6, 3,
                              price=price, daily_vol=0.04, oi_usd=2e7, median_usd=1500.0,
                              trades_per_min=trades_per_min))
    return out

async def main(n, trades_per_min):
    sp = specs(n, trades_per_min)
    market = Market([s.symbol for s in sp], 1, history_days=0.05, specs=sp)
    sx = SimExchange(market)
    await sx.start("127.0.0.1", 0)
    print(sx.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await sx.stop()

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
"""


def _pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {cpu})


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def one_run(n: int, rate: float, seconds: float) -> dict:
    # a symbol makes ~1 mark and ~1 kline message a second; trades make up the rest, and the
    # sim trades ~1.45x its trades_per_min (position changes and activity swings; measured)
    trades_per_min = max(1.0, (rate / n - 2.0) * 60 / 1.45)
    sim = subprocess.Popen([sys.executable, "-c", SERVER, str(n), str(trades_per_min)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    _pin(sim.pid, 0)
    try:
        port = int(sim.stdout.readline())
        with tempfile.TemporaryDirectory() as d:
            syms = Path(d) / "perps.txt"
            syms.write_text("\n".join(f"GEN{i:03d}USDT" for i in range(n)) + "\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIQTUI_")}
            env["XDG_CONFIG_HOME"] = d
            rec = subprocess.Popen(
                [sys.executable, "-m", "liqtui", "record", "--symbol-file", str(syms),
                 "--backfill", "30m", "--every", "5", "--data-dir", d,
                 "--rest-url", f"http://127.0.0.1:{port}", "--ws-url", f"ws://127.0.0.1:{port}"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            _pin(rec.pid, 1)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(rec.stdout), daemon=True)
            reader.start()
            t_start = time.monotonic()
            while sum(": backfill" in x for x in lines) < n:  # the steady state begins
                if rec.poll() is not None or time.monotonic() - t_start > 900:
                    raise SystemExit("the recorder stopped or stalled:\n" + "".join(lines[-20:]))
                time.sleep(0.2)
            startup = time.monotonic() - t_start
            time.sleep(5)  # let the last backfill's model-free write settle
            frames0, mark = _frames(lines), len(lines)
            c0, w0 = _cpu_seconds(rec.pid), time.monotonic()
            rss = []
            while time.monotonic() - w0 < seconds:
                rss.append(_rss_mb(rec.pid))
                time.sleep(1.0)
            c1, w1 = _cpu_seconds(rec.pid), time.monotonic()
            time.sleep(5.5)  # one more status line: the frame count at the window's end
            frames1 = _frames(lines)
            rec.terminate()
            rc = rec.wait(60)
            reader.join(10)
            size = sum(p.stat().st_size for p in Path(d).glob("liqtui.db*"))
        window = [x for x in lines[mark:] if "frames" in x]
    finally:
        sim.stdin.close()
        try:
            sim.wait(20)
        except subprocess.TimeoutExpired:
            sim.kill()
    return {"startup": startup, "cpu": (c1 - c0) / (w1 - w0),
            "msgs": (frames1 - frames0) / (w1 - w0 + 5.5), "rss_med": statistics.median(rss),
            "rss_max": max(rss), "rss_first": rss[0], "rss_last": rss[-1], "rc": rc,
            "db_mb": size / 1e6, "lines": len(window)}


def _frames(lines) -> int:
    for line in reversed(lines):
        m = re.search(r"frames ([\d,]+)", line)
        if m:
            return int(m.group(1).replace(",", ""))
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = [one_run(args.symbols, args.rate, args.seconds) for _ in range(args.runs)]
    print(f"liqtui record: {args.symbols} simulated Binance perpetuals at ~{args.rate:,.0f} "
          f"messages/s asked, the exchange in another process; the recorder's own process over "
          f"{args.seconds:g} s of steady state ({args.runs} runs)")
    print(f"{'run':>4} {'startup s':>10} {'msgs/s':>8} {'CPU %':>6} {'RSS MB first':>13} "
          f"{'median':>7} {'max':>7} {'last':>7} {'store MB':>9} {'exit':>5}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>4} {r['startup']:>10.1f} {r['msgs']:>8,.0f} {100 * r['cpu']:>6.1f} "
              f"{r['rss_first']:>13.1f} {r['rss_med']:>7.1f} {r['rss_max']:>7.1f} "
              f"{r['rss_last']:>7.1f} {r['db_mb']:>9.1f} {r['rc']:>5}")
    cpu = statistics.median(r["cpu"] for r in rows)
    msgs = statistics.median(r["msgs"] for r in rows)
    grow = statistics.median(r["rss_last"] - r["rss_first"] for r in rows)
    print(f"median {msgs:,.0f} messages/s, CPU {100 * cpu:.1f} % of one core (goal < "
          f"{100 * GOAL_CPU:.0f} %): {'ok' if cpu < GOAL_CPU else 'ABOVE GOAL'}; resident "
          f"memory grew {grow:+.1f} MB over the window")


if __name__ == "__main__":
    main()
