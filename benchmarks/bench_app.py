#!/usr/bin/env python3
"""Steady state of the terminal UI: CPU share and terminal output of the app's own process;
with ``--first-paint``, the time from the command to the first painted heatmap instead.

    .venv/bin/python benchmarks/bench_app.py [--seconds 60] [--size 120x40] [--colors 256]
    .venv/bin/python benchmarks/bench_app.py --first-paint [--runs 3]

Runs the simulated exchange in a separate process (``liqtui sim``), the app in a pseudo-terminal
pointed at it (``--rest-url``/``--ws-url``), waits for it to settle, then measures the app's CPU
time (from /proc) and the bytes it writes to the terminal; then the same for ``liqtui --demo``
as a whole (the sim in-process). Prints a table. Linux only (/proc, pty).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("liqtui"))


def _cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measure(argv, cols, rows, colors, warm, seconds):
    pid, fd = pty.fork()
    if pid == 0:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "COLORTERM")}
        env["TERM"] = "xterm-256color"
        os.execvpe(argv[0], [*argv, "--colors", colors], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.kill(pid, signal.SIGWINCH)

    def pump(t):
        n, end = 0, time.monotonic() + t
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    n += len(os.read(fd, 65536))
                except OSError:
                    break
        return n

    pump(warm)
    c0, t0 = _cpu(pid), time.monotonic()
    n = pump(seconds)
    c1, t1 = _cpu(pid), time.monotonic()
    os.write(fd, b"q")
    pump(2)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    return (c1 - c0) / (t1 - t0) * 100, n / (t1 - t0) / 1024


def first_paint(runs: int, cols: int, rows: int, colors: str, extra=()) -> None:
    """``liqtui --demo --log FILE`` in a pty: seconds from the spawn (interpreter start
    included) to the log's "first heatmap painted" line; cold = an empty cache directory
    (a first start), warm = the cache the cold run left (a restart within the day)."""
    import re
    import statistics
    import tempfile
    from datetime import datetime

    def once(cache: str) -> float:
        log = Path(cache) / "run.log"
        log.unlink(missing_ok=True)
        t0 = time.time()
        pid, fd = pty.fork()
        if pid == 0:
            env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
            env.update(TERM="xterm-256color", XDG_CACHE_HOME=cache)
            os.execvpe(EXE, [EXE, "--demo", *extra, "--colors", colors, "--log", str(log)], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        found, end = None, time.monotonic() + 120
        while found is None and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    os.read(fd, 65536)
                except OSError:
                    break
            text = log.read_text() if log.exists() else ""
            found = re.search(r"^(\S+ \S+) INFO liqtui.ui first heatmap painted ([\d.]+) s",
                              text, re.M)
        os.write(fd, b"q")
        time.sleep(0.5)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        if found is None:
            raise RuntimeError(f"no first paint in the log:\n{log.read_text()}")
        painted = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return painted - t0, float(found.group(2))

    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="liqtui-bench-") as cache:
            cold.append(once(cache))
            warm.append(once(cache))
    print(f"first painted heatmap of `liqtui --demo{''.join(' ' + x for x in extra)}` at {cols}×{rows}, {colors} colours, "
          f"median of {runs} (runs: cold {', '.join(f'{x[0]:.2f}' for x in cold)}; "
          f"warm {', '.join(f'{x[0]:.2f}' for x in warm)})")
    print("| start | spawn → first heatmap | the log's number (from `cmd_app`) | goal |")
    print("|---|---|---|---|")
    for name, xs in (("cold (empty ~/.cache/liqtui/sim)", cold), ("warm (the cold run's cache)", warm)):
        print(f"| {name} | {statistics.median(x[0] for x in xs):.2f} s | "
              f"{statistics.median(x[1] for x in xs):.2f} s | ≤ 1.5 s |")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warm", type=float, default=12.0, help="seconds to settle first")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--colors", default="256", choices=("truecolor", "256", "16"))
    ap.add_argument("--first-paint", action="store_true",
                    help="measure the command → first heatmap time instead (cold and warm)")
    ap.add_argument("--runs", type=int, default=3, help="--first-paint: runs of each")
    ap.add_argument("--demo-days", help="--first-paint: pass --demo-days D to liqtui --demo")
    a = ap.parse_args()
    cols, rows = (int(x) for x in a.size.split("x"))
    if a.first_paint:
        first_paint(a.runs, cols, rows, a.colors,
                    ("--demo-days", a.demo_days) if a.demo_days else ())
        return 0
    port = free_port()
    sim = subprocess.Popen([EXE, "sim", "--port", str(port), "--history-days", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in iter(sim.stdout.readline, b""):
            if b"Ctrl-C" in line:
                break
        url = f"127.0.0.1:{port}"
        app = measure([EXE, "--rest-url", f"http://{url}", "--ws-url", f"ws://{url}",
                       "--lookback", "2d", "--watchlist", "BTCUSDT,ETHUSDT,SOLUSDT"],
                      cols, rows, a.colors, a.warm, a.seconds)
    finally:
        sim.terminate()
        sim.wait()
    demo = measure([EXE, "--demo"], cols, rows, a.colors, a.warm, a.seconds)
    print(f"steady state at {cols}×{rows}, {a.colors} colours, {a.seconds:g} s "
          f"(after {a.warm:g} s to settle)")
    print("| process | CPU (% of one core) | terminal output | goal |")
    print("|---|---|---|---|")
    print(f"| the app, sim in another process | {app[0]:.1f} % | {app[1]:.2f} KiB/s | "
          "≤ 3 %, ≤ 10 KiB/s |")
    print(f"| `liqtui --demo` as a whole | {demo[0]:.1f} % | {demo[1]:.2f} KiB/s | — |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
