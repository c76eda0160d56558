"""The local store: write throughput, and restart to first data for 30 days of one symbol.

    python benchmarks/bench_store.py [--events N] [--runs R]

Writes: N events (default 200,000), first as live capture produces them (mark prices at 1/s
and open interest every 5 s for 50 symbols, a liquidation every few seconds, a closed step per
symbol every 5 minutes), then open-interest points only (each a row: the worst case), are
queued from this thread with ``Store.add_event``/``add_steps``, and the clock stops when
``flush()`` returns, i.e. when the writer thread has committed them all.

Restart: a store holding 30 days of one symbol (8,640 closed steps, 43,200 minute mark bars,
518,400 open-interest points at 5 s, 20,000 liquidations) is opened by a fresh interpreter that
imports liqtui, opens the store for writing (the checks, the writer thread), reads the 30 days
of steps and builds the heatmap over them: the first paint's input. Timed from the interpreter
start (``python -c``) to the heatmap, and the parts inside it.

Prints a table per part: median of R runs (default 5).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from synth import synthetic_bars  # noqa: E402

GOAL_EVENTS = 50_000
GOAL_RESTART_S = 1.0
from liqtui.units import DAY  # noqa: E402


def _events(n: int, t0: int, workload: str):
    from liqtui.feeds.events import Liquidation, MarkPrice, OpenInterest

    if workload == "rows":  # every event a row of its own: open interest of 50 symbols at 1 ms
        return [OpenInterest("binance", f"SYM{i % 50:03d}USDT", t0 + i, 1e6 + i)
                for i in range(n)]
    syms = [f"SYM{i:03d}USDT" for i in range(50)]
    out, t = [], t0
    while len(out) < n:
        t += 1000
        for k, s in enumerate(syms):
            out.append(MarkPrice("binance", s, t + k, 100.0 + (t % 7_000) / 1000, 100.0))
            if t % 5000 == 0:
                out.append(OpenInterest("binance", s, t, 1e6 + t % 1000))
        if t % 3000 == 0:
            out.append(Liquidation("binance", syms[t % 50], t, "long", 99.0, 1.5, 148.5))
    return out[:n]


def bench_writes(n: int, runs: int, workload: str) -> list[dict]:
    from liqtui.store import Store

    rows = []
    evs = _events(n, int(time.time() * 1000) - 3_600_000, workload)
    steps = synthetic_bars(1, start_ms=evs[0].time // 300_000 * 300_000)
    n_steps = n // 1000  # one closed step per symbol per 5 minutes: ~1 row in 1,000
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            st = Store(Path(d) / "liqtui.db")
            t0 = time.perf_counter()
            for i, ev in enumerate(evs):
                st.add_event(ev)
                if i % 1000 == 0 and n_steps:
                    st.add_steps("binance", ev.symbol, steps)
            queued = time.perf_counter() - t0
            assert st.flush(120)
            wall = time.perf_counter() - t0
            st.close()
            rows.append({"queued": queued, "wall": wall, "rate": (n + n_steps) / wall,
                         "bytes": (Path(d) / "liqtui.db").stat().st_size})
    return rows


def build_30_days(path: Path) -> dict:
    import numpy as np

    from liqtui.feeds.events import Liquidation, MarkPrice, OpenInterest
    from liqtui.store import Store

    end = int(time.time() * 1000) // 300_000 * 300_000
    start = end - 30 * DAY
    bars = synthetic_bars(30 * 288, start_ms=start)
    rng = np.random.default_rng(2)
    with Store(path) as st:
        st.add_steps("binance", "BTCUSDT", bars)
        st.set_tick_size("binance", "BTCUSDT", 0.1)
        close = np.repeat(bars["close"], 5)  # minute marks: one per minute, the step's close
        for i, t in enumerate(range(start, end, 60_000)):
            st.add_event(MarkPrice("binance", "BTCUSDT", t + 59_000, float(close[i])))
        oi = np.repeat(bars["open_interest"], 60)
        for i, t in enumerate(range(start, end, 5_000)):
            st.add_event(OpenInterest("binance", "BTCUSDT", t, float(oi[i])))
        for t in np.sort(rng.integers(start, end, 20_000)):
            st.add_event(Liquidation("binance", "BTCUSDT", int(t), "long", 95_000.0,
                                     float(rng.uniform(0.001, 3)), 1.0))
        assert st.flush(600)
        info = st.info()
    return info


RESTART = r"""
import time, json, sys
t0 = time.perf_counter()
from liqtui.store import Store
from liqtui.model import ModelParams, build_heatmap
t1 = time.perf_counter()
st = Store(sys.argv[1])
t2 = time.perf_counter()
steps = st.steps("binance", "BTCUSDT")
tick = st.tick_size("binance", "BTCUSDT")
t3 = time.perf_counter()
hm = build_heatmap(steps, ModelParams(tick_size=tick))
t4 = time.perf_counter()
st.close()
print(json.dumps({"imports": t1 - t0, "open": t2 - t1, "read": t3 - t2, "model": t4 - t3,
                  "steps": len(steps["time"]), "columns": int(hm.columns.shape[-1])}))
"""


def bench_restart(path: Path, runs: int) -> list[dict]:
    rows = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", RESTART, str(path)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout)
        r["process"] = time.perf_counter() - t0
        rows.append(r)
    return rows


def bench_app_restart(data_dir: Path, runs: int) -> list[float]:
    """The real app (`liqtui --data-dir D --log F` in a pseudo-terminal, 120×40) with its
    venue unreachable, so the heatmap can come only from the store: the log's "first heatmap
    painted" number (seconds from the command's start)."""
    import pty
    import re
    import signal
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = str(Path(sys.executable).with_name("liqtui"))
    out = []
    for _ in range(runs):
        log = data_dir / "app.log"
        log.unlink(missing_ok=True)
        pid, fd = pty.fork()
        if pid == 0:
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIQTUI_")}
            env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
            os.execvpe(exe, [exe, "--symbol", "BTCUSDT", "--data-dir", str(data_dir),
                             "--rest-url", f"http://127.0.0.1:{port}",
                             "--ws-url", f"ws://127.0.0.1:{port}", "--log", str(log)], env)
        found, end = None, time.monotonic() + 60
        while found is None and time.monotonic() < end:
            try:
                os.read(fd, 65536)
            except OSError:
                break
            text = log.read_text() if log.exists() else ""
            found = re.search(r"first heatmap painted ([\d.]+) s", text)
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
        if found is None:
            raise SystemExit("the app painted no heatmap:\n" + (log.read_text() if log.exists()
                                                                else ""))
        out.append(float(found.group(1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    for workload, what in (
            ("live", "live events (mark prices, which become minute bars, open interest, "
                     "liquidations; 50 symbols)"),
            ("rows", "open-interest points, each a row of its own (the worst case)")):
        rows = bench_writes(args.events, args.runs, workload)
        print(f"Store writes: {args.events:,} {what} + {args.events // 1000} closed steps, "
              f"queued from one thread, committed by the writer ({args.runs} runs)")
        print(f"{'run':>4} {'queued s':>9} {'committed s':>12} {'events/s':>10} {'file MB':>8}")
        for i, r in enumerate(rows, 1):
            print(f"{i:>4} {r['queued']:>9.3f} {r['wall']:>12.3f} {r['rate']:>10,.0f} "
                  f"{r['bytes'] / 1e6:>8.1f}")
        med = statistics.median(r["rate"] for r in rows)
        print(f"median {med:,.0f} events/s (goal ≥ {GOAL_EVENTS:,}): "
              f"{'ok' if med >= GOAL_EVENTS else 'BELOW GOAL'}\n")

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "liqtui.db"
        t0 = time.perf_counter()
        info = build_30_days(path)
        built = time.perf_counter() - t0
        (s,) = info["series"]
        print(f"Restart: a store of 30 days of BTCUSDT ({s['bars']:,} steps, "
              f"{s['open_interest']:,} OI points, 43,200 minute mark bars, "
              f"{s['liquidations']:,} liquidations; {info['bytes'] / 1e6:.1f} MB, built in "
              f"{built:.1f} s), opened by a fresh interpreter ({args.runs} runs)")
        rows = bench_restart(path, args.runs)
        app = bench_app_restart(Path(d), args.runs)
    cols = ("imports", "open", "read", "model", "process")
    print(f"{'run':>4} " + " ".join(f"{c + ' s':>10}" for c in cols))
    for i, r in enumerate(rows, 1):
        print(f"{i:>4} " + " ".join(f"{r[c]:>10.3f}" for c in cols))
    med = {c: statistics.median(r[c] for r in rows) for c in cols}
    first = med["open"] + med["read"] + med["model"]
    print("median " + " ".join(f"{c} {med[c]:.3f} s" for c in cols))
    print(f"open + read + model (what the store adds to a start): {first:.3f} s (goal ≤ "
          f"{GOAL_RESTART_S:g} s to the first heatmap): "
          f"{'ok' if first <= GOAL_RESTART_S else 'ABOVE GOAL'}; the whole process, with the "
          f"interpreter's start and imports, {med['process']:.3f} s")
    print(f"\nThe app (`liqtui --data-dir D`, its venue unreachable, 120×40 pty): first heatmap "
          f"painted from the store {', '.join(f'{x:.2f}' for x in app)} s after the command "
          f"started (its log); median {statistics.median(app):.2f} s (goal ≤ "
          f"{GOAL_RESTART_S:g} s): {'ok' if statistics.median(app) <= GOAL_RESTART_S else 'ABOVE GOAL'}")


if __name__ == "__main__":
    main()
